"""The fault catalogue: how each fault starts, how it spreads, and what fixes it.

Each fault has a quiet root cause (often INFO or WARN, said once or a few times) in the service where it starts,
then louder symptoms in the services that depend on it, appearing one after another (the fault chain). That shape
is what makes root-cause analysis hard: the first ERROR, the most severe line and the rarest line are usually
symptoms, not the cause. The correct recovery action and its target are the ground truth for the planner.

**Phrasing splits.** Every tuple of phrasings (root cause, each symptom, the decoys) is cut in two by
`split_phrasings`: the last third (`len // 3` of them) is *held out* and only used by `phrasings="test"`
scenarios, the rest by `phrasings="train"`; `"all"` (the default, and the demo) draws from every phrasing. A
model trained on train-split scenarios and evaluated on test-split ones never saw the wording of the faults it
is scored on (the fault types, services and propagation are the same; the words are not). For choosing settings
without touching the test wording, the train share is cut the same way once more: `"dev"` is the last third of
the train share and `"fit"` the rest (a model fitted on "fit" and tuned on "dev" never sees "test" wording).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from random import Random
from typing import TypeVar

from llmid.documents import ACTIONS
from llmid.sim.emit import java_trace, python_traceback
from llmid.sim.phrases import GENERIC, Gen
from llmid.sim.topology import GPU_NODES

TraceFn = Callable[[Random, Mapping[str, object]], list[str]]
SPLITS = ("all", "train", "test", "fit", "dev")
"""Phrasing splits: every phrasing, the training share, the held-out share, and the train share cut again into a
fitting share and a validation ("dev") share."""

T = TypeVar("T")


def split_phrasings(items: tuple[T, ...], split: str) -> tuple[T, ...]:
    """The phrasings of `split`: "test" = the last `len // 3` (held out), "train" = the others, "all" = every one;
    "dev" = the last third of the train share, "fit" = the rest of it (the same rule applied to "train").

    A tuple too short to hold one out (fewer than 3) is shared by both splits."""
    if split not in SPLITS:
        raise ValueError(f"unknown phrasing split {split!r}; use one of {', '.join(SPLITS)}")
    if split in ("fit", "dev"):
        return split_phrasings(split_phrasings(items, "train"), "test" if split == "dev" else "train")
    k = len(items) // 3
    if split == "all" or k == 0:
        return items
    return items[len(items) - k:] if split == "test" else items[: len(items) - k]


def split_indices(n: int, split: str) -> list[int]:
    """Indices into a tuple of `n` phrasings that `split` may use (same rule as `split_phrasings`)."""
    return list(split_phrasings(tuple(range(n)), split))


@dataclass(frozen=True, slots=True)
class Symptom:
    """One stage of the fault chain: a service starts logging these lines `delay` s after the root cause."""

    service: str
    level: str
    phrasings: tuple[str, ...]
    delay: float
    rate: float
    """Lines per second once fully developed (it ramps up over `ramp` seconds)."""
    ramp: float = 90.0
    host: str = "any"
    """"origin": the host the fault started on; "any": a random host of `service` per line."""
    trace: TraceFn | None = None
    fmt: str = ""
    """Format override (e.g. systemd's syslog lines about a service); default: the service's own."""
    program: str = ""


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault type: root cause, chain of symptoms, and the recovery ground truth."""

    name: str
    summary: str
    service: str
    level: str
    root_phrasings: tuple[str, ...]
    symptoms: tuple[Symptom, ...]
    action: str
    target: str
    """`str.format` template over the fault's parameters (e.g. "{host}", "{job}")."""
    params: Mapping[str, Gen] = field(default_factory=dict)
    """Values fixed for the whole scenario (the bad version, the job); `host` is added automatically."""
    hosts: tuple[str, ...] = ()
    """Where the root cause may appear; default: any host of `service`."""
    fmt: str = ""
    program: str = ""
    decoys: tuple[tuple[str, str], ...] = ()
    """(level, phrasing) benign look-alikes of the root cause that recur in normal traffic."""
    aliases: tuple[str, ...] = ()
    """Other targets that fix it as well (`str.format` templates too): the recovery environment accepts them."""
    recur: float = 0.35
    """Probability that the root-cause condition is logged again (same wording) while the fault lasts."""


def _py(exc: str, *frames: tuple[str, str, str]) -> TraceFn:
    return lambda rng, p: python_traceback(rng, exc.format(**p), list(frames))


def _java(exc: str, frames: tuple[str, ...], cause: str | None = None) -> TraceFn:
    return lambda rng, p: java_trace(rng, exc.format(**p), list(frames), cause.format(**p) if cause else None)


_SCHED_FRAMES = ("ai.platform.scheduler.client.AuthClient.verify", "ai.platform.scheduler.api.SubmitHandler.handle",
                 "io.netty.channel.AbstractChannelHandlerContext.invokeChannelRead")
_DB_FRAMES = ("org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl",
              "org.postgresql.jdbc.PgConnection.<init>", "com.zaxxer.hikari.pool.HikariPool.createPoolEntry",
              "ai.platform.scheduler.store.PlacementDao.save")


def _r(lo: int, hi: int) -> Gen:
    return lambda r: r.randint(lo, hi)


def _c(*items: object) -> Gen:
    return lambda r: r.choice(items)


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault(
        "bad_deploy", "a new model-serving release breaks inference", "model-serving", "INFO",
        ("deployed version v{version} of model-serving (build {build}, image sha256:{sha})",
         "rollout complete: model-serving v{version} now serving 100% of traffic (was v{prev})",
         "hot-reloaded model-serving to v{version} from registry, previous v{prev}",
         "switched active model bundle to release {version} (git {sha}), canary stage skipped",
         "new image model-serving:{version} pulled and started, replacing {prev}",
         "release {version} of the inference handler is live on all replicas (previous {prev})"),
        (Symptom("model-serving", "ERROR", ("inference request {rid} failed: KeyError: 'logits_processor'",
                                            "request {rid} for {model} failed in postprocess",
                                            "postprocess step raised for request {rid}: missing key "
                                            "logits_processor in model config"),
                 20, 0.25, host="origin",
                 trace=_py("KeyError: 'logits_processor'",
                           ("/srv/serving/handler.py", "predict", "out = self.postprocess(batch)"),
                           ("/srv/serving/postprocess.py", "postprocess", "fn = cfg['logits_processor']"))),
         Symptom("gateway", "ERROR", ("upstream model-serving returned 503 for POST /v1/completions rid={rid} "
                                      "in {ms}ms", "upstream model-serving returned 500 for POST /v1/completions "
                                      "rid={rid}", "POST /v1/completions rid={rid}: upstream answered 502 Bad "
                                      "Gateway after {ms}ms"), 45, 0.6),
         Symptom("gateway", "ERROR", ("circuit breaker OPEN for upstream model-serving ({n} failures in 30s)",
                                      "outlier detection ejected a model-serving endpoint after {n} consecutive "
                                      "5xx", "breaker tripped on route /v1/completions: error ratio {pct}% over "
                                      "30s"), 80, 0.05)),
        "rollback_deploy", "model-serving",
        {"version": _c("2.3.1", "2.4.0", "3.0.0-rc2", "2.3.7"), "prev": _c("2.2.9", "2.3.0", "2.3.6"),
         "build": _r(4000, 9999), "sha": lambda r: f"{r.getrandbits(48):012x}"},
        decoys=(("INFO", "deployed version v{ver} of {svc} (build {big}, image sha256:{trace_id})"),
                ("INFO", "rollout complete: {svc} v{ver} now serving 100% of traffic"),
                ("INFO", "new image {svc}:{ver} pulled and started")),
        recur=0.0),
    Fault(
        "disk_full", "the shared NFS volume fills up", "nfs", "WARN",
        ("disk /data {pct}% full ({free}G free of 20T)",
         "filesystem /data on /dev/md0 usage {pct}% exceeds threshold 95%",
         "low space on /data: {free}G left, inode usage {ipct}%",
         "volume /data crossed the {pct}% high-water mark, {free}G remaining",
         "capacity alert: /dev/md0 mounted on /data is at {pct}% ({free}G available)",
         "free space on export /data dropped to {free}G ({pct}% used)"),
        (Symptom("nfs", "ERROR", ("write error on /data/ckpt/{job}: No space left on device (errno 28)",
                                  "EXT4-fs warning (device md0): ext4_da_write_begin: No space left on device "
                                  "writing /data/ckpt/{job}",
                                  "nfsd: write to /data/ckpt/{job} failed: ENOSPC"),
                 30, 0.15, program="kernel"),
         Symptom("trainer", "ERROR", ("failed to save checkpoint /data/ckpt/{job}/step-{step}.pt: [Errno 28] "
                                      "No space left on device",
                                      "checkpoint step {step} of {job} not written: disk quota exhausted on /data",
                                      "torch.save to /data/ckpt/{job}/step-{step}.pt raised OSError 28 (device "
                                      "full)"), 60, 0.2),
         Symptom("data-loader", "ERROR", ("failed to write shard cache /data/cache/shard-{shard}.arrow",
                                          "could not spill shard {shard} to local cache on /data",
                                          "shard cache write aborted for {shard}"),
                 90, 0.12, trace=_py("OSError: [Errno 28] No space left on device",
                                     ("/opt/loader/cache.py", "put", "f.write(buf)"))),
         Symptom("parameter-server", "ERROR", ("snapshot of optimizer state failed: write /data/ps/snap-{step}: "
                                               "no space left on device",
                                               "could not persist parameter snapshot {step}: ENOSPC on /data/ps",
                                               "optimizer state dump {step} aborted, target volume full"),
                 110, 0.08),
         Symptom("job-controller", "ERROR", ("job {job} failed: checkpoint write error (exit code 1), retry {n}",
                                             "{job} marked Failed: trainer exited 1 after checkpoint error, "
                                             "attempt {n}",
                                             "restarting {job} after storage error (attempt {n})"),
                 150, 0.1)),
        "free_disk", "nfs-01:/data",
        {"pct": _r(96, 99), "free": _r(8, 90), "ipct": _r(40, 70)}, program="diskmon",
        decoys=(("INFO", "disk /data {pct}% full ({big}G free of 20T)"),
                ("INFO", "volume /data usage {pct}%, {big}G remaining"),
                ("INFO", "free space on export /data is {big}G ({pct}% used)")),
        aliases=("nfs", "nfs-01", "{host}")),
    Fault(
        "cert_expired", "the auth service's TLS certificate expires", "auth", "WARN",
        ("TLS certificate CN=auth.internal expired at {expiry} (serial {serial})",
         "certificate /etc/auth/tls/server.crt is not valid after {expiry}; still serving it",
         "x509: certificate for auth.internal has expired, renewal job last ran {days} days ago",
         "serving certificate for auth.internal passed its notAfter date {expiry}",
         "cert-manager: Certificate auth-tls not renewed, expired {expiry}",
         "TLS listener :8443 is presenting an expired certificate (NotAfter={expiry})"),
        (Symptom("gateway", "ERROR", ("TLS handshake with auth:8443 failed: x509: certificate has expired or is "
                                      "not yet valid rid={rid}",
                                      "remote error: tls: bad certificate from auth:8443 rid={rid}",
                                      "upstream auth TLS verify failed (certificate expired) rid={rid}"), 15, 0.4),
         Symptom("scheduler", "ERROR", ("token verification against auth failed for user {user}",
                                        "could not verify token of {user} with auth service",
                                        "auth call for {user} aborted: SSL handshake failure"), 40, 0.1,
                 trace=_java("javax.net.ssl.SSLHandshakeException: PKIX path validation failed: "
                             "java.security.cert.CertPathValidatorException: validity check failed",
                             _SCHED_FRAMES, "java.security.cert.CertificateExpiredException: NotAfter: {expiry}")),
         Symptom("model-serving", "ERROR", ("rejecting request {rid}: could not validate bearer token (auth "
                                            "unreachable: SSLError CERTIFICATE_VERIFY_FAILED)",
                                            "token validation for {rid} failed: certificate verify failed talking "
                                            "to auth",
                                            "request {rid} denied: bearer token check could not reach auth (SSL)"),
                 70, 0.3),
         Symptom("gateway", "ERROR", ("returned 401 to {ip} for {method} {path}: auth backend unavailable",
                                      "{method} {path} -> 401 Unauthorized rid={rid} (auth check error)",
                                      "rejected {method} {path} from {ip} with 401: cannot verify credentials"),
                 100, 0.3)),
        "renew_certificate", "auth",
        {"expiry": _c("2026-04-30T23:59:59Z", "2026-05-01T00:00:00Z", "2026-04-29T12:00:00Z"),
         "serial": lambda r: f"{r.getrandbits(40):010X}", "days": _r(35, 95)},
        decoys=(("INFO", "certificate CN={svc}.internal renewed, next expiry in {big} hours"),
                ("INFO", "loaded TLS certificate for {svc}.internal (serial {rid})"),
                ("INFO", "cert-manager: Certificate {svc}-tls is up to date")),
        aliases=("auth-01",)),
    Fault(
        "trainer_oom", "a trainer's host memory grows until the kernel kills it", "trainer", "WARN",
        ("host memory of trainer {job} rank {rank0} at {pct}% of container limit {limit}Gi",
         "RSS of {job} rank {rank0} grew {growth}% in 5 min, now {used}Gi of {limit}Gi limit",
         "memory pressure in {job} rank {rank0}: {pct}% of {limit}Gi used by {workers} dataloader workers",
         "[Rank {rank0}] cgroup memory.current approaching memory.max ({pct}% of {limit}Gi)",
         "{job} rank {rank0}: resident set {used}Gi, limit {limit}Gi, swap disabled",
         "memory watermark high for {job} rank {rank0} ({pct}%), pinned buffers growing"),
        (Symptom("host", "ERROR", ("Memory cgroup out of memory: Killed process {pid} (python) total-vm:{big}kB, "
                                   "anon-rss:{big}kB, oom_score_adj:0",
                                   "oom-kill:constraint=CONSTRAINT_MEMCG,task=python,pid={pid},uid=1000",
                                   "Out of memory: Killed process {pid} (python) in memory cgroup of {job}"),
                 25, 0.03, host="origin", program="kernel"),
         Symptom("trainer", "ERROR", ("worker rank {rank0} of {job} exited with signal 9 (SIGKILL)",
                                      "torch.distributed.elastic: failure on rank {rank0} of {job}: ChildFailedError "
                                      "exitcode -9",
                                      "rank {rank0} of {job} terminated by SIGKILL"), 35, 0.1, host="origin"),
         Symptom("parameter-server", "WARN", ("lost heartbeat from {job} rank {rank}, marking worker dead",
                                              "worker {job}/{rank} missed {n} heartbeats",
                                              "dropping dead worker rank {rank} of {job} from the pull set"),
                 50, 0.15),
         Symptom("job-controller", "ERROR", ("pod {job}-worker-{rank0} OOMKilled (limit {limit}Gi), restart {n}",
                                             "container trainer in pod {job}-worker-{rank0} terminated: reason "
                                             "OOMKilled",
                                             "{job}-worker-{rank0} restarted after exit 137 ({n} restarts)"),
                 70, 0.08),
         Symptom("scheduler", "WARN", ("job {job} requeued after failure; backoff {n}s",
                                       "re-queueing {job}: worker failure, retry in {n}s",
                                       "backoff {n}s before rescheduling {job}"), 110, 0.05)),
        "raise_memory_limit", "{job}",
        {"job": GENERIC["job"], "rank0": _r(0, 31), "pct": _r(93, 99), "limit": _c(64, 96, 128),
         "growth": _r(20, 60), "used": _r(60, 120), "workers": _c(8, 12, 16)},
        decoys=(("INFO", "host memory of trainer {job} rank {rank} at {pct}% of container limit 128Gi"),
                ("INFO", "[Rank {rank}] cgroup memory.current at {pct}% of memory.max"),
                ("INFO", "{job} rank {rank}: resident set {gb}Gi, limit 128Gi, swap disabled"))),
    Fault(
        "gpu_xid", "uncorrectable ECC / Xid errors on one GPU node", "host", "ERROR",
        ("NVRM: Xid (PCI:0000:{bus}:00): 48, pid={pid}, name=python, DBE (double-bit ECC error) detected",
         "NVRM: Xid (PCI:0000:{bus}:00): 79, pid={pid}, GPU has fallen off the bus.",
         "NVRM: Xid (PCI:0000:{bus}:00): 94, pid={pid}, Contained ECC error.",
         "NVRM: Xid (PCI:0000:{bus}:00): 63, pid={pid}, Row Remapper: New row marked for remapping, reset gpu "
         "to activate.",
         "NVRM: GPU at PCI:0000:{bus}:00: GPU-{uuid} has fallen off the bus",
         "NVRM: Xid (PCI:0000:{bus}:00): 92, pid={pid}, High single-bit ECC error rate detected"),
        (Symptom("trainer", "ERROR", ("CUDA error: uncorrectable ECC error encountered on device {gpu} "
                                      "(rank {rank})",
                                      "RuntimeError: CUDA error: unspecified launch failure on cuda:{gpu}",
                                      "[Rank {rank}] device-side fault on GPU {gpu}: ECC uncorrectable"),
                 10, 0.15, host="origin"),
         Symptom("data-loader", "ERROR", ("pin_memory thread died on device {gpu}",
                                          "pinning batch to cuda:{gpu} failed, worker exiting",
                                          "CUDA copy to device {gpu} raised, loader stopped"), 25, 0.06,
                 host="origin",
                 trace=_py("RuntimeError: CUDA error: an illegal memory access was encountered",
                           ("/opt/loader/pin.py", "_pin_loop", "batch = batch.pin_memory()"))),
         Symptom("job-controller", "ERROR", ("job {job} rank {rank} on {host} failed: NCCL communicator aborted",
                                             "{job}: rank {rank} lost on {host} (ncclSystemError)",
                                             "collective group of {job} broken, rank {rank} ({host}) unreachable"),
                 45, 0.12),
         Symptom("scheduler", "WARN", ("node {host} failed health probe (dcgm: gpu {gpu} health=FAIL), "
                                       "{n} jobs affected",
                                       "DCGM health watch: {host} gpu {gpu} status FAIL",
                                       "marking {host} unhealthy after GPU diagnostic failure on gpu {gpu}"),
                 70, 0.05),
         Symptom("job-controller", "FATAL", ("job {job} exceeded max restarts (3) on {host}, giving up",
                                             "giving up on {job} after 3 restarts on {host}",
                                             "{job} permanently failed on {host}: restart budget exhausted"),
                 100, 0.04)),
        "drain_node", "{host}",
        {"bus": _c("3b", "5e", "86", "af", "d8"), "gpu": _r(0, 7),
         "uuid": lambda r: f"{r.getrandbits(32):08x}-{r.getrandbits(16):04x}"}, hosts=GPU_NODES, program="kernel",
        decoys=(("WARN", "NVRM: Xid (PCI:0000:3b:00): 13, pid={pid}, Graphics Exception: ESR 0x{rid}"),
                ("INFO", "NVRM: GPU at PCI:0000:5e:00 persistence mode enabled"),
                ("WARN", "NVRM: Xid (PCI:0000:86:00): 31, pid={pid}, Ch 0000000{n}, MMU Fault")),
        recur=0.5),
    Fault(
        "db_primary_lost", "the metadata-db primary dies and nobody fails over", "metadata-db", "WARN",
        ("replication: lost connection to primary db-0 ({slow_ms}ms without WAL), standby db-1 still in recovery",
         "could not receive data from WAL stream: server closed the connection unexpectedly (primary db-0)",
         "primary db-0 missed {misses} heartbeats; automatic failover disabled (maintenance mode)",
         "standby db-1: primary db-0 not reachable for {slow_ms}ms, staying read-only",
         "walreceiver: terminating, primary db-0 stopped streaming (timeline {misses})",
         "health monitor: db-0 (primary) down, no promotion performed"),
        (Symptom("auth", "ERROR", ("session store write failed: connection to metadata-db:5432 refused",
                                   "could not persist session {rid}: database connection refused",
                                   "session save error: metadata-db refused the connection"),
                 15, 0.25),
         Symptom("scheduler", "ERROR", ("failed to persist placement for {job}",
                                        "placement of {job} not saved to metadata store",
                                        "store write for {job} placement raised"), 30, 0.08,
                 trace=_java("org.postgresql.util.PSQLException: Connection to db-0:5432 refused.", _DB_FRAMES,
                             "java.net.ConnectException: Connection refused")),
         Symptom("job-controller", "ERROR", ("status update for {job} failed: cannot execute UPDATE in a "
                                             "read-only transaction",
                                             "could not write status of {job}: database is read-only",
                                             "{job} status sync error: read-only replica rejected UPDATE"),
                 55, 0.15),
         Symptom("model-serving", "ERROR", ("model registry lookup for {model} failed: metadata-db unavailable",
                                            "cannot resolve {model} in registry: database unreachable",
                                            "registry query for {model} errored (metadata store down)"),
                 80, 0.2),
         Symptom("gateway", "ERROR", ("{method} {path} -> 500 in {ms}ms rid={rid} (upstream error)",
                                      "{method} {path} failed with 500 rid={rid}",
                                      "internal error on {method} {path} rid={rid}: upstream 500"), 110, 0.4)),
        "failover_database", "metadata-db",
        {"misses": _r(3, 9)}, hosts=("db-1",),
        decoys=(("WARN", "replication lag on db-1 is {slow_ms}ms (threshold 1000ms)"),
                ("INFO", "standby db-1 caught up with primary db-0"),
                ("WARN", "walreceiver: slow WAL apply, {slow_ms}ms behind")),
        aliases=("db-0", "db-1")),
    Fault(
        "cache_overload", "the cache saturates and everything waits on it", "cache", "WARN",
        ("command queue depth {depth} exceeds high watermark 1000 ({clients} clients connected)",
         "used_memory {mem}GB of maxmemory 16GB, evicting {big} keys/s",
         "slow log: {n} commands over 10ms in the last minute, queue depth {depth}",
         "client connections at {clients}, blocked clients {n}, instantaneous_ops_per_sec {big}",
         "WARNING: command backlog {depth} pending, event loop lagging {slow_ms}ms",
         "maxmemory reached ({mem}GB of 16GB), eviction cannot keep up"),
        (Symptom("model-serving", "WARN", ("cache GET {key} timed out after {slow_ms}ms, falling back to "
                                           "recompute",
                                           "redis read of {key} exceeded {slow_ms}ms",
                                           "cache miss by timeout for {key}, recomputing"), 20, 0.35),
         Symptom("auth", "WARN", ("session lookup slow: {slow_ms}ms (cache)",
                                  "cache round-trip for session took {slow_ms}ms",
                                  "slow session fetch from cache ({slow_ms}ms)"), 35, 0.2),
         Symptom("data-loader", "WARN", ("prefetch stalled {slow_ms}ms waiting on cache for shard {shard}",
                                         "shard {shard} index lookup in cache blocked {slow_ms}ms",
                                         "waited {slow_ms}ms for cache while prefetching {shard}"),
                 50, 0.15),
         Symptom("gateway", "ERROR", ("{method} {path} -> 504 gateway timeout after {slow_ms}ms rid={rid}",
                                      "upstream timed out on {method} {path} rid={rid} (504)",
                                      "504 returned for {path} after {slow_ms}ms rid={rid}"), 80, 0.4),
         Symptom("model-serving", "ERROR", ("request queue full ({big} pending), shedding load",
                                            "dropping request {rid}: queue at capacity",
                                            "load shedding active, {big} requests waiting"), 100, 0.1)),
        "scale_out", "cache",
        {"depth": _r(1500, 9000), "clients": _r(900, 4000), "mem": _c("15.6", "15.8", "15.9")},
        decoys=(("INFO", "command queue depth {n} (high watermark 1000)"),
                ("INFO", "client connections at {big}, blocked clients 0"),
                ("INFO", "command backlog {n} pending, event loop lag {ms}ms")),
        aliases=("cache-0",), recur=0.5),
    Fault(
        "nccl_timeout", "a collective hangs and the distributed job stalls", "trainer", "WARN",
        ("[Rank {rank0}] Watchdog caught collective operation timeout: WorkNCCL(SeqNum={seq}, OpType=ALLREDUCE, "
         "Timeout(ms)=600000) ran for {ran} milliseconds before timing out.",
         "NCCL WARN NET/IB : Got completion from peer {ip}<{port}> with error 12, vendor err 129 (rank {rank0})",
         "[Rank {rank0}] collective ALLREDUCE (SeqNum={seq}) of {job} has not completed after {ran}ms",
         "[Rank {rank0}] ProcessGroupNCCL: operation ALLREDUCE (SeqNum={seq}) timed out after {ran}ms",
         "NCCL WARN Call to ibv_poll_cq failed with error {n} (rank {rank0}, peer {ip})",
         "[Rank {rank0}] collective {seq} stuck: waited {ran}ms for peers of {job}"),
        (Symptom("trainer", "ERROR", ("[Rank {rank}] NCCL error: remote process exited or there was a network "
                                      "error, NCCL version 2.21.5",
                                      "[Rank {rank}] ncclRemoteError: peer connection closed",
                                      "[Rank {rank}] communicator aborted by NCCL watchdog"), 20, 0.15),
         Symptom("parameter-server", "ERROR", ("barrier timeout: waiting for {n} of 32 workers of {job}",
                                               "step_sync barrier of {job} incomplete: {n} workers missing",
                                               "{job} barrier wait exceeded, {n} workers absent"),
                 40, 0.05, trace=_py("RuntimeError: Timed out waiting for workers at barrier 'step_sync'",
                                     ("/opt/ps/server.py", "sync", "self.barrier.wait(timeout=600)"))),
         Symptom("trainer", "FATAL", ("[Rank {rank}] Some NCCL operations have failed or timed out. To avoid "
                                      "data inconsistency, we are taking the entire process down.",
                                      "[Rank {rank}] terminating process after collective failure",
                                      "[Rank {rank}] aborting: collective timeout, process exits"), 60, 0.08),
         Symptom("job-controller", "ERROR", ("{job} stalled: no progress for {big}s; {n} ranks unhealthy",
                                             "no step completed by {job} in {big}s",
                                             "{job} progress watchdog fired ({n} ranks stuck)"), 90, 0.06)),
        "restart_job_from_checkpoint", "{job}",
        {"job": GENERIC["job"], "rank0": _r(0, 31), "seq": _r(10000, 900000), "ran": _r(600001, 600900)},
        decoys=(("INFO", "[Rank {rank}] NCCL INFO comm 0x{rid} rank {rank} nranks 32 - Init COMPLETE"),
                ("INFO", "[Rank {rank}] NCCL INFO Channel 0{n} : {rank} -> {rank} via NET/IB/0"),
                ("INFO", "[Rank {rank}] ProcessGroupNCCL initialized, timeout 600000ms"))),
    Fault(
        "auth_crashloop", "the auth service crashes on start and systemd keeps restarting it", "auth", "ERROR",
        ("auth.service: Main process exited, code=killed, status=6/ABRT",
         "auth.service: Watchdog timeout (limit 30s)!",
         "auth.service: Main process exited, code=exited, status=1/FAILURE",
         "auth.service: Failed with result 'core-dump'.",
         "auth.service: Main process exited, code=dumped, status=11/SEGV",
         "auth.service: Start operation timed out. Terminating."),
        (Symptom("auth", "INFO", ("auth.service: Scheduled restart job, restart counter is at {n}.",
                                  "Stopped Auth API server.",
                                  "Starting Auth API server..."), 5, 0.1,
                 host="origin", fmt="syslog", program="systemd"),
         Symptom("gateway", "ERROR", ("auth check failed for {method} {path}: dial tcp auth:8443: connect: "
                                      "connection refused rid={rid}",
                                      "auth subrequest to auth:8443 failed: connection refused rid={rid}",
                                      "no healthy upstream for auth (connection refused) rid={rid}"), 15, 0.5),
         Symptom("model-serving", "ERROR", ("token introspection failed: connection reset by peer (auth:8443)",
                                            "could not reach auth:8443 for token check: connection reset",
                                            "auth introspection endpoint unreachable (reset by peer)"), 30, 0.25),
         Symptom("scheduler", "ERROR", ("could not refresh service token",
                                        "service token renewal failed",
                                        "token refresh against auth aborted"), 45, 0.05,
                 trace=_java("java.net.ConnectException: Connection refused (auth:8443)", _SCHED_FRAMES)),
         Symptom("gateway", "ERROR", ("returned 503 to {ip}: auth unavailable",
                                      "{method} {path} -> 503 rid={rid} (auth down)",
                                      "auth dependency unavailable, answered 503 to {ip}"), 70, 0.3)),
        "restart_service", "auth",
        fmt="syslog", program="systemd",
        decoys=(("INFO", "Started Session {n} of user {user}."),
                ("INFO", "Reloading Auth API server configuration."),
                ("INFO", "auth.service: Consumed {n}.{ms}s CPU time.")),
        aliases=("auth-01",), recur=0.6),
    Fault(
        "config_typo", "a typo in the scheduler's queue config silently zeroes a GPU quota", "scheduler", "WARN",
        ("config /etc/scheduler/queues.yaml (rev {rev}): unknown key '{badkey}' in queue '{queue}', using defaults",
         "queue '{queue}' reloaded from rev {rev}: gpu_quota unset, defaulting to 0",
         "ignoring unrecognised option '{badkey}' in queues.yaml rev {rev}",
         "queues.yaml rev {rev} applied with warnings: '{badkey}' is not a known field of queue '{queue}'",
         "schema validation of queue '{queue}' (rev {rev}) skipped unknown field {badkey}",
         "quota for queue '{queue}' resolved to 0 GPUs after reload of rev {rev}"),
        (Symptom("scheduler", "WARN", ("no feasible placement for {job} in queue '{queue}': quota 0 GPUs",
                                       "cannot place {job}: queue '{queue}' has no GPU quota",
                                       "{job} unschedulable in '{queue}' (0 GPUs allowed)"), 30, 0.2),
         Symptom("job-controller", "WARN", ("{job} pending for {big}s (reason: Unschedulable)",
                                            "{job} still waiting for placement after {big}s",
                                            "pod {job}-worker-0 Pending: 0/{n} nodes available"), 60, 0.15),
         Symptom("gateway", "ERROR", ("POST /v1/jobs -> 500 in {ms}ms rid={rid}: scheduler rejected submission",
                                      "job submission rid={rid} failed: scheduler returned 500",
                                      "POST /v1/jobs rid={rid}: upstream scheduler error 500"), 90, 0.2),
         Symptom("scheduler", "ERROR", ("queue '{queue}' backlog {big} jobs, oldest waiting {big}s",
                                        "backlog in queue '{queue}' grew to {big} jobs",
                                        "queue '{queue}' is starving: {big} pending jobs"), 120, 0.05)),
        "escalate_to_human", "scheduler",
        {"rev": _r(100, 999), "badkey": _c("gpu_qouta", "max_gpus_per_jbo", "preemtion", "prioirty"),
         "queue": _c("research", "prod-train", "eval", "batch")},
        decoys=(("INFO", "config /etc/scheduler/queues.yaml reloaded (rev {n})"),
                ("INFO", "queues.yaml rev {n} applied, {rows} queues unchanged"),
                ("INFO", "schema validation of queues.yaml rev {n} passed")),
        recur=0.0),
    Fault(
        "object_storage_throttle", "object storage throttles the training-data bucket", "object-storage", "WARN",
        ("SlowDown: request rate on bucket {bucket} exceeded {limit} req/s, throttling prefix shards/",
         "503 SlowDown returned to {n} clients for bucket {bucket} (rate {big} req/s over limit {limit})",
         "throttling GETs on bucket {bucket}: {big} req/s against a limit of {limit}",
         "bucket {bucket} request rate {big}/s over quota {limit}/s, responding SlowDown",
         "rate limiter engaged for {bucket} (limit {limit} req/s)",
         "partition shards/ of {bucket} hot: {big} req/s, returning 503"),
        (Symptom("data-loader", "WARN", ("GET s3://{bucket}/shards/{shard}.tar retry {n} after SlowDown",
                                         "backing off {ms}ms on s3://{bucket}/shards/{shard}.tar (503)",
                                         "S3 asked us to slow down fetching {shard}, retry {n}"), 15, 0.3),
         Symptom("data-loader", "ERROR", ("worker {n} failed to fetch shard {shard}",
                                          "giving up on shard {shard} after max retries",
                                          "shard {shard} download aborted in worker {n}"), 40, 0.08,
                 trace=_py("botocore.exceptions.ClientError: An error occurred (SlowDown) when calling the "
                           "GetObject operation (reached max retries: 9): Please reduce your request rate.",
                           ("/opt/loader/s3.py", "fetch", "obj = self.client.get_object(Bucket=b, Key=k)"),
                           ("/venv/lib/python3.11/site-packages/botocore/client.py", "_make_api_call",
                            "raise error_class(parsed_response, operation_name)"))),
         Symptom("trainer", "WARN", ("[Rank {rank}] step {step} time {slow_ms}ms, input pipeline starved",
                                     "[Rank {rank}] waiting {slow_ms}ms for next batch at step {step}",
                                     "[Rank {rank}] dataloader empty, step {step} delayed {slow_ms}ms"), 60, 0.2),
         Symptom("model-serving", "ERROR", ("failed to load weights for {model} from object storage: 503 "
                                            "SlowDown",
                                            "weight download for {model} throttled (503)",
                                            "could not fetch {model} weights: storage busy"), 90, 0.05),
         Symptom("job-controller", "ERROR", ("{job} throughput below SLO: {n} samples/s",
                                             "{job} running at {n} samples/s, SLO violated",
                                             "SLO breach for {job}: {n} samples/s"), 130, 0.05)),
        "scale_out", "object-storage",
        {"bucket": _c("training-data", "datasets-prod", "tokenized-corpus"), "limit": _c(3500, 5500)},
        decoys=(("INFO", "request rate on bucket training-data {big} req/s ({pct}% of limit)"),
                ("INFO", "bucket datasets-prod request rate {big}/s, quota 5500/s"),
                ("INFO", "rate limiter idle for tokenized-corpus")),
        aliases=("s3-gw-01",), recur=0.5),
    Fault(
        "serving_memory_leak", "a leak in model-serving grows its heap until requests fail", "model-serving",
        "WARN",
        ("heap usage of model-serving worker {pid} at {pct}% after {hours}h uptime (leak suspected)",
         "GC could not reclaim memory: {used}MiB live objects in worker {pid}, growing {growth}MiB/min",
         "tokenizer cache holds {big} entries ({used}MiB), eviction disabled",
         "resident memory of serving worker {pid} grew from {prev_mib}MiB to {used}MiB in {hours}h",
         "memory growth detected in worker {pid}: +{growth}MiB/min for {hours}h",
         "worker {pid} RSS {used}MiB exceeds soft limit, allocator fragmentation {pct}%"),
        (Symptom("model-serving", "WARN", ("request {rid} slow: {slow_ms}ms (GC pause {ms}ms)",
                                           "GC pause of {ms}ms while serving {rid}",
                                           "latency of {rid} {slow_ms}ms, allocator under pressure"),
                 25, 0.3, host="origin"),
         Symptom("model-serving", "ERROR", ("worker {pid} failed request {rid}: MemoryError",
                                            "out of memory while batching {model} requests",
                                            "allocation of {n}MiB failed in worker {pid}"), 60, 0.15,
                 host="origin",
                 trace=_py("MemoryError", ("/srv/serving/batcher.py", "collate", "buf = np.empty(shape)"))),
         Symptom("gateway", "ERROR", ("upstream model-serving timed out after {slow_ms}ms rid={rid}",
                                      "model-serving request rid={rid} exceeded deadline ({slow_ms}ms)",
                                      "deadline exceeded waiting on inference rid={rid}"), 80, 0.35),
         Symptom("gateway", "WARN", ("p99 latency for /v1/completions {slow_ms}ms over SLO",
                                     "SLO burn rate {n}x on /v1/completions latency",
                                     "latency objective of /v1/completions violated ({slow_ms}ms)"), 110, 0.05)),
        "restart_service", "model-serving",
        {"pct": _r(88, 97), "hours": _r(20, 90), "used": _r(20000, 30000), "growth": _r(40, 200),
         "prev_mib": _r(6000, 9000)},
        decoys=(("INFO", "heap usage of model-serving worker {pid} at {pct}% after {n}h uptime"),
                ("INFO", "GC reclaimed {big}MiB in worker {pid}"),
                ("INFO", "worker {pid} RSS {big}MiB, allocator fragmentation {pct}%")),
        aliases=("serve-01", "serve-02")),
)}
"""Every fault type by name."""

assert all(f.action in ACTIONS for f in FAULTS.values()), "fault actions must come from documents.ACTIONS"
