"""The fault catalogue: how each fault starts, how it spreads, and what fixes it.

Each fault has a quiet root cause (often INFO or WARN, said once) in the service where it starts, then louder
symptoms in the services that depend on it, appearing one after another (the fault chain). That shape is what
makes root-cause analysis hard: the first ERROR, the most severe line and the rarest line are usually
symptoms, not the cause. The correct recovery action and its target are the ground truth for the planner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from random import Random

from llmid.documents import ACTIONS
from llmid.sim.emit import java_trace, python_traceback
from llmid.sim.phrases import GENERIC, Gen
from llmid.sim.topology import GPU_NODES

TraceFn = Callable[[Random, Mapping[str, object]], list[str]]


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
         "hot-reloaded model-serving to v{version} from registry, previous v{prev}"),
        (Symptom("model-serving", "ERROR", ("inference request {rid} failed: KeyError: 'logits_processor'",
                                            "request {rid} for {model} failed in postprocess"),
                 20, 0.25, host="origin",
                 trace=_py("KeyError: 'logits_processor'",
                           ("/srv/serving/handler.py", "predict", "out = self.postprocess(batch)"),
                           ("/srv/serving/postprocess.py", "postprocess", "fn = cfg['logits_processor']"))),
         Symptom("gateway", "ERROR", ("upstream model-serving returned 503 for POST /v1/completions rid={rid} "
                                      "in {ms}ms", "upstream model-serving returned 500 for POST /v1/completions "
                                      "rid={rid}"), 45, 0.6),
         Symptom("gateway", "ERROR", ("circuit breaker OPEN for upstream model-serving ({n} failures in 30s)",),
                 80, 0.05)),
        "rollback_deploy", "model-serving",
        {"version": _c("2.3.1", "2.4.0", "3.0.0-rc2", "2.3.7"), "prev": _c("2.2.9", "2.3.0", "2.3.6"),
         "build": _r(4000, 9999), "sha": lambda r: f"{r.getrandbits(48):012x}"},
        decoys=(("INFO", "deployed version v{ver} of {svc} (build {big}, image sha256:{trace_id})"),)),
    Fault(
        "disk_full", "the shared NFS volume fills up", "nfs", "WARN",
        ("disk /data {pct}% full ({free}G free of 20T)",
         "filesystem /data on /dev/md0 usage {pct}% exceeds threshold 95%",
         "low space on /data: {free}G left, inode usage {ipct}%"),
        (Symptom("nfs", "ERROR", ("write error on /data/ckpt/{job}: No space left on device (errno 28)",),
                 30, 0.15, program="kernel"),
         Symptom("trainer", "ERROR", ("failed to save checkpoint /data/ckpt/{job}/step-{step}.pt: [Errno 28] "
                                      "No space left on device",), 60, 0.2),
         Symptom("data-loader", "ERROR", ("failed to write shard cache /data/cache/shard-{shard}.arrow",),
                 90, 0.12, trace=_py("OSError: [Errno 28] No space left on device",
                                     ("/opt/loader/cache.py", "put", "f.write(buf)"))),
         Symptom("parameter-server", "ERROR", ("snapshot of optimizer state failed: write /data/ps/snap-{step}: "
                                               "no space left on device",), 110, 0.08),
         Symptom("job-controller", "ERROR", ("job {job} failed: checkpoint write error (exit code 1), retry {n}",),
                 150, 0.1)),
        "free_disk", "nfs-01:/data",
        {"pct": _r(96, 99), "free": _r(8, 90), "ipct": _r(40, 70)}, program="diskmon",
        decoys=(("INFO", "disk /data {pct}% full ({big}G free of 20T)"),)),
    Fault(
        "cert_expired", "the auth service's TLS certificate expires", "auth", "WARN",
        ("TLS certificate CN=auth.internal expired at {expiry} (serial {serial})",
         "certificate /etc/auth/tls/server.crt is not valid after {expiry}; still serving it",
         "x509: certificate for auth.internal has expired, renewal job last ran {days} days ago"),
        (Symptom("gateway", "ERROR", ("TLS handshake with auth:8443 failed: x509: certificate has expired or is "
                                      "not yet valid rid={rid}",), 15, 0.4),
         Symptom("scheduler", "ERROR", ("token verification against auth failed for user {user}",), 40, 0.1,
                 trace=_java("javax.net.ssl.SSLHandshakeException: PKIX path validation failed: "
                             "java.security.cert.CertPathValidatorException: validity check failed",
                             _SCHED_FRAMES, "java.security.cert.CertificateExpiredException: NotAfter: {expiry}")),
         Symptom("model-serving", "ERROR", ("rejecting request {rid}: could not validate bearer token (auth "
                                            "unreachable: SSLError CERTIFICATE_VERIFY_FAILED)",), 70, 0.3),
         Symptom("gateway", "ERROR", ("returned 401 to {ip} for {method} {path}: auth backend unavailable",),
                 100, 0.3)),
        "renew_certificate", "auth",
        {"expiry": _c("2026-04-30T23:59:59Z", "2026-05-01T00:00:00Z", "2026-04-29T12:00:00Z"),
         "serial": lambda r: f"{r.getrandbits(40):010X}", "days": _r(35, 95)},
        decoys=(("INFO", "certificate CN={svc}.internal renewed, next expiry in {big} hours"),)),
    Fault(
        "trainer_oom", "a trainer's host memory grows until the kernel kills it", "trainer", "WARN",
        ("host memory of trainer {job} rank {rank0} at {pct}% of container limit {limit}Gi",
         "RSS of {job} rank {rank0} grew {growth}% in 5 min, now {used}Gi of {limit}Gi limit",
         "memory pressure in {job} rank {rank0}: {pct}% of {limit}Gi used by {workers} dataloader workers"),
        (Symptom("host", "ERROR", ("Memory cgroup out of memory: Killed process {pid} (python) total-vm:{big}kB, "
                                   "anon-rss:{big}kB, oom_score_adj:0",), 25, 0.03, host="origin",
                 program="kernel"),
         Symptom("trainer", "ERROR", ("worker rank {rank0} of {job} exited with signal 9 (SIGKILL)",
                                      "torch.distributed.elastic: failure on rank {rank0} of {job}: ChildFailedError "
                                      "exitcode -9"), 35, 0.1, host="origin"),
         Symptom("parameter-server", "WARN", ("lost heartbeat from {job} rank {rank}, marking worker dead",),
                 50, 0.15),
         Symptom("job-controller", "ERROR", ("pod {job}-worker-{rank0} OOMKilled (limit {limit}Gi), restart {n}",),
                 70, 0.08),
         Symptom("scheduler", "WARN", ("job {job} requeued after failure; backoff {n}s",), 110, 0.05)),
        "raise_memory_limit", "{job}",
        {"job": GENERIC["job"], "rank0": _r(0, 31), "pct": _r(93, 99), "limit": _c(64, 96, 128),
         "growth": _r(20, 60), "used": _r(60, 120), "workers": _c(8, 12, 16)},
        decoys=(("INFO", "host memory of trainer {job} rank {rank} at {pct}% of container limit 128Gi"),)),
    Fault(
        "gpu_xid", "uncorrectable ECC / Xid errors on one GPU node", "host", "ERROR",
        ("NVRM: Xid (PCI:0000:{bus}:00): 48, pid={pid}, name=python, DBE (double-bit ECC error) detected",
         "NVRM: Xid (PCI:0000:{bus}:00): 79, pid={pid}, GPU has fallen off the bus.",
         "NVRM: Xid (PCI:0000:{bus}:00): 94, pid={pid}, Contained ECC error."),
        (Symptom("trainer", "ERROR", ("CUDA error: uncorrectable ECC error encountered on device {gpu} "
                                      "(rank {rank})",), 10, 0.15, host="origin"),
         Symptom("data-loader", "ERROR", ("pin_memory thread died on device {gpu}",), 25, 0.06, host="origin",
                 trace=_py("RuntimeError: CUDA error: an illegal memory access was encountered",
                           ("/opt/loader/pin.py", "_pin_loop", "batch = batch.pin_memory()"))),
         Symptom("job-controller", "ERROR", ("job {job} rank {rank} on {host} failed: NCCL communicator aborted",),
                 45, 0.12),
         Symptom("scheduler", "WARN", ("node {host} failed health probe (dcgm: gpu {gpu} health=FAIL), "
                                       "{n} jobs affected",), 70, 0.05),
         Symptom("job-controller", "FATAL", ("job {job} exceeded max restarts (3) on {host}, giving up",),
                 100, 0.04)),
        "drain_node", "{host}",
        {"bus": _c("3b", "5e", "86", "af", "d8"), "gpu": _r(0, 7)}, hosts=GPU_NODES, program="kernel",
        decoys=(("WARN", "NVRM: Xid (PCI:0000:3b:00): 13, pid={pid}, Graphics Exception: ESR 0x{rid}"),)),
    Fault(
        "db_primary_lost", "the metadata-db primary dies and nobody fails over", "metadata-db", "WARN",
        ("replication: lost connection to primary db-0 ({slow_ms}ms without WAL), standby db-1 still in recovery",
         "could not receive data from WAL stream: server closed the connection unexpectedly (primary db-0)",
         "primary db-0 missed {misses} heartbeats; automatic failover disabled (maintenance mode)"),
        (Symptom("auth", "ERROR", ("session store write failed: connection to metadata-db:5432 refused",),
                 15, 0.25),
         Symptom("scheduler", "ERROR", ("failed to persist placement for {job}",), 30, 0.08,
                 trace=_java("org.postgresql.util.PSQLException: Connection to db-0:5432 refused.", _DB_FRAMES,
                             "java.net.ConnectException: Connection refused")),
         Symptom("job-controller", "ERROR", ("status update for {job} failed: cannot execute UPDATE in a "
                                             "read-only transaction",), 55, 0.15),
         Symptom("model-serving", "ERROR", ("model registry lookup for {model} failed: metadata-db unavailable",),
                 80, 0.2),
         Symptom("gateway", "ERROR", ("{method} {path} -> 500 in {ms}ms rid={rid} (upstream error)",), 110, 0.4)),
        "failover_database", "metadata-db",
        {"misses": _r(3, 9)}, hosts=("db-1",),
        decoys=(("WARN", "replication lag on db-1 is {slow_ms}ms (threshold 1000ms)"),)),
    Fault(
        "cache_overload", "the cache saturates and everything waits on it", "cache", "WARN",
        ("command queue depth {depth} exceeds high watermark 1000 ({clients} clients connected)",
         "used_memory {mem}GB of maxmemory 16GB, evicting {big} keys/s",
         "slow log: {n} commands over 10ms in the last minute, queue depth {depth}"),
        (Symptom("model-serving", "WARN", ("cache GET {key} timed out after {slow_ms}ms, falling back to "
                                           "recompute",), 20, 0.35),
         Symptom("auth", "WARN", ("session lookup slow: {slow_ms}ms (cache)",), 35, 0.2),
         Symptom("data-loader", "WARN", ("prefetch stalled {slow_ms}ms waiting on cache for shard {shard}",),
                 50, 0.15),
         Symptom("gateway", "ERROR", ("{method} {path} -> 504 gateway timeout after {slow_ms}ms rid={rid}",),
                 80, 0.4),
         Symptom("model-serving", "ERROR", ("request queue full ({big} pending), shedding load",), 100, 0.1)),
        "scale_out", "cache",
        {"depth": _r(1500, 9000), "clients": _r(900, 4000), "mem": _c("15.6", "15.8", "15.9")},
        decoys=(("INFO", "command queue depth {n} (high watermark 1000)"),)),
    Fault(
        "nccl_timeout", "a collective hangs and the distributed job stalls", "trainer", "WARN",
        ("[Rank {rank0}] Watchdog caught collective operation timeout: WorkNCCL(SeqNum={seq}, OpType=ALLREDUCE, "
         "Timeout(ms)=600000) ran for {ran} milliseconds before timing out.",
         "NCCL WARN NET/IB : Got completion from peer {ip}<{port}> with error 12, vendor err 129 (rank {rank0})",
         "[Rank {rank0}] collective ALLREDUCE (SeqNum={seq}) of {job} has not completed after {ran}ms"),
        (Symptom("trainer", "ERROR", ("[Rank {rank}] NCCL error: remote process exited or there was a network "
                                      "error, NCCL version 2.21.5",), 20, 0.15),
         Symptom("parameter-server", "ERROR", ("barrier timeout: waiting for {n} of 32 workers of {job}",),
                 40, 0.05, trace=_py("RuntimeError: Timed out waiting for workers at barrier 'step_sync'",
                                     ("/opt/ps/server.py", "sync", "self.barrier.wait(timeout=600)"))),
         Symptom("trainer", "FATAL", ("[Rank {rank}] Some NCCL operations have failed or timed out. To avoid "
                                      "data inconsistency, we are taking the entire process down.",), 60, 0.08),
         Symptom("job-controller", "ERROR", ("{job} stalled: no progress for {big}s; {n} ranks unhealthy",),
                 90, 0.06)),
        "restart_job_from_checkpoint", "{job}",
        {"job": GENERIC["job"], "rank0": _r(0, 31), "seq": _r(10000, 900000), "ran": _r(600001, 600900)},
        decoys=(("INFO", "[Rank {rank}] NCCL INFO comm 0x{rid} rank {rank} nranks 32 - Init COMPLETE"),)),
    Fault(
        "auth_crashloop", "the auth service crashes on start and systemd keeps restarting it", "auth", "ERROR",
        ("auth.service: Main process exited, code=killed, status=6/ABRT",
         "auth.service: Watchdog timeout (limit 30s)!",
         "auth.service: Main process exited, code=exited, status=1/FAILURE"),
        (Symptom("auth", "INFO", ("auth.service: Scheduled restart job, restart counter is at {n}.",), 5, 0.1,
                 host="origin", fmt="syslog", program="systemd"),
         Symptom("gateway", "ERROR", ("auth check failed for {method} {path}: dial tcp auth:8443: connect: "
                                      "connection refused rid={rid}",), 15, 0.5),
         Symptom("model-serving", "ERROR", ("token introspection failed: connection reset by peer (auth:8443)",),
                 30, 0.25),
         Symptom("scheduler", "ERROR", ("could not refresh service token",), 45, 0.05,
                 trace=_java("java.net.ConnectException: Connection refused (auth:8443)", _SCHED_FRAMES)),
         Symptom("gateway", "ERROR", ("returned 503 to {ip}: auth unavailable",), 70, 0.3)),
        "restart_service", "auth",
        fmt="syslog", program="systemd",
        decoys=(("INFO", "Started Session {n} of user {user}."),)),
    Fault(
        "config_typo", "a typo in the scheduler's queue config silently zeroes a GPU quota", "scheduler", "WARN",
        ("config /etc/scheduler/queues.yaml (rev {rev}): unknown key '{badkey}' in queue '{queue}', using defaults",
         "queue '{queue}' reloaded from rev {rev}: gpu_quota unset, defaulting to 0",
         "ignoring unrecognised option '{badkey}' in queues.yaml rev {rev}"),
        (Symptom("scheduler", "WARN", ("no feasible placement for {job} in queue '{queue}': quota 0 GPUs",),
                 30, 0.2),
         Symptom("job-controller", "WARN", ("{job} pending for {big}s (reason: Unschedulable)",), 60, 0.15),
         Symptom("gateway", "ERROR", ("POST /v1/jobs -> 500 in {ms}ms rid={rid}: scheduler rejected submission",),
                 90, 0.2),
         Symptom("scheduler", "ERROR", ("queue '{queue}' backlog {big} jobs, oldest waiting {big}s",), 120, 0.05)),
        "escalate_to_human", "scheduler",
        {"rev": _r(100, 999), "badkey": _c("gpu_qouta", "max_gpus_per_jbo", "preemtion", "prioirty"),
         "queue": _c("research", "prod-train", "eval", "batch")},
        decoys=(("INFO", "config /etc/scheduler/queues.yaml reloaded (rev {n})"),)),
    Fault(
        "object_storage_throttle", "object storage throttles the training-data bucket", "object-storage", "WARN",
        ("SlowDown: request rate on bucket {bucket} exceeded {limit} req/s, throttling prefix shards/",
         "503 SlowDown returned to {n} clients for bucket {bucket} (rate {big} req/s over limit {limit})"),
        (Symptom("data-loader", "WARN", ("GET s3://{bucket}/shards/{shard}.tar retry {n} after SlowDown",), 15,
                 0.3),
         Symptom("data-loader", "ERROR", ("worker {n} failed to fetch shard {shard}",), 40, 0.08,
                 trace=_py("botocore.exceptions.ClientError: An error occurred (SlowDown) when calling the "
                           "GetObject operation (reached max retries: 9): Please reduce your request rate.",
                           ("/opt/loader/s3.py", "fetch", "obj = self.client.get_object(Bucket=b, Key=k)"),
                           ("/venv/lib/python3.11/site-packages/botocore/client.py", "_make_api_call",
                            "raise error_class(parsed_response, operation_name)"))),
         Symptom("trainer", "WARN", ("[Rank {rank}] step {step} time {slow_ms}ms, input pipeline starved",), 60,
                 0.2),
         Symptom("model-serving", "ERROR", ("failed to load weights for {model} from object storage: 503 "
                                            "SlowDown",), 90, 0.05),
         Symptom("job-controller", "ERROR", ("{job} throughput below SLO: {n} samples/s",), 130, 0.05)),
        "scale_out", "object-storage",
        {"bucket": _c("training-data", "datasets-prod", "tokenized-corpus"), "limit": _c(3500, 5500)},
        decoys=(("INFO", "request rate on bucket training-data {big} req/s ({pct}% of limit)"),)),
)}
"""Every fault type by name."""

assert all(f.action in ACTIONS for f in FAULTS.values()), "fault actions must come from documents.ACTIONS"
