"""Template-mining throughput: our miner vs drain3 (A_default) on the same lines, in one process.

Why: a throughput figure means little on its own (machine, Python build, input mix all matter), so we
always measure our miner next to drain3 on identical input and report the ratio. Input = the Content
column of every present Loghub-2k system (corrected GT CSVs), concatenated, repeated ``--scale`` times.

Default mode: ``--repeats`` runs per parser, each with a fresh miner over the whole stream (so cold start
is included); prints the median lines/s of each and the ratio llmid/drain3. Caveat: passes 2..N repeat
the SAME lines, which a miner with an exact-match cache (ours has one) serves almost for free while drain3
re-scores every line; so the first-pass-only rate and ratio (distinct input, cold model) are printed
too, and are the fairer figure for input that does not repeat verbatim. ``--steady``: one miner per
parser over the whole stream, timed per pass over the concatenated data, like drain3_baseline.md's
steady-state measurement (first pass = model being built, later passes = populated model).

Run from the repo root: ``.venv/bin/python benchmarks/parse_throughput.py [--scale 5] [--repeats 5]
[--steady] [--json]``.

``--fresh N`` (issue 3): a stream of N lines (default 500,000) re-sampled from the 12 systems' lines with every
variable field (the `<*>` spans of the ground truth) replaced by a fresh random value of the same kind (digits,
hex letters, other letters, case and punctuation kept), so caching exact strings cannot help and every line is
new text. Each parser runs in its own child process (peak RSS = that child's ``ru_maxrss``), reading the stream
from a file: the learned structurer (the shipped model behind its fast paths, fed in batches of 1,000 lines as
the pipeline feeds it), the baseline miner, and drain3 with its default config; parsers alternate over
``--repeats`` rounds and the medians are reported with the ratio to drain3.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from llmid.evaluation.parsing_eval import (  # noqa: E402
    DEFAULT_DATA_DIR,
    available_systems,
    gt_paths,
    load_gt,
    new_drain3_miner,
)

Feeder = Callable[[], tuple[Callable[[str], Any], Callable[[], int]]]


def load_lines(data_dir: str) -> tuple[list[str], list[str]]:
    """(systems used, their Content lines concatenated in benchmark order)."""
    systems = available_systems(data_dir, "corrected")
    lines: list[str] = []
    for s in systems:
        lines.extend(load_gt(gt_paths(data_dir, s, "corrected")[1])[0])
    return systems, lines


def llmid_feeder() -> tuple[Callable[[str], Any], Callable[[], int]]:
    """Fresh llmid miner: (per-line add function, cluster counter)."""
    from llmid.engine.structurer import TemplateMiner

    m = TemplateMiner()
    return m.add, lambda: len(m.clusters())


def drain3_feeder() -> tuple[Callable[[str], Any], Callable[[], int]]:
    """Fresh drain3 A_default miner (explicit default config, no masking, no drain3.ini)."""
    m = new_drain3_miner()
    return m.add_log_message, lambda: len(m.drain.clusters)


PARSERS: dict[str, Feeder] = {"llmid": llmid_feeder, "drain3": drain3_feeder}


def time_steady(feeder: Feeder, base: list[str], passes: int) -> dict[str, Any]:
    """One miner over ``passes`` repetitions of ``base``, timing each pass separately."""
    add, n_clusters = feeder()
    gc.collect()
    per_pass: list[float] = []
    for _ in range(passes):
        start = time.perf_counter()
        for line in base:
            add(line)
        per_pass.append(time.perf_counter() - start)
    total = sum(per_pass)
    n = len(base)
    later = per_pass[1:] or per_pass
    return {
        "lines": n * passes,
        "seconds": total,
        "lines_per_s": n * passes / total,
        "first_pass_lines_per_s": n / per_pass[0],
        "later_passes_lines_per_s": n * len(later) / sum(later),
        "clusters": n_clusters(),
    }


def build_fresh_stream(data_dir: str, n: int, seed: int, path: str) -> dict[str, Any]:
    """Write `n` lines to `path`: lines drawn uniformly from the present systems' ground-truth Content, each
    with fresh values in its variable fields. Returns a summary (systems, distinct lines, repeats)."""
    import random

    from llmid.model_export.structurer_data import align_labels, fresh_values

    systems = available_systems(data_dir, "corrected")
    pool: list[tuple[str, bytes]] = []
    for s in systems:
        contents, templates = load_gt(gt_paths(data_dir, s, "corrected")[1])
        for c, t in zip(contents, templates, strict=True):
            lab = align_labels(c, t) if t else None
            pool.append((c, lab if lab is not None else bytes(len(c))))
    rng = random.Random(seed)
    seen: set[int] = set()
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            c, lab = pool[rng.randrange(len(pool))]
            line = fresh_values(c, lab, rng) if any(lab) else c
            seen.add(hash(line))
            fh.write(line.replace("\n", " ") + "\n")
    return {"systems": systems, "lines": n, "distinct_lines": len(seen), "source_lines": len(pool)}


_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
path, parser, batch = {path!r}, {parser!r}, {batch}
lines = [l.rstrip("\n") for l in open(path, encoding="utf-8")]
if parser == "learned":
    from llmid.engine.structurer import LearnedMiner, Tagger
    m = LearnedMiner(tagger=Tagger(threads={threads}))
    def run():
        for i in range(0, len(lines), batch):
            m.add_batch(lines[i:i + batch])
    count = lambda: len(m.clusters())
elif parser == "baseline":
    from llmid.engine.structurer import TemplateMiner
    m = TemplateMiner()
    def run():
        add = m.add
        for l in lines:
            add(l)
    count = lambda: len(m.clusters())
else:
    from llmid.evaluation.parsing_eval import new_drain3_miner
    m = new_drain3_miner()
    def run():
        add = m.add_log_message
        for l in lines:
            add(l)
    count = lambda: len(m.drain.clusters)
t0 = time.perf_counter()
run()
sec = time.perf_counter() - t0
out = {{"parser": parser, "lines": len(lines), "seconds": sec, "lines_per_s": len(lines) / sec,
        "templates": count(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}
if parser == "learned":
    out["paths"] = dict(m.stats)
    out["model_lines"] = m.tagger.lines_tagged
    out["model_batches"] = m.tagger.batches_run
print(json.dumps(out))
"""


def run_fresh(args: argparse.Namespace) -> dict[str, Any]:
    import subprocess
    import tempfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory(prefix="llmid-fresh-") as tmp:
        path = os.path.join(tmp, "stream.log")
        info = build_fresh_stream(args.data_dir, args.fresh, args.seed, path)
        print(f"fresh-values stream: {info['lines']:,} lines from {len(info['systems'])} systems "
              f"({info['distinct_lines']:,} distinct), seed {args.seed}")
        names = [p.strip() for p in args.parsers.split(",") if p.strip()]
        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for _ in range(args.repeats):
            for name in names:
                code = _CHILD.format(root=root, path=path, parser=name, batch=args.batch, threads=args.threads)
                proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    print(f"{name} failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                    runs.pop(name, None)
                    continue
                runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out: dict[str, Any] = {"mode": "fresh", **info, "seed": args.seed, "repeats": args.repeats,
                           "python": platform.python_version(), "parsers": {}}
    for name, rs in runs.items():
        if not rs:
            continue
        rates = [r["lines_per_s"] for r in rs]
        med = statistics.median(rates)
        rss = max(r["peak_rss_mb"] for r in rs)
        row = {"lines_per_s": med, "runs_lines_per_s": rates, "peak_rss_mb": rss, "templates": rs[-1]["templates"]}
        for k in ("paths", "model_lines", "model_batches"):
            if k in rs[-1]:
                row[k] = rs[-1][k]
        out["parsers"][name] = row
        extra = f", paths {row['paths']}, model batches {row['model_batches']}" if "paths" in row else ""
        print(f"{name:9s} median {med:,.0f} lines/s over {len(rates)} runs (min {min(rates):,.0f}, max "
              f"{max(rates):,.0f}), peak RSS {rss:,.0f} MB, {row['templates']} templates{extra}")
    p = out["parsers"]
    if "drain3" in p:
        for name in p:
            if name != "drain3":
                out[f"ratio_{name}_over_drain3"] = p[name]["lines_per_s"] / p["drain3"]["lines_per_s"]
                print(f"ratio {name}/drain3: {out[f'ratio_{name}_over_drain3']:.2f}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--scale", type=int, default=5, help="repeat the concatenated lines N times")
    ap.add_argument("--repeats", type=int, default=5, help="runs per parser (fresh miner each)")
    ap.add_argument("--steady", action="store_true", help="one miner per parser, per-pass timings")
    ap.add_argument("--parsers", default="llmid,drain3", help="comma-separated subset of llmid,drain3")
    ap.add_argument("--json", action="store_true", help="also print one JSON line with the figures")
    ap.add_argument("--fresh", type=int, nargs="?", const=500_000, metavar="N",
                    help="issue-3 benchmark: N lines (default 500000) with fresh variable values, one child "
                         "process per parser (learned, baseline, drain3), peak RSS of each")
    ap.add_argument("--seed", type=int, default=7, help="--fresh: stream seed")
    ap.add_argument("--batch", type=int, default=1000, help="--fresh: lines per add_batch of the learned miner")
    ap.add_argument("--threads", type=int, default=1, help="--fresh: ONNX Runtime intra-op threads")
    args = ap.parse_args(argv)
    if args.fresh:
        if args.parsers == "llmid,drain3":
            args.parsers = "learned,baseline,drain3"
        out = run_fresh(args)
        if args.json:
            print(json.dumps(out))
        return 0

    systems, base = load_lines(args.data_dir)
    if not base:
        print(f"no Loghub-2k data under {args.data_dir}", file=sys.stderr)
        return 2
    names = [p.strip() for p in args.parsers.split(",") if p.strip()]
    feeders: dict[str, Feeder] = {}
    for name in names:
        try:
            feeders[name] = PARSERS[name]
            feeders[name]()  # import + construct once, outside any timing
        except ImportError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
            feeders.pop(name, None)
        except KeyError:
            print(f"unknown parser {name!r}", file=sys.stderr)
            return 2

    out: dict[str, Any] = {
        "mode": "steady" if args.steady else "fresh",
        "systems": systems,
        "base_lines": len(base),
        "scale": args.scale,
        "lines": len(base) * args.scale,
        "python": platform.python_version(),
        "parsers": {},
    }
    print(f"{len(systems)} systems, {len(base):,} lines x {args.scale} = {len(base) * args.scale:,} lines"
          f" per run ({out['mode']} mode)")
    if args.steady:
        for name, feeder in feeders.items():
            r = time_steady(feeder, base, args.scale)
            out["parsers"][name] = r
            print(f"{name:7s} {r['lines']:,} lines in {r['seconds']:.2f} s = {r['lines_per_s']:,.0f} lines/s"
                  f"  (first pass {r['first_pass_lines_per_s']:,.0f}/s, later passes "
                  f"{r['later_passes_lines_per_s']:,.0f}/s), {r['clusters']} clusters")
    else:
        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in feeders}
        for _ in range(args.repeats):
            for name, feeder in feeders.items():  # interleaved, so drift hits both parsers alike
                runs[name].append(time_steady(feeder, base, args.scale))
        for name, rs in runs.items():
            rates = [r["lines_per_s"] for r in rs]
            med = statistics.median(rates)
            first = statistics.median(r["first_pass_lines_per_s"] for r in rs)
            out["parsers"][name] = {"lines_per_s": med, "first_pass_lines_per_s": first,
                                    "runs_lines_per_s": rates, "clusters": rs[-1]["clusters"]}
            print(f"{name:7s} median {med:,.0f} lines/s over {len(rates)} runs "
                  f"(min {min(rates):,.0f}, max {max(rates):,.0f}; first pass alone {first:,.0f}/s), "
                  f"{rs[-1]['clusters']} clusters")
    p = out["parsers"]
    if "llmid" in p and "drain3" in p:
        out["ratio_llmid_over_drain3"] = p["llmid"]["lines_per_s"] / p["drain3"]["lines_per_s"]
        out["ratio_first_pass"] = p["llmid"]["first_pass_lines_per_s"] / p["drain3"]["first_pass_lines_per_s"]
        print(f"ratio llmid/drain3: {out['ratio_llmid_over_drain3']:.2f} "
              f"(first pass only: {out['ratio_first_pass']:.2f})")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
