"""Peak memory of `llmid analyze` as the input grows: streaming must keep it flat.

Generates service logs of N lines (mixed formats, a few hundred templates, no Loghub data), runs the real
command in a child process for each size, and reports the child's peak RSS and end-to-end lines/s. Flat memory
means the 10x larger file peaks at about the same RSS as the small one.

    .venv/bin/python benchmarks/stream_memory.py --sizes 200000 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = ["api", "auth", "scheduler", "trainer", "storage", "cache", "db", "gateway"]
LEVELS = ["INFO"] * 8 + ["WARN", "ERROR", "DEBUG"]
WORDS = "request served job queued block replicated connection opened closed retry lease renewed".split()


def generate(path: Path, n: int, seed: int = 1) -> None:
    """Mixed ISO / syslog / JSON lines with ~300 templates and fresh parameters on every line."""
    rng = random.Random(seed)
    templates = [" ".join(rng.sample(WORDS, 4)) + " id={} took {} ms" for _ in range(300)]
    t0 = 1_777_636_800  # 2026-05-01T12:00:00Z
    with path.open("w", buffering=1 << 20) as f:
        for i in range(n):
            ts = t0 + i // 50
            svc = SERVICES[i % len(SERVICES)]
            msg = templates[rng.randrange(300)].format(rng.randrange(10**9), rng.randrange(5000))
            kind = i % 10
            if kind < 7:
                iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
                f.write(f"{iso}.{i % 1000:03d}Z {LEVELS[i % len(LEVELS)]} [{svc}] {msg}\n")
            elif kind < 9:
                stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(ts))
                f.write(f"{stamp} node-{i % 16:02d} {svc}[{1000 + i % 50}]: {msg}\n")
            else:
                f.write(json.dumps({"@timestamp": ts, "log.level": "info", "service.name": svc, "message": msg}) + "\n")


def run_child(log: Path, db: Path) -> tuple[float, float]:
    """(peak RSS MiB of the analyze process, wall seconds)."""
    code = (
        "import resource, sys; from llmid.cli import main; rc = main(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)"
    )
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, "analyze", str(log), "--store", f"sqlite:///{db}", "-q"],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"analyze failed: {p.stderr.strip()}")
    return int(p.stderr.strip().splitlines()[-1]) / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 2_000_000])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in args.sizes:
            log, db = Path(d) / f"gen-{n}.log", Path(d) / f"gen-{n}.db"
            generate(log, n)
            rss, wall = run_child(log, db)
            rows.append({"lines": n, "bytes": log.stat().st_size, "peak_rss_mib": round(rss, 1),
                         "seconds": round(wall, 1), "lines_per_s": round(n / wall)})
            os.unlink(log)
    for r in rows:
        print(f"{r['lines']:>10,} lines {r['bytes'] / 2**20:8.1f} MiB  peak RSS {r['peak_rss_mib']:7.1f} MiB  "
              f"{r['seconds']:7.1f} s  {r['lines_per_s']:>8,} lines/s")
    if len(rows) > 1:
        print(f"peak RSS ratio largest/smallest: {rows[-1]['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f} "
              f"for {rows[-1]['lines'] / rows[0]['lines']:.0f}x the lines")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
