"""Loghub-2k parsing benchmark runner: our template miner (or drain3) against the ground-truth CSVs.

Why: template quality drives everything downstream (counts, anomaly features), and the Loghub-2k benchmark
is the yardstick every log-parsing paper reports. This runner feeds each system's raw log through our own
ingestion path (``read_records`` with the system's preset), so the benchmark also exercises header
stripping, then scores the predicted templates with :mod:`llmid.evaluation.parsing_metrics`.

Data layout (see SOURCE.md of the data folder): ``<data_dir>/<Name>/<Name>_2k.log`` plus
``<Name>_2k.log_structured_corrected.csv`` (gt="corrected", Khan et al.), ``<Name>_2k.log_structured.csv``
(gt="original", ICSE'19) and ``loghub2.0_2k/<Name>_2k.log_structured_corrected.csv`` (gt="loghub2").
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from llmid.evaluation.parsing_metrics import evaluate

__all__ = [
    "DEFAULT_DATA_DIR",
    "SYSTEMS",
    "GT_VARIANTS",
    "PARSERS",
    "available_systems",
    "format_comparison",
    "format_table",
    "gt_paths",
    "load_gt",
    "parse_drain3",
    "parse_learned",
    "parse_llmid",
    "run_leave_one_out",
    "run_parsing_eval",
]

#: The 16 Loghub-2k systems, in the order the benchmark tables use.
SYSTEMS: tuple[str, ...] = (
    "HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "HPC", "Thunderbird", "Windows",
    "Linux", "Android", "HealthApp", "Apache", "Proxifier", "OpenSSH", "OpenStack", "Mac",
)
GT_VARIANTS: tuple[str, ...] = ("corrected", "original", "loghub2")
PARSERS: tuple[str, ...] = ("llmid", "drain3", "learned")
DEFAULT_DATA_DIR = os.environ.get("LLMID_LOGHUB2K_DIR", "../shared/data/loghub2k")
_METRICS = ("GA", "FGA", "PA", "FTA", "PTA", "RTA")
_MAX_MISMATCH_EXAMPLES = 5

Parser = Callable[[list[str]], list[str]]


def gt_paths(data_dir: str, system: str, gt: str = "corrected") -> tuple[str, str]:
    """(raw log path, GT CSV path) of one system for a GT variant."""
    base = os.path.join(data_dir, system)
    if gt == "corrected":
        return (os.path.join(base, f"{system}_2k.log"),
                os.path.join(base, f"{system}_2k.log_structured_corrected.csv"))
    if gt == "original":
        return os.path.join(base, f"{system}_2k.log"), os.path.join(base, f"{system}_2k.log_structured.csv")
    if gt == "loghub2":
        # loghub-2.0 ships its own copy of the raw log (Mac differs in 3 lines), so use that one.
        sub = os.path.join(base, "loghub2.0_2k")
        return (os.path.join(sub, f"{system}_2k.log"),
                os.path.join(sub, f"{system}_2k.log_structured_corrected.csv"))
    raise ValueError(f"unknown gt variant {gt!r}; expected one of {GT_VARIANTS}")


def available_systems(
    data_dir: str, gt: str = "corrected", systems: Iterable[str] | None = None
) -> list[str]:
    """Systems (benchmark order) whose GT CSV for this variant exists; some may be missing locally."""
    wanted = list(systems) if systems is not None else list(SYSTEMS)
    order = {s: i for i, s in enumerate(SYSTEMS)}
    present = [s for s in wanted if os.path.isfile(gt_paths(data_dir, s, gt)[1])]
    return sorted(present, key=lambda s: order.get(s, len(order)))


def load_gt(csv_path: str) -> tuple[list[str], list[str]]:
    """(Content, EventTemplate) columns of a GT CSV, as exact strings (csv module, no NA conversion)."""
    contents: list[str] = []
    templates: list[str] = []
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            contents.append(row.get("Content") or "")
            templates.append(row.get("EventTemplate") or "")
    return contents, templates


def _record_content(rec: Any) -> str:
    """Message text of a record from ``read_records`` (attribute or mapping, whichever it provides)."""
    for name in ("content", "Content", "message", "msg"):
        val = rec.get(name) if isinstance(rec, dict) else getattr(rec, name, None)
        if val is not None:
            return str(val)
    if isinstance(rec, str):
        return rec
    raise TypeError(f"cannot find the message content in record {rec!r}")


def read_contents(log_path: str, system: str) -> list[str] | None:
    """Contents of a raw log through our ingestion (``read_records`` + the system's format preset).

    Returns None when the ingestion module is not available (it is developed concurrently); callers
    then fall back to the GT CSV's Content column and say so in the result.
    """
    try:
        from llmid.ingest_pipelines.sources import read_records
    except ImportError:
        return None
    return [_record_content(r) for r in read_records(log_path, log_format=system)]


def parse_llmid(contents: list[str]) -> list[str]:
    """Templates from our miner: the final template of each line's cluster at the end of the stream."""
    from llmid.engine.structurer import TemplateMiner

    miner = TemplateMiner()
    ids = [miner.add(c).template_id for c in contents]
    final = {tid: miner.template(tid) for tid in set(ids)}
    return [final[tid] for tid in ids]


def parse_learned(contents: list[str], model_path: str | None = None, batch: int = 1000,
                  **options: Any) -> list[str]:
    """Templates from the learned structurer (the shipped model, or `model_path`), fed in batches as the
    pipeline feeds it: the final template of each line's group at the end of the stream."""
    from llmid.engine.structurer import LearnedMiner, Tagger

    miner = LearnedMiner(tagger=Tagger(model_path, threads=1), **options)
    ids: list[str] = []
    for i in range(0, len(contents), batch):
        ids.extend(m.template_id for m in miner.add_batch(contents[i:i + batch]))
    final = {tid: miner.template(tid) for tid in set(ids)}
    return [final[tid] for tid in ids]


def new_drain3_miner() -> Any:
    """drain3 miner with config A_default: library defaults, no masking, no drain3.ini lookup.

    Passing an explicit ``TemplateMinerConfig()`` matters: with ``config=None`` drain3 would read a
    ``drain3.ini`` from the current directory, if any.
    """
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    return TemplateMiner(config=TemplateMinerConfig())


def parse_drain3(contents: list[str]) -> list[str]:
    """Templates from drain3 A_default: final template of each line's cluster at the end of the stream."""
    miner = new_drain3_miner()
    ids = [miner.add_log_message(c)["cluster_id"] for c in contents]
    clusters = miner.drain.id_to_cluster
    final = {cid: clusters[cid].get_template() for cid in set(ids)}
    return [final[cid] for cid in ids]


def _get_parser(parser: str) -> Parser:
    """Resolve a parser name; imports its module now so an import error surfaces before any work and
    one-off import cost stays out of the first system's timing."""
    if parser == "llmid":
        import llmid.engine.structurer  # noqa: F401
        return parse_llmid
    if parser == "drain3":
        import drain3  # noqa: F401
        return parse_drain3
    if parser == "learned":
        import onnxruntime  # noqa: F401
        return parse_learned
    raise ValueError(f"unknown parser {parser!r}; expected one of {PARSERS}")


def _eval_system(data_dir: str, system: str, gt: str, parse: Parser) -> dict[str, Any]:
    log_path, gt_path = gt_paths(data_dir, system, gt)
    gt_contents, gt_templates = load_gt(gt_path)
    row: dict[str, Any] = {"system": system}
    contents = read_contents(log_path, system) if os.path.isfile(log_path) else None
    mismatches: list[dict[str, Any]] = []
    if contents is None:
        row["content_source"] = "gt_csv"
        contents = gt_contents
    elif len(contents) != len(gt_contents):
        # Misaligned rows would make every metric meaningless: score on the GT content and flag it.
        row["content_source"] = f"gt_csv (read_records gave {len(contents)} lines, GT has {len(gt_contents)})"
        contents = gt_contents
    else:
        row["content_source"] = "read_records"
        for i, (got, want) in enumerate(zip(contents, gt_contents, strict=True)):
            if got != want:
                mismatches.append({"line": i + 1, "read_records": got, "gt": want})
    row["content_mismatches"] = len(mismatches)
    row["content_mismatch_examples"] = mismatches[:_MAX_MISMATCH_EXAMPLES]

    start = time.perf_counter()
    pred = parse(contents)
    seconds = time.perf_counter() - start
    scores = evaluate(gt_templates, pred)
    row.update({"lines": len(contents), **{k: scores[k] for k in _METRICS}})
    row["templates_gt"] = scores["templates_gt"]
    row["templates_pred"] = scores["templates_pred"]
    row["seconds"] = seconds
    row["lines_per_s"] = len(contents) / seconds if seconds > 0 else float("inf")
    return row


def run_parsing_eval(
    data_dir: str = DEFAULT_DATA_DIR,
    systems: list[str] | None = None,
    gt: str = "corrected",
    parser: str | Parser = "llmid",
    progress: Callable[[dict[str, Any]], None] | None = None,
    parsers_by_system: dict[str, Parser] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Parse and score every present system; returns per-system rows, an unweighted mean row, metadata.

    ``seconds``/``lines_per_s`` time the parser call only (a fresh miner per system, so cold start is
    included, as in the published figures), not file reading or scoring. ``progress`` is called with each
    finished row. Missing systems are skipped and listed under ``missing``.
    """
    parse = parser if callable(parser) else _get_parser(parser)
    if gt not in GT_VARIANTS:
        raise ValueError(f"unknown gt variant {gt!r}; expected one of {GT_VARIANTS}")
    wanted = list(systems) if systems is not None else list(SYSTEMS)
    present = available_systems(data_dir, gt, wanted)
    rows: list[dict[str, Any]] = []
    for system in present:
        row = _eval_system(data_dir, system, gt, (parsers_by_system or {}).get(system, parse))
        rows.append(row)
        if progress is not None:
            progress(row)
    mean: dict[str, Any] = {"system": "mean", "lines": sum(r["lines"] for r in rows)}
    for key in (*_METRICS, "templates_gt", "templates_pred", "lines_per_s"):
        mean[key] = sum(r[key] for r in rows) / len(rows) if rows else 0.0
    mean["seconds"] = sum(r["seconds"] for r in rows)
    return {
        "parser": name or (parser if isinstance(parser, str) else getattr(parser, "__name__", "parser")),
        "gt": gt,
        "data_dir": os.path.abspath(data_dir),
        "systems": rows,
        "mean": mean,
        "missing": [s for s in wanted if s not in present],
        "content_mismatches": {r["system"]: r["content_mismatch_examples"] for r in rows
                               if r["content_mismatches"]},
    }


def _fmt(value: Any, kind: str) -> str:
    if kind == "metric":
        return f"{value:.3f}"
    if kind == "float1":
        return f"{value:.1f}"
    if kind == "sec":
        return f"{value:.3f}"
    if kind == "rate":
        return f"{value:,.0f}"
    return str(value)


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table (aligned columns, metrics to 3 decimals) of a :func:`run_parsing_eval` result."""
    cols = [("system", "system", "str"), ("lines", "lines", "str"), ("GA", "GA", "metric"),
            ("FGA", "FGA", "metric"), ("PA", "PA", "metric"), ("FTA", "FTA", "metric"),
            ("templates_gt", "tmpl_gt", "str"), ("templates_pred", "tmpl_pred", "str"),
            ("seconds", "seconds", "sec"), ("lines_per_s", "lines/s", "rate")]
    body = []
    for r in [*result["systems"], result["mean"]]:
        cells = []
        for key, _, kind in cols:
            if r["system"] == "mean" and key in ("templates_gt", "templates_pred"):
                kind = "float1"
            cells.append(_fmt(r[key], kind))
        body.append(cells)
    header = [title for _, title, _ in cols]
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                              strict=True)))

    out = [f"parser={result['parser']}  gt={result['gt']}  data={result['data_dir']}", line(header),
           "  ".join("-" * w for w in widths)]
    out += [line(b) for b in body[:-1]]
    out += ["  ".join("-" * w for w in widths), line(body[-1])]
    if result.get("missing"):
        out.append(f"missing (skipped): {', '.join(result['missing'])}")
    for system, examples in result.get("content_mismatches", {}).items():
        n = next(r["content_mismatches"] for r in result["systems"] if r["system"] == system)
        out.append(f"{system}: {n} line(s) whose read_records content differs from the GT Content, e.g. "
                   f"line {examples[0]['line']}: {examples[0]['read_records']!r} vs {examples[0]['gt']!r}")
    fallbacks = [r["system"] for r in result["systems"] if r["content_source"] != "read_records"]
    if fallbacks:
        out.append(f"content from the GT CSV instead of read_records: {', '.join(fallbacks)}")
    return "\n".join(out)


def format_comparison(results: list[dict[str, Any]]) -> str:
    """Side-by-side GA/FGA/PA/FTA and lines/s of several results (e.g. llmid vs drain3) per system."""
    if not results:
        return ""
    systems = [r["system"] for r in results[0]["systems"]] + ["mean"]
    by_parser = [{r["system"]: r for r in [*res["systems"], res["mean"]]} for res in results]
    header = ["system"]
    for res in results:
        header += [f"{res['parser']}:{m}" for m in ("GA", "FGA", "PA", "FTA")] + [f"{res['parser']}:lines/s"]
    body = []
    for s in systems:
        cells = [s]
        for rows in by_parser:
            r = rows.get(s)
            if r is None:
                cells += ["-"] * 5
            else:
                cells += [f"{r[m]:.3f}" for m in ("GA", "FGA", "PA", "FTA")] + [f"{r['lines_per_s']:,.0f}"]
        body.append(cells)
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) for i in range(len(header))]
    fmt = [lambda c, w: c.ljust(w)] + [lambda c, w: c.rjust(w)] * (len(header) - 1)
    lines = ["  ".join(f(c, w) for f, c, w in zip(fmt, row, widths, strict=True)) for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return f"gt={results[0]['gt']}\n" + "\n".join(lines)


# -- leave-one-system-out evaluation of the learned structurer ----------------------------------------------
ABLATIONS: dict[str, dict[str, Any]] = {
    "learned": {},
    "learned:mean-pool": {"fam": False},
    "learned:window-3": {"windows": (3,)},
}
"""Model variants of the leave-one-out run: the full model (fuzzy-matching attention over windows of 3, 5
and 7 tokens) and the paper's ablations (attention replaced by mean pooling; windows {3} only)."""


def run_leave_one_out(
    data_dir: str = DEFAULT_DATA_DIR,
    systems: list[str] | None = None,
    gt: str = "corrected",
    variants: Iterable[str] = ("learned",),
    baselines: Iterable[str] = ("llmid", "drain3"),
    no_model: bool = False,
    epochs: int | None = None,
    cache_dir: str | None = None,
    progress: Callable[[str, dict[str, Any]], None] | None = None,
    log: Callable[[str], None] | None = None,
    train_config: Any = None,
) -> list[dict[str, Any]]:
    """For each present system, a model trained on the other present systems parses it (models cached by
    configuration and data, so a re-run only evaluates); the baseline parsers run through the same evaluator
    in the same call. `no_model` adds the learned miner without a model (generic masks, no learned gate): what
    the model itself contributes. Returns one result per parser, as `run_parsing_eval` does."""
    from llmid.model_export.structurer_model import ModelConfig
    from llmid.model_export.structurer_train import TrainConfig, cached_model

    present = available_systems(data_dir, "corrected", systems)
    results: list[dict[str, Any]] = []
    for variant in variants:
        if variant not in ABLATIONS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {tuple(ABLATIONS)}")
        if train_config is not None:  # tests: a tiny configuration, the variant's ablation applied to it
            import dataclasses

            cfg = dataclasses.replace(train_config,
                                      model=dataclasses.replace(train_config.model, **ABLATIONS[variant]))
        else:
            cfg = TrainConfig(model=ModelConfig(**ABLATIONS[variant]))
        if epochs is not None:
            cfg.epochs = epochs
        per_system: dict[str, Parser] = {}
        folds: dict[str, Any] = {}
        for held in present:
            train_on = [s for s in present if s != held]
            if log is not None:
                log(f"{variant}: model without {held} (trained on {len(train_on)} systems)")
            onnx_path, stats = cached_model(data_dir, train_on, cfg, cache_dir, log)
            folds[held] = {"model": onnx_path, "train_seconds": stats.get("seconds"),
                           "train_lines": stats.get("train_lines")}
            per_system[held] = _bind_model(onnx_path)
        res = run_parsing_eval(data_dir, present, gt, parse_learned, parsers_by_system=per_system, name=variant,
                               progress=(lambda row, v=variant: progress(v, row)) if progress else None)
        res["folds"] = folds
        res["train_config"] = cfg.to_json()
        results.append(res)
    if no_model:
        from llmid.engine.structurer import LearnedMiner

        def parse_no_model(contents: list[str]) -> list[str]:
            miner = LearnedMiner(tagger=None)
            ids = [m.template_id for m in miner.add_batch(contents)]
            return [miner.template(t) for t in ids]

        results.append(run_parsing_eval(data_dir, present, gt, parse_no_model, name="learned:no-model",
                                        progress=(lambda row: progress("learned:no-model", row))
                                        if progress else None))
    for name in baselines:
        results.append(run_parsing_eval(data_dir, present, gt, name,
                                        progress=(lambda row, n=name: progress(n, row)) if progress else None))
    return results


def _bind_model(onnx_path: str) -> Parser:
    def parse(contents: list[str]) -> list[str]:
        return parse_learned(contents, onnx_path)

    return parse


def add_leave_one_out_arguments(p: Any) -> None:
    p.add_argument("--leave-one-out", action="store_true",
                   help="learned structurer, leave-one-system-out: each system parsed by a model trained on the "
                        "others (models trained once and cached; needs the [train] extra to train), beside the "
                        "baseline miner and drain3")
    p.add_argument("--ablations", action="store_true",
                   help="with --leave-one-out: also the ablated models (fuzzy-matching attention replaced by mean "
                        "pooling; windows {3} only) and the learned miner without a model")
    p.add_argument("--epochs", type=int, help="with --leave-one-out: training epochs of each fold model")
    p.add_argument("--cache", metavar="DIR", help="with --leave-one-out: model cache (default ~/.cache/llmid/"
                                                  "structurer, or $LLMID_CACHE_DIR)")
    p.add_argument("--card", metavar="FILE", help="with --leave-one-out: write the table into this model card's "
                                                  "metrics (e.g. llmid/models/structurer.card.json)")


def cmd_leave_one_out(args: Any, print_json: Callable[[Any], None]) -> int:
    """`llmid eval parsing --leave-one-out [--ablations]`: tables on stdout, progress on stderr."""
    import sys

    try:
        import drain3  # noqa: F401
        baselines: tuple[str, ...] = ("llmid", "drain3")
    except ImportError:
        baselines = ("llmid",)
        print("drain3 is not installed (the [dev] extra): comparing with the baseline miner only",
              file=sys.stderr)
    variants = tuple(ABLATIONS) if args.ablations else ("learned",)
    quiet = getattr(args, "quiet", False)

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    results = run_leave_one_out(args.data, args.systems or None, args.gt, variants, baselines,
                                no_model=args.ablations, epochs=args.epochs, cache_dir=args.cache,
                                log=log if not quiet else None)
    if args.card:
        _write_card_metrics(args.card, results, args.gt)
    if args.json:
        print_json(results)
        return 0
    print(format_comparison(results))
    print()
    print(format_means(results))
    for res in results:
        if res.get("missing"):
            print(f"missing (skipped): {', '.join(res['missing'])}")
            break
    return 0


def format_means(results: list[dict[str, Any]]) -> str:
    """One line per parser: the unweighted means over the systems."""
    width = max(len(r["parser"]) for r in results)
    lines = [f"{'mean of ' + str(len(results[0]['systems'])) + ' systems':{width + 2}s}"
             f"   GA    FGA    PA     FTA"]
    for r in results:
        m = r["mean"]
        lines.append(f"{r['parser']:{width + 2}s} {m['GA']:.3f}  {m['FGA']:.3f}  {m['PA']:.3f}  {m['FTA']:.3f}")
    return "\n".join(lines)


def _write_card_metrics(card_path: str, results: list[dict[str, Any]], gt: str) -> None:
    import json

    try:
        with open(card_path, encoding="utf-8") as fh:
            card = json.load(fh)
    except (OSError, ValueError):
        card = {}
    table = {}
    for r in results:
        table[r["parser"]] = {
            "mean": {k: round(r["mean"][k], 4) for k in ("GA", "FGA", "PA", "FTA")},
            "systems": {row["system"]: {k: round(row[k], 4) for k in ("GA", "FGA", "PA", "FTA")}
                        for row in r["systems"]},
        }
    card.setdefault("metrics", {})["leave_one_out"] = {
        "command": "llmid eval parsing --data ../shared/data/loghub2k --leave-one-out"
                   + (" --ablations" if len(results) > 3 else ""),
        "ground_truth": gt, "parsers": table}
    with open(card_path, "w", encoding="utf-8") as fh:
        json.dump(card, fh, indent=2)
        fh.write("\n")
