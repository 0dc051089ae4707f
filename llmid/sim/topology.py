"""The simulated cloud AI platform: its services, the hosts they run on and who calls whom.

Faults start in one service and spread to the services that *depend on it* (its callers), so the dependency
graph is what decides the order of the fault chain. Everything here is static data; randomness lives in
`scenario.py` so one seed always gives the same logs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

FORMATS: tuple[str, ...] = ("syslog", "iso", "json", "pylog")
"""Line formats (see `emit.py`): RFC 3164 syslog, ISO-8601 text, ECS JSON lines, Python logging."""


@dataclass(frozen=True, slots=True)
class Service:
    """One service of the platform: where it runs, how it writes logs, what it calls."""

    name: str
    hosts: tuple[str, ...]
    fmt: str
    """Line format this service writes (one of FORMATS)."""
    calls: tuple[str, ...] = ()
    """Services this one depends on: a fault there shows up here."""
    weight: float = 1.0
    """Share of the background traffic (busy services log more)."""
    program: str = ""
    """Syslog program tag (syslog-format services only)."""
    logger: str = ""
    """Python logger name (pylog-format services only)."""


GPU_NODES: tuple[str, ...] = tuple(f"gpu-node-{i:02d}" for i in range(1, 5))

SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("gateway", ("gw-01", "gw-02"), "json", ("auth", "model-serving", "scheduler"), weight=3.0),
        Service("auth", ("auth-01",), "iso", ("metadata-db", "cache"), weight=1.2),
        Service("scheduler", ("sched-01",), "iso", ("job-controller", "metadata-db"), weight=1.0),
        Service("job-controller", ("ctrl-01",), "json", ("trainer", "metadata-db"), weight=1.0),
        Service("trainer", GPU_NODES, "json", ("parameter-server", "data-loader", "nfs"), weight=2.0),
        Service("parameter-server", ("ps-01",), "iso", ("nfs",), weight=0.8),
        Service("data-loader", GPU_NODES, "pylog", ("object-storage", "nfs", "cache"), weight=1.5,
                logger="data_loader.worker"),
        Service("object-storage", ("s3-gw-01",), "json", (), weight=1.0),
        Service("nfs", ("nfs-01",), "syslog", (), weight=0.5, program="nfsd"),
        Service("metadata-db", ("db-0", "db-1"), "iso", (), weight=0.8),
        Service("cache", ("cache-0",), "iso", (), weight=1.0),
        Service("model-serving", ("serve-01", "serve-02"), "iso", ("cache", "object-storage", "metadata-db"),
                weight=2.0),
        Service("host", (), "syslog", (), weight=0.6),
    )
}
"""All services. `host` is the operating system of every machine (kernel, systemd, cron) in syslog form."""


def all_hosts() -> tuple[str, ...]:
    """Every machine of the platform, sorted, each once (for host-level syslog noise)."""
    return tuple(sorted({h for s in SERVICES.values() for h in s.hosts}))


def callers(name: str) -> tuple[str, ...]:
    """Services that call `name` directly: where its failure is felt first."""
    return tuple(s.name for s in SERVICES.values() if name in s.calls)


def blast_radius(name: str) -> list[str]:
    """Services affected by a fault in `name`, nearest first (breadth-first over callers)."""
    seen = {name}
    order: list[str] = []
    queue = deque([name])
    while queue:
        for c in callers(queue.popleft()):
            if c not in seen:
                seen.add(c)
                order.append(c)
                queue.append(c)
    return order


def service_of_host(host: str) -> list[str]:
    """Services running on `host` (a GPU node runs the trainer and the data loader)."""
    return [s.name for s in SERVICES.values() if host in s.hosts]
