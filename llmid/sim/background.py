"""Normal traffic of every service, including the benign WARN and ERROR lines healthy systems always write.

Without benign noise (retried timeouts, slow health checks, one-off admin events) a detector could call any
ERROR an incident and any unique line the root cause; real platforms are never that quiet, so neither is this.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmid.sim.emit import java_trace, python_traceback
from llmid.sim.faults import TraceFn


@dataclass(frozen=True, slots=True)
class Line:
    """One kind of background line of a service, with its relative frequency."""

    weight: float
    level: str
    text: str
    program: str = ""
    """Syslog program (host-level lines)."""
    trace: TraceFn | None = None


_RETRY_TRACE: TraceFn = lambda rng, p: python_traceback(  # noqa: E731
    rng, "ConnectionResetError: [Errno 104] Connection reset by peer",
    [("/opt/loader/s3.py", "fetch", "obj = self.client.get_object(Bucket=b, Key=k)"),
     ("/venv/lib/python3.11/site-packages/urllib3/connectionpool.py", "urlopen", "raise e")])
_JAVA_TIMEOUT: TraceFn = lambda rng, p: java_trace(  # noqa: E731
    rng, "java.net.SocketTimeoutException: Read timed out",
    ["java.base/sun.nio.ch.NioSocketImpl.timedRead", "ai.platform.scheduler.client.ControllerClient.poll",
     "ai.platform.scheduler.loop.Reconciler.run"])

BACKGROUND: dict[str, tuple[Line, ...]] = {
    "gateway": (
        Line(30, "INFO", "{method} {path} {status} {ms}ms rid={rid} client={ip}"),
        Line(4, "INFO", "POST /v1/completions 200 {ms}ms rid={rid} model={model} tokens={big}"),
        Line(1.5, "WARN", "upstream model-serving slow: {slow_ms}ms for rid={rid}, retrying once"),
        Line(0.8, "WARN", "client {ip} closed connection before response rid={rid}"),
        Line(0.4, "ERROR", "upstream timeout after {slow_ms}ms on {path} rid={rid} (retry 1/3 succeeded)"),
        Line(0.3, "ERROR", "rate limit exceeded for api key of user {user}: 429 returned"),
    ),
    "auth": (
        Line(10, "INFO", "issued token for user {user} (ttl 3600s) in {ms}ms"),
        Line(6, "INFO", "validated token for {svc} request {rid}"),
        Line(0.6, "WARN", "login failed for user {user} from {ip}: bad password"),
        Line(0.2, "ERROR", "LDAP bind timed out after {slow_ms}ms, retrying with secondary"),
    ),
    "scheduler": (
        Line(8, "INFO", "placed {job} on {node} ({gpus} GPUs) in queue research"),
        Line(5, "INFO", "reconcile loop finished: {n} jobs running, {rows} pending, took {ms}ms"),
        Line(0.6, "WARN", "preempting {job} on {node} for higher-priority job"),
        Line(0.3, "ERROR", "poll of job-controller failed, will retry", trace=_JAVA_TIMEOUT),
    ),
    "job-controller": (
        Line(8, "INFO", "{job} step {step} loss={loss} lr={lr}"),
        Line(4, "INFO", "pod {job}-worker-{rank} ready on {node}"),
        Line(2, "INFO", "checkpoint for {job} saved at step {step} ({gb}GB) in {ms}ms"),
        Line(0.4, "WARN", "{job} straggler rank {rank}: step time {slow_ms}ms"),
        Line(0.2, "ERROR", "pod {job}-worker-{rank} evicted (spot reclaim), rescheduling"),
    ),
    "trainer": (
        Line(12, "INFO", "[Rank {rank}] step {step} loss={loss} lr={lr} throughput={big} tok/s"),
        Line(3, "INFO", "[Rank {rank}] GPU memory allocated {gb}GB, reserved {gb}GB"),
        Line(0.5, "WARN", "[Rank {rank}] gradient overflow at step {step}, skipping update, loss scale halved"),
        Line(0.2, "ERROR", "[Rank {rank}] dataloader worker {n} timed out, respawned"),
    ),
    "parameter-server": (
        Line(8, "INFO", "pushed {big} parameters to {n} workers in {ms}ms"),
        Line(3, "INFO", "optimizer state snapshot {step} written in {ms}ms"),
        Line(0.4, "WARN", "slow worker rank {rank}: pull took {slow_ms}ms"),
    ),
    "data-loader": (
        Line(10, "INFO", "loaded shard {shard} ({big} samples) in {ms}ms"),
        Line(4, "INFO", "prefetch queue {n}/64, cache hit ratio 0.{rows}"),
        Line(0.6, "WARN", "retrying GET s3://training-data/shards/{shard}.tar after {ms}ms (attempt 2)"),
        Line(0.15, "ERROR", "transient error fetching shard {shard}, will retry", trace=_RETRY_TRACE),
    ),
    "object-storage": (
        Line(12, "INFO", "{method} /training-data/shards/{shard}.tar {status} {ms}ms"),
        Line(3, "INFO", "PUT /checkpoints/{job}/step-{step}.pt 200 {ms}ms"),
        Line(0.3, "WARN", "multipart upload {rid} slow: part {n} took {slow_ms}ms"),
    ),
    "nfs": (
        Line(6, "INFO", "export /data: {n} active clients, {big} ops/s", program="nfsd"),
        Line(1, "INFO", "client {ip} mounted /data", program="rpc.mountd"),
        Line(0.4, "WARN", "server not responding to {ip} for {ms}ms, still trying", program="kernel"),
    ),
    "metadata-db": (
        Line(8, "INFO", "checkpoint complete: wrote {big} buffers ({pct}%), sync {ms}ms"),
        Line(6, "INFO", "statement: UPDATE {table} SET ... affected {rows} rows in {ms}ms"),
        Line(0.6, "WARN", "duration: {slow_ms} ms  statement: SELECT * FROM {table} WHERE ..."),
        Line(0.15, "ERROR", "canceling statement due to statement timeout on {table}"),
    ),
    "cache": (
        Line(8, "INFO", "DB 0: {big} keys ({n} volatile) in 16384 slots HT"),
        Line(4, "INFO", "{n} clients connected, used_memory {cache_gb}GB of 16GB"),
        Line(0.5, "WARN", "client {ip}:{port} output buffer limit reached, closing"),
    ),
    "model-serving": (
        Line(14, "INFO", "served {model} request {rid} in {ms}ms ({n} tokens)"),
        Line(3, "INFO", "batch of {n} requests for {model} took {ms}ms on gpu"),
        Line(0.6, "WARN", "request {rid} exceeded max_tokens, truncated"),
        Line(0.2, "ERROR", "request {rid} failed validation: prompt too long ({big} tokens)"),
    ),
    "host": (
        Line(4, "INFO", "(root) CMD (/usr/lib/sysstat/sa1 1 1)", program="CRON"),
        Line(2, "INFO", "Accepted publickey for {user} from {ip} port {port} ssh2", program="sshd"),
        Line(2, "INFO", "Started Session {n} of user {user}.", program="systemd"),
        Line(0.5, "WARN", "TCP: request_sock_TCP: Possible SYN flooding on port 8443. Sending cookies.",
             program="kernel"),
        Line(0.3, "ERROR", "error: kex_exchange_identification: Connection closed by remote host",
             program="sshd"),
    ),
}
"""Background lines per service."""

PERIODIC: tuple[tuple[str, float, str, str], ...] = (
    ("gateway", 300.0, "WARN", "health check of model-serving slow: {slow_ms}ms (threshold 1000ms)"),
    ("scheduler", 240.0, "WARN", "health check of job-controller slow: {slow_ms}ms (threshold 1000ms)"),
    ("metadata-db", 600.0, "INFO", "automatic vacuum of table {table}: removed {big} dead tuples"),
    ("cache", 180.0, "INFO", "background saving started by pid {pid}"),
)
"""(service, period s, level, phrasing): lines that recur on a clock, the way probes and cron jobs do."""

RARE: tuple[tuple[str, Line], ...] = (
    ("gateway", Line(1, "INFO", "reloaded TLS session ticket keys")),
    ("auth", Line(1, "WARN", "clock skew of {ms}ms detected against ntp pool")),
    ("scheduler", Line(1, "INFO", "leader election won by sched-01 (term {n})")),
    ("job-controller", Line(1, "INFO", "garbage-collected {n} finished pods")),
    ("metadata-db", Line(1, "INFO", "received SIGHUP, reloading configuration files")),
    ("cache", Line(1, "WARN", "latency monitor: fork took {ms}ms")),
    ("model-serving", Line(1, "INFO", "warm-up of {model} complete ({n} batches)")),
    ("object-storage", Line(1, "INFO", "lifecycle rule expired {big} objects in bucket tmp-artifacts")),
    ("nfs", Line(1, "INFO", "exportfs: re-exported /data with options rw,sync,no_root_squash")),
    ("data-loader", Line(1, "WARN", "shard index for split 'validation' rebuilt ({big} entries)")),
    ("gateway", Line(1, "ERROR", "invalid JSON body from {ip}: Expecting ',' delimiter at char {n}")),
    ("host", Line(1, "INFO", "rotating /var/log/syslog", program="logrotate")),
    ("gateway", Line(1, "INFO", "configuration reloaded: {n} routes, {rows} upstream clusters")),
    ("auth", Line(1, "INFO", "rotated signing key, new kid {rid}")),
    ("scheduler", Line(1, "WARN", "node {node} cordoned by admin {user} for maintenance")),
    ("job-controller", Line(1, "ERROR", "job {job} cancelled by user {user}")),
    ("trainer", Line(1, "WARN", "[Rank {rank}] NaN detected in loss at step {step}, batch skipped")),
    ("parameter-server", Line(1, "INFO", "rebalanced {n} parameter shards across servers")),
    ("metadata-db", Line(1, "WARN", "could not obtain lock on relation {table}, autovacuum skipped")),
    ("cache", Line(1, "INFO", "DB saved on disk, {big} changes in {ms}ms")),
    ("model-serving", Line(1, "WARN", "model {model} unloaded after {n} minutes idle")),
    ("object-storage", Line(1, "ERROR", "AccessDenied for anonymous GET /public-assets/{shard}.png from {ip}")),
    ("host", Line(1, "ERROR", "audit: backlog limit exceeded", program="kernel")),
    ("data-loader", Line(1, "INFO", "tokenizer vocabulary reloaded ({big} entries)")),
    ("gateway", Line(1, "WARN", "TLS client hello with unsupported protocol version from {ip}")),
    ("auth", Line(1, "ERROR", "OIDC discovery document refresh failed, keeping cached copy (HTTP 502)")),
    ("scheduler", Line(1, "INFO", "quota report: {n} GPUs in use of 512")),
    ("nfs", Line(1, "WARN", "RPC: fragment too large: {big}", program="kernel")),
    ("job-controller", Line(1, "WARN", "deprecated field spec.gpus used by {job}, use spec.resources")),
    ("trainer", Line(1, "INFO", "[Rank {rank}] profiler trace written to /tmp/prof-{step}.json")),
    ("model-serving", Line(1, "ERROR", "client disconnected during stream of {rid}: broken pipe")),
    ("host", Line(1, "INFO", "pam_unix(sudo:session): session opened for user root by {user}(uid=0)",
                  program="sudo")),
    ("cache", Line(1, "WARN", "replica 10.2.{n}.4:6379 asks for synchronization, partial resync accepted")),
    ("metadata-db", Line(1, "INFO", "checkpoint starting: time")),
    ("parameter-server", Line(1, "WARN", "gradient compression disabled for {n} tensors (too small)")),
    ("data-loader", Line(1, "ERROR", "corrupt sample {big} in shard {shard} skipped (bad JPEG header)")),
)
"""One-off benign events, so the root cause is never the only line of its kind. The last third is held out
(`faults.split_phrasings`): "test" scenarios get benign one-offs that training never saw."""

CHANGES: tuple[tuple[str, Line], ...] = (
    ("cache", Line(1, "INFO", "deployed version v{ver} of cache-exporter (build {big})")),
    ("gateway", Line(1, "INFO", "rollout complete: gateway v{ver} now serving 100% of traffic")),
    ("auth", Line(1, "INFO", "feature flag {key} enabled for {pct}% of users")),
    ("scheduler", Line(1, "INFO", "config /etc/scheduler/priorities.yaml reloaded (rev {n})")),
    ("metadata-db", Line(1, "INFO", "ALTER TABLE {table} ADD COLUMN completed in {ms}ms")),
    ("object-storage", Line(1, "INFO", "bucket policy for tmp-artifacts updated by {user}")),
)
"""Harmless changes (deploys, config reloads, migrations) that an operator makes while the platform is healthy;
the simulator sometimes puts one just before a fault starts, as the coincidences of real incidents do."""
