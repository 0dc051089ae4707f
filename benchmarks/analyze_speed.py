"""Wall time of `llmid analyze` on a 10k-line simulator log (issue 4 target: < 10 s on 2 CPU cores).

    .venv/bin/python benchmarks/analyze_speed.py [--lines 10000] [--runs 5] [--reasoner learned baseline]

Each run is the real command in a fresh child process (`python -m llmid analyze FILE --store sqlite:///...
-q`, a new store each time), so interpreter start-up, model loading (MiniLM int8 + reasoner ONNX), template
embedding (cold cache), the pipeline and the SQLite writes are all inside the figure. Prints the median and
maximum per reasoner, the number of incidents and templates, and the machine's CPU count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_log(path: Path, lines: int, seed: int = 7) -> dict[str, object]:
    from llmid.sim import generate

    sc = generate(seed, lines=lines)
    path.write_text(sc.text(), encoding="utf-8")
    return sc.truth


def run_once(log: Path, db: Path, reasoner: str) -> tuple[float, dict[str, object]]:
    cmd = [sys.executable, "-m", "llmid", "analyze", str(log), "--store", f"sqlite:///{db}", "--json", "-q",
           "--reasoner", reasoner]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"analyze failed: {p.stderr.strip()}")
    return wall, json.loads(p.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--reasoner", nargs="+", default=["learned", "baseline"])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llmid-speed-") as tmp:
        log = Path(tmp) / "scenario.log"
        truth = make_log(log, args.lines)
        n_lines = sum(1 for _ in log.open("rb"))
        print(f"{log.name}: {n_lines} lines, fault {truth['fault_type']} at line {truth['root_cause_line']}; "
              f"{os.cpu_count()} CPUs; {args.runs} runs per reasoner")
        for reasoner in args.reasoner:
            walls = []
            out: dict[str, object] = {}
            for i in range(args.runs):
                wall, out = run_once(log, Path(tmp) / f"{reasoner}-{i}.db", reasoner)
                walls.append(wall)
            incidents = out.get("incidents", [])
            assert isinstance(incidents, list)
            hit = any(truth["root_cause_line"] in inc["ranking"][0]["lines"] for inc in incidents)
            print(f"{reasoner:8s} median {statistics.median(walls):.2f} s  max {max(walls):.2f} s  "
                  f"({out.get('records')} records, {out.get('templates')} templates, {len(incidents)} incidents, "
                  f"root cause ranked first in an incident: {hit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
