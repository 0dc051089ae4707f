"""Procedurally worded faults and benign events: training data whose words cannot be memorised.

The catalogue (`faults.py`) has twelve fault types with a handful of wordings each; a model trained only on them
can learn *which sentences* are root causes instead of *why* they are. For training, `synthetic_fault(rng)`
composes a fault from vocabularies (a resource of some service goes wrong in one of many ways, its callers then
fail while mentioning it, or not) and `synthetic_benign(rng)` a harmless event (maintenance, an admin action, a
client error), so nearly every synthetic scenario has wordings no other scenario has. What stays constant is the
structure a real incident has: a quiet first sign, close before a cascade of related failures in the services
that depend on it. Synthetic faults are never used by `llmid eval rca` (it scores held-out catalogue wordings).
"""

from __future__ import annotations

from random import Random

from llmid.sim.faults import Fault, Symptom
from llmid.sim.topology import SERVICES, blast_radius

RESOURCES = (
    "lease pool", "connection pool", "write-ahead log", "thread pool", "token bucket", "replica set", "shard map",
    "index segment", "message queue", "session table", "license server", "feature store", "secret store",
    "DNS resolver", "load balancer", "ingress controller", "volume", "snapshot store", "schema registry",
    "rate limiter", "job queue", "GPU allocator", "object index", "partition leader", "consensus group",
    "journal", "heartbeat channel", "config map", "sidecar proxy", "kernel module", "network interface",
    "RAID array", "keystore", "time source", "worker pool", "blob cache", "routing table", "quota ledger",
    "upload buffer", "event bus", "metrics pipeline", "service registry", "file handle table", "spill directory",
)
ROOT_PROBLEMS = (
    ("WARN", "is exhausted ({n} of {n} in use)"),
    ("ERROR", "was corrupted: checksum mismatch at offset {big}"),
    ("WARN", "stopped responding to probes"),
    ("WARN", "reached its limit of {n}"),
    ("ERROR", "has no healthy members"),
    ("ERROR", "lost quorum ({n} members unreachable)"),
    ("WARN", "is out of sync by {slow_ms}ms"),
    ("WARN", "entered degraded mode"),
    ("INFO", "was reconfigured with {n} slots instead of 64"),
    ("WARN", "is leaking handles ({big} open)"),
    ("WARN", "rejected {n} writes in the last minute"),
    ("WARN", "switched to read-only"),
    ("ERROR", "failed its integrity check"),
    ("WARN", "is saturated at {pct}%"),
    ("WARN", "flapped {n} times in 60s"),
    ("INFO", "was rolled to revision {n}"),
    ("WARN", "started returning stale entries"),
    ("ERROR", "ran out of file descriptors"),
    ("INFO", "was restarted with an empty state"),
    ("WARN", "expired and was not renewed"),
    ("INFO", "now uses the new default settings (migration {n})"),
    ("WARN", "is running at reduced capacity after losing {n} members"),
)
ROOT_FORMS = (
    "{resource} {ident} {problem}",
    "{resource} {problem} on {ident}",
    "health check: {resource} {ident} {problem}",
    "state change: {resource} {ident} {problem}",
    "{resource}: {problem}",
)
OPERATIONS = ("checkout", "upload", "sync", "query", "publish", "render", "export", "replication", "login",
              "batch write", "compaction", "prefetch", "allocation", "commit", "lookup", "handshake", "refresh")
ERRORS = ("timeout after {slow_ms}ms", "connection refused", "resource temporarily unavailable", "no route to host",
          "unexpected EOF", "quota exceeded", "checksum mismatch", "permission denied", "broken pipe",
          "service unavailable (503)", "internal error (500)", "deadline exceeded")
SYMPTOM_FORMS = (
    ("ERROR", "{op} {rid} failed: {resource} {ident} unavailable"),
    ("ERROR", "could not {op} via {resource}: {error}"),
    ("WARN", "retrying {op} after {resource} error ({n}/5)"),
    ("WARN", "{op} took {slow_ms}ms waiting on {resource}"),
    ("ERROR", "{op} {rid} aborted: {error}"),
    ("ERROR", "upstream {svc} failed {op} {rid}: {error}"),
    ("WARN", "{op} queue backing up ({big} pending)"),
    ("ERROR", "giving up on {op} for {rid} after {n} attempts"),
    ("FATAL", "{resource} dependency lost, shutting down worker {n}"),
    ("ERROR", "{op} failed with {error}"),
)
BENIGN_EVENTS = (
    ("INFO", "{resource} {ident} compacted in {ms}ms"),
    ("INFO", "{resource} {ident} rebalanced ({n} moves)"),
    ("INFO", "{resource} {ident} refreshed from source"),
    ("INFO", "rotated credentials for {resource} {ident}"),
    ("INFO", "{resource} {ident} warmed up ({big} entries)"),
    ("INFO", "{resource} {ident} resized to {n}"),
    ("INFO", "snapshot of {resource} {ident} taken in {ms}ms"),
    ("WARN", "{resource} {ident} slow to answer once ({slow_ms}ms), recovered"),
    ("INFO", "admin {user} enabled debug logging for {resource}"),
    ("INFO", "maintenance window opened for {resource} {ident} by {user}"),
    ("WARN", "deprecated option in {resource} settings ignored"),
    ("ERROR", "{op} {rid} rejected: invalid argument from client {ip}"),
    ("ERROR", "{op} {rid} failed: object not found (client error)"),
    ("WARN", "client {ip} sent {n} malformed {op} requests"),
    ("INFO", "garbage-collected {n} entries of {resource} {ident}"),
    ("INFO", "{resource} {ident} handed over to standby (planned)"),
    ("WARN", "{resource} {ident} certificate expires in {n} days"),
    ("ERROR", "audit: {user} denied access to {resource} {ident} (policy)"),
    ("ERROR", "{op} {rid} failed: client closed the request early"),
    ("ERROR", "request from {ip} rejected: payload too large ({big} bytes)"),
    ("WARN", "{resource} {ident}: transient error, retried successfully"),
    ("ERROR", "{op} {rid} failed: unsupported media type from client {ip}"),
    ("WARN", "connection from {ip} dropped: idle for {n}s"),
    ("ERROR", "exception in {op} handler for {rid} (client input invalid), returned 400"),
    ("WARN", "{resource} {ident} reported {n} soft errors, all corrected"),
    ("ERROR", "failed to parse header from {ip}: unexpected token at {n}"),
)
IDENT_STEMS = ("alpha", "east", "blue", "core", "edge", "main", "ledger", "orion", "tide", "delta", "north", "kilo")


def _ident(rng: Random) -> str:
    return f"{rng.choice(IDENT_STEMS)}-{rng.randint(0, 12)}"


def synthetic_benign(rng: Random) -> tuple[str, str, str]:
    """(service, level, phrasing) of a harmless one-off, with randomly drawn words."""
    service = rng.choice(sorted(s for s in SERVICES if s != "host"))
    level, form = rng.choice(BENIGN_EVENTS)
    text = form.replace("{resource}", rng.choice(RESOURCES)).replace("{ident}", _ident(rng))
    text = text.replace("{op}", rng.choice(OPERATIONS))
    return service, level, text


def synthetic_fault(rng: Random) -> Fault:
    """A fault with a drawn resource, problem and wording, spreading to the callers of its service."""
    candidates = sorted(s for s in SERVICES if s != "host" and blast_radius(s))
    service = rng.choice(candidates)
    resource = rng.choice(RESOURCES)
    ident = _ident(rng)
    level, problem = rng.choice(ROOT_PROBLEMS)
    root = rng.choice(ROOT_FORMS).format(resource=resource, ident=ident, problem=problem)
    callers = blast_radius(service)
    stages = [service] + callers[: rng.randint(1, min(4, len(callers)))]
    symptoms: list[Symptom] = []
    delay = rng.uniform(5.0, 40.0)
    for k, svc in enumerate(stages):
        forms = rng.sample(SYMPTOM_FORMS, 3)
        mention = rng.random() < 0.7
        phr = []
        for _lvl, form in forms:
            res = resource if mention else rng.choice(["backend", "dependency", "upstream", svc, "storage"])
            phr.append(form.replace("{resource}", res).replace("{ident}", ident)
                       .replace("{op}", rng.choice(OPERATIONS)).replace("{error}", rng.choice(ERRORS))
                       .replace("{svc}", service))
        sym_level = max((lvl for lvl, _ in forms), key=("INFO", "WARN", "ERROR", "FATAL").index)
        symptoms.append(Symptom(svc, sym_level, tuple(phr), delay, rng.uniform(0.05, 0.4),
                                host="origin" if k == 0 and rng.random() < 0.5 else "any"))
        delay += rng.uniform(10.0, 45.0)
    return Fault(
        name="synthetic", summary=f"{resource} of {service} {problem.split(' (')[0]}", service=service,
        level=level if rng.random() < 0.8 else rng.choice(("INFO", "WARN", "ERROR")), root_phrasings=(root,),
        symptoms=tuple(symptoms), action="escalate_to_human", target=service,
        recur=rng.choice((0.0, 0.3, 0.6)),
    )
