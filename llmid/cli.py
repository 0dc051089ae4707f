"""The `llmid` command. Subcommands stay thin: parse arguments, call the engine/runner/store, print.

Bad input never shows a traceback: `LlmidError` becomes one sentence on stderr and a non-zero exit; an
unexpected bug says so in one line too (set LLMID_DEBUG=1 to see the traceback).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from datetime import datetime
from typing import Any

from llmid import __version__, ui
from llmid.config import Settings, load_settings
from llmid.errors import ConfigError, InputError, LlmidError

EXIT_INTERRUPTED = 130


# -- helpers -------------------------------------------------------------------------------------------------
def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    flags = {
        "store": getattr(args, "store", None),
        "log_format": getattr(args, "log_format", None),
        "quiet": True if getattr(args, "quiet", False) else None,
        "window_seconds": getattr(args, "window_seconds", None),
        "broker": getattr(args, "broker", None),
        "reasoner": getattr(args, "reasoner", None),
        "reasoner_model": getattr(args, "reasoner_model", None),
        "structurer": getattr(args, "structurer", None),
        "planner": getattr(args, "planner", None),
        "planner_model": getattr(args, "planner_model", None),
        "safety_policy": getattr(args, "safety_policy", None),
        "execute": True if getattr(args, "execute", False) else None,
    }
    flags.update(extra)
    return load_settings({k: v for k, v in flags.items() if v is not None}, getattr(args, "config", None))


def _open_store(settings: Settings):  # noqa: ANN202 - Store, imported lazily to keep startup fast
    from llmid.store import open_store

    return open_store(settings.store)


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=None if not sys.stdout.isatty() else 2)
    sys.stdout.write("\n")


_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str) -> float:
    """`2026-05-01`, `2026-05-01T12:00:00Z`, or relative to now: `30m`, `2h`, `7d`."""
    m = _REL.match(value.strip())
    if m:
        return time.time() - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"Cannot read time {value!r}: use ISO-8601 (2026-05-01T12:00:00Z) or 30m, 2h, 7d.") from None
    if dt.tzinfo is None:
        from datetime import UTC

        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _check_source(path: str) -> None:
    """Fail early with one sentence, before any store is opened or created."""
    if path == "-":
        return
    if not os.path.exists(path):
        raise InputError(f"No such file: {path}.")
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory; give a log file (or - for standard input).")


# -- parse ---------------------------------------------------------------------------------------------------
def cmd_parse(args: argparse.Namespace) -> int:
    """Two passes over a file (templates are final only at the end of the stream), one for stdin (spooled)."""
    from llmid.engine.structurer import make_miner
    from llmid.ingest_pipelines.sources import read_records

    settings = _settings(args)
    _check_source(args.file)
    warn = ui.make_warn(settings.quiet)
    path, spooled = args.file, None
    if path == "-":
        spooled = tempfile.NamedTemporaryFile(prefix="llmid-stdin-", delete=False)
        shutil.copyfileobj(sys.stdin.buffer, spooled)
        spooled.close()
        path = spooled.name
    try:
        miner = make_miner(settings.structurer, settings.similarity, model_path=settings.structurer_model)
        ids: dict[str, int] = {}
        order: list[str] = []
        assigned = array("I")
        n = 0
        heads: list[str] = []

        def flush() -> None:  # lines go to the miner in batches (the learned one tags unknown lines per batch)
            for m in miner.add_batch(heads):
                if m.template_id not in ids:
                    ids[m.template_id] = len(order)
                    order.append(m.template_id)
                assigned.append(ids[m.template_id])
            heads.clear()

        with ui.progress("parsing", ui.file_size(path), settings.quiet) as update:
            for rec in read_records(path, settings.log_format, max_line_bytes=settings.max_line_bytes, warn=warn):
                heads.append(rec.head)
                n += 1
                if len(heads) >= 1000:
                    flush()
                if n % 5000 == 0:
                    update(rec.offset)
            flush()
        if n == 0:
            raise InputError(f"{args.file if spooled is None else 'Standard input'} contains no log lines.")
        templates = [miner.template(t) for t in order]
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["LineId", "Level", "Component", "Content", "EventId", "EventTemplate", "ParameterList"])
        for i, rec in enumerate(read_records(path, settings.log_format, max_line_bytes=settings.max_line_bytes)):
            k = assigned[i]
            params = miner.params_for(rec.head, order[k])
            out.writerow([rec.line_id, rec.level or "", rec.service or "", rec.content, order[k], templates[k],
                          json.dumps(params, ensure_ascii=False)])
    finally:
        if spooled is not None:
            os.unlink(spooled.name)
    return 0


# -- analyze / ingest ----------------------------------------------------------------------------------------
def _run(args: argparse.Namespace, *, follow: bool, resume: bool) -> int:
    from llmid.runner import RunSummary, run_source

    settings = _settings(args)
    _check_source(args.file)
    if settings.broker:  # scale-out: the stages run on Celery workers (llmid worker)
        from llmid.workers.client import ingest_via_broker

        return ingest_via_broker(args, settings, follow=follow, resume=resume,
                                 wait=not resume or bool(getattr(args, "wait", False)),
                                 print_json=_print_json, print_summary=_print_summary)
    warn = ui.make_warn(settings.quiet)
    summary = RunSummary()
    with _open_store(settings) as store:
        try:
            with ui.progress("analysing", None if follow else ui.file_size(args.file), settings.quiet) as update:
                summary = run_source(args.file, settings, store, follow=follow, resume=resume,
                                     on_progress=update, warn=warn)
        except KeyboardInterrupt:
            ui.error(f"Interrupted; everything committed before the interrupt is kept in {settings.store}.")
            return EXIT_INTERRUPTED
        if getattr(args, "json", False):
            summary.write_json(sys.stdout)
        elif not settings.quiet or not follow:
            _print_summary(summary, settings.store)
    return 0


def _print_summary(summary: Any, store_url: str) -> None:
    print(f"{summary.records} records, {len(summary.template_ids)} templates, "
          f"{len(summary.incidents)} incidents -> {store_url}")
    for inc in summary.incidents:
        rc = inc["root_cause"]
        where = rc["service"]["name"] or rc["host"]["name"] or inc["log"]["file"]["path"]
        print(f"\nIncident {inc['incident_id']}  anomaly {inc['anomaly_score']:.2f}  "
              f"window {inc['window']['start'] or ''} .. {inc['window']['end'] or ''} "
              f"(lines {inc['window']['first_line']}-{inc['window']['last_line']})")
        print(f"  root cause  [{where}] {rc['template']}  (score {rc['score']:.2f}, lines {rc['lines'][:5]})")
        for ev in inc["chain"][1:5]:
            print(f"  then        [{ev['service']['name'] or ''}] {ev['template']}")
        for rec in inc["recommendations"]:
            c = rec["confidence"]
            on = f" on {rec['target']}" if rec["target"] else ""
            print(f"  recommend   {rec['action']}{on}  confidence {c['mean']:.2f} "
                  f"[{c['low']:.2f}, {c['high']:.2f}]  safety: {rec['safety']['verdict']}")


def cmd_analyze(args: argparse.Namespace) -> int:
    return _run(args, follow=False, resume=False)


def cmd_ingest(args: argparse.Namespace) -> int:
    return _run(args, follow=args.follow, resume=True)


# -- queries -------------------------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    from llmid.store import SearchQuery

    settings = _settings(args)
    q = SearchQuery(
        text=args.query or None, template_id=args.template, level=args.level, service=args.service,
        since=parse_time(args.since) if args.since else None, until=parse_time(args.until) if args.until else None,
        incident_id=args.incident, limit=args.limit, offset=args.offset,
    )
    with _open_store(settings) as store:
        page = store.search(q)
    if args.json:
        _print_json({"total": page.total, "hits": page.hits})
        return 0
    rows = [[h.get("@timestamp"), h["log"]["level"], h["service"]["name"], h["llmid"]["template_id"],
             (h["llmid"].get("content") or h["message"])[:160]] for h in page.hits]
    ui.print_table(["@timestamp", "level", "service", "template", "content"], rows,
                   title=f"{page.total} matching records (showing {len(rows)})")
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _open_store(settings) as store:
        page = store.templates(limit=args.limit, offset=args.offset)
    if args.json:
        _print_json({"total": page.total, "templates": page.hits})
        return 0
    rows = [[t["template_id"], t["count"], t["service"]["name"], t["template"][:140]] for t in page.hits]
    ui.print_table(["template_id", "count", "service", "template"], rows, title=f"{page.total} templates")
    return 0


def cmd_incidents(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _open_store(settings) as store:
        if args.id:
            doc = store.get_incident(args.id)
            if doc is None:
                raise InputError(f"No incident {args.id} in {settings.store}.")
            _print_json(doc)
            return 0
        page = store.incidents(limit=args.limit, offset=args.offset, min_score=args.min_score)
    if args.json:
        _print_json({"total": page.total, "incidents": page.hits})
        return 0
    rows = []
    for d in page.hits:
        recs = d.get("recommendations") or []
        rec = f"{recs[0]['action']} ({recs[0]['confidence']['mean']:.2f})" if recs else ""
        rows.append([d["incident_id"], f"{d['anomaly_score']:.2f}", d["window"]["start"],
                     d["root_cause"]["service"]["name"], d["root_cause"]["template"][:90], rec])
    ui.print_table(["incident", "anomaly", "start", "service", "root cause", "recommendation"], rows,
                   title=f"{page.total} incidents")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _open_store(settings) as store:
        counts = store.stats()
        from llmid.workers.deadletter import count as dead_letters

        if failed := dead_letters(store):  # only shown when a worker gave up on something: llmid failures
            counts["failures"] = failed
    if args.json:
        _print_json(counts)
    else:
        ui.print_table(["kind", "count"], [[k, v] for k, v in counts.items()], title=settings.store)
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.json:
        _print_json(settings.as_dict())
    else:
        ui.print_table(["setting", "value"], [[k, v] for k, v in settings.as_dict().items()])
    return 0


def cmd_eval_parsing(args: argparse.Namespace) -> int:
    from llmid.evaluation.parsing_eval import format_table, run_parsing_eval

    if not os.path.isdir(args.data):
        raise InputError(f"No data directory {args.data} (expected Loghub-2k system folders).")
    if args.parser == "drain3":
        try:
            import drain3  # noqa: F401
        except ImportError:
            raise ConfigError("The drain3 parser needs the [dev] extra: pip install 'llmid[dev]'.") from None
    if args.leave_one_out:  # learned structurer, one model per held-out system (issue 3)
        from llmid.evaluation.parsing_eval import cmd_leave_one_out

        return cmd_leave_one_out(args, _print_json)
    result = run_parsing_eval(args.data, systems=args.systems or None, gt=args.gt, parser=args.parser)
    if args.json:
        _print_json(result)
    else:
        print(format_table(result))
    return 0


# -- argument parser -----------------------------------------------------------------------------------------
_STRUCTURER_HELP = ("template miner: learned (the structurer model behind the miner's fast paths), baseline "
                    "(rules only), auto (learned when its model is installed; the default)")
_FMT_HELP = ("log header template such as '<Date> <Time> <Level> <Component>: <Content>', or a preset name "
             "(HDFS, BGL, syslog, json, ...; see `llmid formats`); default: detect per line")


def _common(p: argparse.ArgumentParser, *, store: bool = True, json_flag: bool = True) -> None:
    if store:
        p.add_argument("--store", metavar="URL",
                       help="result store: sqlite:///PATH (default sqlite:///./llmid.db), "
                            "opensearch+http(s)://HOST:PORT, elasticsearch+http(s)://HOST:PORT")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    p.add_argument("--config", metavar="FILE", help="TOML settings file (default ./llmid.toml if present)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or warnings")


def _reasoner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reasoner", choices=["auto", "learned", "baseline"],
                   help="root-cause reasoner: the event-graph model (learned), the rule baseline, or auto "
                        "(default: learned when its model is installed)")
    p.add_argument("--reasoner-model", metavar="ONNX", help="learned reasoner model file (default: the shipped one)")
    p.add_argument("--planner", choices=["auto", "learned", "baseline"],
                   help="recovery planner: the actor-critic model (learned), the keyword runbook (baseline), or "
                        "auto (default: learned when its model is installed)")
    p.add_argument("--planner-model", metavar="ONNX", help="learned planner model file (default: the shipped one)")
    p.add_argument("--safety-policy", metavar="FILE",
                   help="safety policy (TOML or JSON) the gate applies to every recommendation")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llmid",
        description="LLM-ID: turn raw logs into event templates, incidents with root causes and fault chains, "
                    "and recovery recommendations with calibrated confidence.",
        epilog="Quick start: llmid analyze app.log  (results land in ./llmid.db; then llmid incidents)",
    )
    p.add_argument("--version", action="version", version=f"llmid {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sp = sub.add_parser("parse", help="print the template of every line as Loghub-style CSV",
                        description="Mine event templates from FILE and print one CSV row per record: "
                                    "LineId,Level,Component,Content,EventId,EventTemplate,ParameterList "
                                    "(the Loghub benchmark columns). Nothing is stored.")
    sp.add_argument("file", metavar="FILE", help="log file, .gz, or - for standard input")
    sp.add_argument("--log-format", metavar="FMT", help=_FMT_HELP)
    sp.add_argument("--structurer", choices=["auto", "learned", "baseline"], help=_STRUCTURER_HELP)
    _common(sp, store=False, json_flag=False)
    sp.set_defaults(func=cmd_parse)

    sp = sub.add_parser("analyze", help="run the whole pipeline on a file and store the results",
                        description="Structure, window, reason and plan over FILE; write annotated logs, "
                                    "templates, incidents and recommendations to the store; print the incidents "
                                    "with their root cause, chain and recommendation. Re-running is idempotent.")
    sp.add_argument("file", metavar="FILE", help="log file, .gz, or - for standard input")
    sp.add_argument("--log-format", metavar="FMT", help=_FMT_HELP)
    sp.add_argument("--window-seconds", type=float, metavar="S", help="reasoning window length (default 300)")
    _reasoner_args(sp)
    sp.add_argument("--structurer", choices=["auto", "learned", "baseline"], help=_STRUCTURER_HELP)
    _common(sp)
    sp.set_defaults(func=cmd_analyze)

    sp = sub.add_parser("ingest", help="stream logs (a file, or - for stdin) through the pipeline into the store",
                        description="Like analyze, for continuous input: --follow keeps reading like tail -F "
                                    "(survives rotation) until Ctrl-C. With --broker, stages run on Celery workers.")
    sp.add_argument("file", metavar="FILE|-", help="log file, .gz, or - for standard input")
    sp.add_argument("--log-format", metavar="FMT", help=_FMT_HELP)
    sp.add_argument("--follow", "-F", action="store_true", help="keep reading appended lines, across rotation")
    sp.add_argument("--broker", metavar="URL", help="Celery broker URL (redis://..., amqp://...); stages run on "
                                                    "`llmid worker` processes")
    from llmid.workers.cli import add_ingest_arguments

    add_ingest_arguments(sp)  # --wait, --timeout
    sp.add_argument("--window-seconds", type=float, metavar="S", help="reasoning window length (default 300)")
    _reasoner_args(sp)
    _common(sp)
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser("search", help="full-text search over the annotated logs",
                        description="Search stored log records (full text: SQLite FTS5 syntax on the embedded "
                                    "store), newest first, with filters.")
    sp.add_argument("query", nargs="?", default="", help="full-text query (empty: every record)")
    sp.add_argument("--template", metavar="ID", help="only records of this template id")
    sp.add_argument("--level", help="only this level (INFO, WARN, ERROR, ...)")
    sp.add_argument("--service", help="only this service.name")
    sp.add_argument("--incident", metavar="ID", help="only records of this incident")
    sp.add_argument("--since", metavar="TIME", help="from TIME (ISO-8601, or relative: 30m, 2h, 7d)")
    sp.add_argument("--until", metavar="TIME", help="up to TIME (same forms as --since)")
    sp.add_argument("--limit", type=int, default=50, help="records per page (default 50)")
    sp.add_argument("--offset", type=int, default=0, help="skip this many records (pagination)")
    _common(sp)
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("templates", help="list event templates, most frequent first",
                        description="List the stored event templates with their counts.")
    sp.add_argument("--limit", type=int, default=100)
    sp.add_argument("--offset", type=int, default=0)
    _common(sp)
    sp.set_defaults(func=cmd_templates)

    sp = sub.add_parser("incidents", help="list incidents by anomaly score, or show one",
                        description="List stored incidents (highest anomaly first) with their root cause and "
                                    "recommendation; with an ID, print that incident's whole document as JSON.")
    sp.add_argument("id", nargs="?", metavar="ID", help="incident id to show in full")
    sp.add_argument("--limit", type=int, default=100)
    sp.add_argument("--offset", type=int, default=0)
    sp.add_argument("--min-score", type=float, default=0.0, help="only incidents with at least this anomaly score")
    _common(sp)
    sp.set_defaults(func=cmd_incidents)

    sp = sub.add_parser("stats", help="count records, templates, incidents and recommendations in the store",
                        description="Print the document counts of the store.")
    _common(sp)
    sp.set_defaults(func=cmd_stats)

    sp = sub.add_parser("config", help="show the effective settings",
                        description="Settings come from flags > environment LLMID_* > TOML file > defaults.")
    csub = sp.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    cs = csub.add_parser("show", help="print the effective settings and where they come from",
                         description="Print the effective settings (flags > LLMID_* environment > TOML > defaults).")
    _common(cs)
    cs.set_defaults(func=cmd_config_show)

    sp = sub.add_parser("eval", help="evaluate against labelled benchmark data",
                        description="Benchmarks against ground truth.")
    esub = sp.add_subparsers(dest="eval_command", metavar="WHAT", required=True)
    es = esub.add_parser("parsing", help="GA, FGA, PA, FTA per Loghub-2k system and their mean",
                         description="Parse each Loghub-2k system folder under --data and score the templates "
                                     "against the ground truth (metrics as in the Loghub-2.0 evaluator).")
    es.add_argument("--data", default="../shared/data/loghub2k", help="folder of <System>/<System>_2k.log ...")
    es.add_argument("--systems", nargs="*", metavar="NAME", help="only these systems (default: every one present)")
    es.add_argument("--gt", choices=["corrected", "original", "loghub2"], default="corrected",
                    help="ground-truth variant (default: corrected, Khan et al. ICSE'22)")
    es.add_argument("--parser", choices=["llmid", "drain3", "learned"], default="llmid",
                    help="parser to score: llmid (baseline miner), drain3 (needs the [dev] extra), learned "
                         "(the shipped structurer model; trained on these systems, see --leave-one-out)")
    from llmid.evaluation.parsing_eval import add_leave_one_out_arguments

    add_leave_one_out_arguments(es)  # --leave-one-out, --ablations, --no-model, --epochs, --cache, --card
    _common(es, store=False)
    es.set_defaults(func=cmd_eval_parsing)

    sp = sub.add_parser("formats", help="list the log-format presets",
                        description="List the named log formats usable with --log-format.")
    _common(sp, store=False)
    sp.set_defaults(func=cmd_formats)

    try:
        from llmid.sim.cli import add_parser as add_sim
    except ImportError:  # pragma: no cover - the simulator is optional in minimal builds
        add_sim = None
    if add_sim is not None:
        add_sim(sub)
    from llmid.evaluation.rca_cli import add_parser as add_rca_eval
    from llmid.model_export.reasoner_cli import add_parser as add_reasoner_train

    add_reasoner_train(sub)  # train reasoner (torch is imported only when training runs)
    from llmid.model_export.cli import add_parser as add_structurer_train

    add_structurer_train(sub)  # train structurer (torch is imported only when training runs)
    add_rca_eval(sub)  # eval rca
    from llmid.evaluation.planner_cli import add_parser as add_planner_eval
    from llmid.model_export.planner_cli import add_parser as add_planner_train

    add_planner_train(sub)  # train planner (torch is imported only when training runs)
    add_planner_eval(sub)  # eval planner
    from llmid.plugin.executors import add_parser as add_execute

    add_execute(sub)  # execute (gate + executor hook; runs nothing unless --execute)
    from llmid.plugin.webapp.cli import add_parser as add_web

    add_web(sub)  # serve, token, alerts (Flask is imported only when serve runs)
    from llmid.workers.cli import add_parser as add_workers

    add_workers(sub)  # worker, failures (Celery is imported only when a worker starts or a run is sent)
    from llmid.plugin.cli import add_parser as add_plugin

    add_plugin(sub)  # install, uninstall, datafeed, export-dashboards (cluster clients are imported lazily)
    return p


def cmd_formats(args: argparse.Namespace) -> int:
    from llmid.ingest_pipelines.formats import ALIASES, PRESETS, format_names

    aliases: dict[str, list[str]] = {}
    for alias, name in ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    rows = [{"name": n, "header_template": PRESETS.get(n, "(built-in parser)"), "aliases": aliases.get(n, [])}
            for n in format_names()]
    if args.json:
        _print_json(rows)
    else:
        ui.print_table(["name", "header template", "aliases"],
                       [[r["name"], r["header_template"], ", ".join(r["aliases"])] for r in rows])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except LlmidError as e:
        ui.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        ui.error("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error for the user
        sys.stderr.close()
        return 0
    except Exception as e:  # noqa: BLE001 - last line of defence: one sentence, not a traceback
        if os.environ.get("LLMID_DEBUG"):
            raise
        ui.error(f"Internal error ({type(e).__name__}: {e}); rerun with LLMID_DEBUG=1 for details and report it.")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
