"""End-to-end lines/s of `llmid ingest` through Redis with 1 and 2 worker processes, against the in-process run.

Generates a simulated incident log (`llmid sim generate`), then times, on a fresh SQLite store each time:
- the in-process run: `llmid ingest FILE --store ...`;
- the broker run: `llmid ingest FILE --broker redis://... --store ... --wait` with K = 1, 2 `llmid worker`
  processes already running (Debian's redis-server on a free loopback port, no persistence).
Every broker run's `llmid stats --json` must equal the in-process run's (else the benchmark fails), and Redis'
memory is read at the end of each run. The configurations take turns, one run of each per round (workers are
started afresh for each run and first ingest the file once untimed, so they run warm, as long-running workers
do), so a machine whose speed drifts during the benchmark (other jobs, a busy hypervisor)
shifts every row alike; the speed-up over 1 worker is also given per round (paired). Before and after, two busy
processes are timed against one: the CPU a second worker can get at all on this machine at the time (2.0 on two
idle cores), the ceiling of any 2-worker speed-up. Prints a Markdown table (medians of --runs) and, with --json,
the raw figures. Usage:

    .venv/bin/python benchmarks/workers_throughput.py --lines 100000 --runs 5 [--device cuda:0] [--pool solo]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LLMID = [sys.executable, "-m", "llmid"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return p


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    run(cmd, env)
    return time.perf_counter() - t


def child_cpu() -> float:
    """CPU seconds used so far by this process's finished children (the ingest commands)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid: int) -> float:
    """CPU seconds of a running process and its live children (a worker and its pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            todo += [int(x) for x in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
    return total


def cpu_share(k: int, seconds: float = 2.0) -> float:
    """Cores that k busy-looping processes (each in its own session) got together over `seconds`."""
    code = f"import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < {seconds}: pass"
    c0 = child_cpu()
    procs = [subprocess.Popen([sys.executable, "-c", code], start_new_session=True) for _ in range(k)]
    for p in procs:
        p.wait()
    return (child_cpu() - c0) / seconds


def second_core() -> float:
    """CPU two busy processes get relative to one (2.0 when two cores are free)."""
    return cpu_share(2) / max(cpu_share(1), 1e-9)


def redis_memory(port: int) -> dict[str, int]:
    import redis

    info = redis.Redis(host="127.0.0.1", port=port).info("memory")
    return {"used_memory": int(info["used_memory"]), "used_memory_peak": int(info["used_memory_peak"])}


def stats(store: str) -> dict[str, int]:
    return json.loads(run([*LLMID, "stats", "--json", "--store", store]).stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=100_000, help="lines of the generated log (default 100000)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per configuration (median reported)")
    ap.add_argument("--workers", default="1,2", help="worker-process counts to try (default 1,2)")
    ap.add_argument("--pool", choices=("solo", "prefork"), default="solo",
                    help="solo: each worker process runs tasks itself (default); prefork: --concurrency 1 children")
    ap.add_argument("--device", default="cpu", help="worker --device (cpu, cuda:N)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary directory)")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures here")
    args = ap.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    work = Path(args.keep or tempfile.mkdtemp(prefix="llmid-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    run([*LLMID, "sim", "generate", "--seed", str(args.seed), "--lines", str(args.lines), "--out", str(work / "sim")])
    log = work / "sim" / "scenario.log"
    stats_ref: dict[str, int] | None = None

    def fresh(name: str) -> str:
        for suffix in ("", "-wal", "-shm"):
            (work / f"{name}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{work / name}"

    results: dict[str, Any] = {"lines": 0, "runs": args.runs, "pool": args.pool, "device": args.device,
                               "cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "configs": {},
                               "second_core": [second_core()]}
    counts = [int(x) for x in args.workers.split(",")]
    names = {k: f"{k} worker{'s' if k > 1 else ''}" for k in counts}
    configs: dict[str, dict[str, list[Any]]] = {"in-process": {"seconds": [], "cpu": []}}
    for k in counts:
        configs[names[k]] = {"seconds": [], "redis": [], "cpu": []}
    results["configs"] = configs

    port = free_port()
    redis_dir = work / "redis"
    redis_dir.mkdir(exist_ok=True)
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(redis_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    broker = f"redis://127.0.0.1:{port}/0"

    def broker_run(k: int) -> None:
        workers = [subprocess.Popen([*LLMID, "worker", "--broker", broker, "--pool", args.pool, "--concurrency",
                                     "1", "--device", args.device, "-q", "--store", fresh("dead.db")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                   for _ in range(k)]
        try:
            time.sleep(3.0)  # workers connected and idle
            # Warm-up, untimed: the workers load their models and fill their caches, as long-running workers have.
            run([*LLMID, "ingest", str(log), "--broker", broker, "--store", fresh("warmup.db"), "--wait", "-q",
                 "--timeout", "1200"])
            store = fresh(f"broker{k}.db")
            c0, w0 = child_cpu(), sum(proc_cpu(w.pid) for w in workers)
            secs = timed([*LLMID, "ingest", str(log), "--broker", broker, "--store", store, "--wait", "-q",
                          "--timeout", "1200"])
            cpu = child_cpu() - c0 + sum(proc_cpu(w.pid) for w in workers) - w0
            c = configs[names[k]]
            c["seconds"].append(secs)
            c["cpu"].append(cpu)
            c["redis"].append(redis_memory(port))
            got = stats(store)
            if got != stats_ref:
                raise SystemExit(f"{k} worker(s): stats {got} differ from the in-process run's {stats_ref}")
        finally:
            for w in workers:
                os.killpg(w.pid, signal.SIGTERM)
            for w in workers:
                w.wait(30)

    try:
        time.sleep(0.5)
        for i in range(args.runs):
            store = fresh("inproc.db")
            c0 = child_cpu()
            configs["in-process"]["seconds"].append(timed([*LLMID, "ingest", str(log), "--store", store, "-q"]))
            configs["in-process"]["cpu"].append(child_cpu() - c0)
            if i == 0:
                stats_ref = stats(store)
                counted = stats_ref["records"]
                results["lines"] = counted
            for k in counts:
                broker_run(k)
    finally:
        server.terminate()
        server.wait(10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["second_core"].append(second_core())
    results["load_after"] = os.getloadavg()[0]

    lines = results["lines"]
    base1 = None
    print(f"{lines} records, {args.runs} runs each (median, configurations in turn), pool {args.pool}, device "
          f"{args.device}, {os.cpu_count()} CPUs, load average before {results['load_before']:.2f}, after "
          f"{results['load_after']:.2f}; two busy processes got "
          f"{' and '.join(f'{x:.2f}x' for x in results['second_core'])} the CPU of one (before, after)\n")
    print("| run | median s | lines/s | vs in-process | vs 1 worker | CPU s (ingest + workers) | "
          "Redis used_memory at end (peak) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    inproc = statistics.median(results["configs"]["in-process"]["seconds"])
    for name, c in results["configs"].items():
        med = statistics.median(c["seconds"])
        rate = lines / med
        c["median_s"], c["lines_per_s"] = med, rate
        if name == "1 worker":
            base1 = rate
        vs1 = f"{rate / base1:.2f}x" if base1 and name != "in-process" else ""
        mem = ""
        if "redis" in c:
            last = c["redis"][-1]["used_memory"] / 2**20
            peak = max(m["used_memory_peak"] for m in c["redis"]) / 2**20
            mem = f"{last:.1f} MiB ({peak:.1f})"
        cpu = statistics.median(c["cpu"])
        print(f"| {name} | {med:.2f} | {rate:,.0f} | {inproc / med:.2f}x | {vs1} | {cpu:.2f} | {mem} |")
    one = results["configs"].get("1 worker")
    if one:
        for name, c in results["configs"].items():
            if name in ("in-process", "1 worker"):
                continue
            paired = [a / b for a, b in zip(one["seconds"], c["seconds"], strict=True)]
            c["paired_vs_1"] = paired
            print(f"\n{name} vs 1 worker, per round: {', '.join(f'{x:.2f}x' for x in paired)} "
                  f"(median {statistics.median(paired):.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
