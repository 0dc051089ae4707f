"""`llmid install`, `uninstall`, `datafeed`, `export-dashboards`: the cluster side of the command line.

Thin: parse arguments, open the cluster, call llmid.plugin.install / llmid.ingest_pipelines.datafeed /
llmid.kibana_vis, print. Credentials never come from flags (see llmid/store/cluster.py for the environment).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from llmid.errors import ConfigError
from llmid.store import index_templates as it


def _cluster_url(url: str) -> str:
    """`http(s)://HOST:PORT` (engine detected) or an `opensearch+...` / `elasticsearch+...` store URL."""
    if "+" in url.split("://", 1)[0]:
        return url
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"Invalid cluster URL {url.split('@')[-1]!r}: expected http(s)://HOST:PORT.")
    return "opensearch+" + url


def open_cluster(url: str, prefix: str | None = None) -> Any:
    """A ClusterStore of the right engine for `url` (a plain http(s) URL is probed with one GET /: OpenSearch
    answers with its distribution), without installing anything."""
    from llmid.store.cluster import ClusterHTTPError, ClusterOptions, ClusterUnreachable
    from llmid.store.opensearch import OpenSearchStore, OpenSearchTransport

    opts = ClusterOptions.from_url(_cluster_url(url))
    if prefix:
        opts.prefix = prefix
    if "+" not in url.split("://", 1)[0]:
        probe = OpenSearchTransport(opts)
        try:
            info = probe.request("GET", "/")
            if (info.get("version") or {}).get("distribution") != "opensearch":
                opts.engine = "elasticsearch"
        except (ClusterHTTPError, ClusterUnreachable):
            pass  # the store below retries and says what is wrong, in one sentence
        finally:
            probe.close()
    if opts.engine == "elasticsearch":
        from llmid.store.elasticsearch import ElasticsearchStore, ElasticsearchTransport

        return ElasticsearchStore(opts, ElasticsearchTransport(opts), ensure=False)
    return OpenSearchStore(opts, OpenSearchTransport(opts), ensure=False)


def _report(outcomes: list[Any], as_json: bool, verb: str) -> None:
    if as_json:
        json.dump([o.to_json() for o in outcomes], sys.stdout)
        sys.stdout.write("\n")
        return
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.result] = counts.get(o.result, 0) + 1
        if o.result != "unchanged":
            print(f"{o.result:9} {o.kind} {o.name}" + (f" ({o.detail})" if o.detail else ""))
    print(f"{verb}: " + ", ".join(f"{n} {r}" for r, n in sorted(counts.items())))


def _installer(args: argparse.Namespace, store: Any) -> Any:
    from llmid.plugin.install import Dashboards, Installer

    dashboards = None
    if getattr(args, "dashboards_url", None):
        dashboards = Dashboards(args.dashboards_url, "osd")
    elif getattr(args, "kibana_url", None):
        dashboards = Dashboards(args.kibana_url, "kibana")
    engine = store.engine if store is not None else ("elasticsearch" if args.kibana_url or args.url.startswith(
        "elasticsearch+") else "opensearch")
    prefix = args.prefix or (store.prefix if store is not None else it.DEFAULT_PREFIX)
    return Installer(engine, prefix, store=store, dashboards=dashboards, retention_days=args.retention_days,
                     threshold=args.threshold, channel_id=args.alert_channel, interval=args.interval)


def cmd_install(args: argparse.Namespace) -> int:
    if args.dry_run:
        inst = _installer(args, None)
        for req in inst.plan():
            print(req.show())
            print()
        print(f"dry run: {len(inst.plan())} requests; nothing was sent.", file=sys.stderr)
        return 0
    store = open_cluster(args.url, args.prefix)
    try:
        _report(_installer(args, store).install(), args.json, "install")
    finally:
        store.close()
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    store = open_cluster(args.url, args.prefix)
    try:
        _report(_installer(args, store).uninstall(delete_data=args.delete_data), args.json, "uninstall")
    finally:
        store.close()
    return 0


def cmd_export_dashboards(args: argparse.Namespace) -> int:
    from llmid.kibana_vis import saved_objects

    for path in saved_objects.export(args.dir, args.prefix, args.interval):
        print(path)
    return 0


def cmd_datafeed(args: argparse.Namespace) -> int:
    from llmid.cli import _settings
    from llmid.plugin.datafeed import Datafeed
    from llmid.store import open_store

    settings = _settings(args)
    with open_store(settings.store) as store:
        feed = Datafeed(store, args.source_index, settings, name=args.name, message_field=args.message_field,
                        write_back=not args.no_write_back, checkpoint_pages=args.checkpoint_pages,
                        settle_s=args.settle)

        def progress(n: int, summary: Any) -> None:
            if not settings.quiet and not args.json:
                print(f"round {summary.rounds}: {n} documents; total {summary.records} records, "
                      f"{summary.incidents} incidents", file=sys.stderr)

        try:
            summary = feed.run(follow=args.follow, poll_s=args.poll, on_round=progress)
        except KeyboardInterrupt:
            print(f"Interrupted; the datafeed resumes from its checkpoint {feed.checkpoint.to_json()['ts']}.",
                  file=sys.stderr)
            return 130
    if args.json:
        json.dump(summary.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"{summary.records} records, {summary.incidents} incidents, {summary.written_back} source documents "
              f"annotated -> {settings.store}")
    return 0


def _cluster_args(p: argparse.ArgumentParser, dashboards: bool = True) -> None:
    p.add_argument("--url", required=True, metavar="CLUSTER",
                   help="http(s)://HOST:PORT of OpenSearch or Elasticsearch (credentials: LLMID_STORE_USERNAME/"
                        "_PASSWORD, LLMID_STORE_API_KEY or LLMID_STORE_CREDENTIALS=FILE; TLS: LLMID_STORE_CA_CERTS)")
    if dashboards:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--dashboards-url", metavar="URL", help="OpenSearch Dashboards, for the saved objects")
        g.add_argument("--kibana-url", metavar="URL", help="Kibana, for the saved objects and the alert rule")
    p.add_argument("--prefix", help=f"index name prefix (default {it.DEFAULT_PREFIX}, or the URL's ?prefix=)")
    p.add_argument("--retention-days", type=int, default=it.DEFAULT_RETENTION_DAYS,
                   help=f"delete log partitions after this many days (default {it.DEFAULT_RETENTION_DAYS})")
    p.add_argument("--threshold", type=float, default=0.8,
                   help="alert when an incident's root-cause score reaches this (default 0.8)")
    p.add_argument("--alert-channel", metavar="ID",
                   help="OpenSearch notification channel / Kibana connector id the alert sends to")
    p.add_argument("--interval", default="1h", help="bucket width of the time panels (default 1h)")
    p.add_argument("--json", action="store_true", help="print what was done as JSON")


def add_parser(sub: Any) -> None:
    """Register install, uninstall, datafeed and export-dashboards on the `llmid` subcommands."""
    sp = sub.add_parser("install", help="set a cluster up: templates, policies, pipelines, dashboards, alerts",
                        description="Create or update, idempotently, everything LLM-ID needs in an OpenSearch or "
                                    "Elasticsearch cluster: index templates, the retention policy (ISM/ILM), ingest "
                                    "pipelines, the alert monitor, and (with --dashboards-url / --kibana-url) the "
                                    "saved visualizations and dashboard. Reports what it did.")
    _cluster_args(sp)
    sp.add_argument("--dry-run", action="store_true", help="print every request it would send; send nothing")
    sp.set_defaults(func=cmd_install)

    sp = sub.add_parser("uninstall", help="remove exactly what install created",
                        description="Delete the templates, policies, pipelines, alert monitor and saved objects "
                                    "install created. Data indices stay unless --delete-data.")
    _cluster_args(sp)
    sp.add_argument("--delete-data", action="store_true", help="also delete every PREFIX* index (all results)")
    sp.set_defaults(func=cmd_uninstall)

    sp = sub.add_parser("datafeed", help="analyse an existing index of raw logs, and keep tailing it",
                        description="Read --source-index with a point in time and search_after, send the lines "
                                    "through the pipeline, write the results to the cluster store and the annotations "
                                    "back onto the source documents; resumes from its checkpoint after a restart.")
    sp.add_argument("--source-index", required=True, metavar="PATTERN", help="index or pattern to read, e.g. 'logs-*'")
    sp.add_argument("--store", metavar="URL", help="the cluster store (opensearch+http(s)://..., elasticsearch+...)")
    sp.add_argument("--name", help="checkpoint name (default: the source pattern)")
    sp.add_argument("--message-field", default="message", help="field holding the raw line (default message)")
    sp.add_argument("--log-format", metavar="FMT", help="header template or preset of the lines (default: detect)")
    sp.add_argument("--follow", "-F", action="store_true", help="keep polling for new documents until Ctrl-C")
    sp.add_argument("--poll", type=float, default=5.0, help="seconds between rounds with --follow (default 5)")
    sp.add_argument("--settle", type=float, default=0.0,
                    help="only read documents at least this many seconds old (late shippers)")
    sp.add_argument("--checkpoint-pages", type=int, default=20, help="checkpoint every N pages of 1000 (default 20)")
    sp.add_argument("--no-write-back", action="store_true", help="do not annotate the source documents")
    sp.add_argument("--window-seconds", type=float, metavar="S", help="reasoning window length (default 300)")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.add_argument("--config", metavar="FILE", help="TOML settings file")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress")
    sp.set_defaults(func=cmd_datafeed)

    sp = sub.add_parser("export-dashboards", help="write the saved objects as NDJSON files for manual import",
                        description="Write llmid-osd.ndjson (OpenSearch Dashboards 2.x), llmid-kibana.ndjson "
                                    "(Kibana 8.x) and each Vega-Lite spec in its cluster form to DIR.")
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--prefix", default=it.DEFAULT_PREFIX, help=f"index name prefix (default {it.DEFAULT_PREFIX})")
    sp.add_argument("--interval", default="1h", help="bucket width of the time panels (default 1h)")
    sp.set_defaults(func=cmd_export_dashboards)
