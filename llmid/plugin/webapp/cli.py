"""`llmid serve`, `llmid token create|list|revoke`, `llmid alerts list|add|test|check|delete`.

Kept out of llmid/cli.py (the main CLI only calls `add_parser`); Flask and waitress are imported only when
`serve` runs, so every other command starts as fast as before.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from llmid.errors import ConfigError, LlmidError

DEFAULT_PORT = 8080


def _main_cli() -> Any:
    from llmid import cli

    return cli


def add_parser(sub: Any) -> None:
    """Register serve, token and alerts on the main CLI's subparsers."""
    common = _main_cli()._common

    sp = sub.add_parser(
        "serve", help="run the web app and REST API over the store",
        description="Serve the web app (search, templates, incidents with their fault chain, recommendations, "
                    "dashboards, alert rules) and the REST API under /api/v1 (OpenAPI at /api/v1/openapi.json) "
                    "with waitress, a production WSGI server. Pages and API need a token (llmid token create); "
                    "on a store without any, serve creates an admin token and prints it once.")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    sp.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    sp.add_argument("--workers", type=int, default=4, metavar="N",
                    help="worker threads serving requests in parallel (default 4)")
    sp.add_argument("--public-read", action="store_true",
                    help="let anyone read pages and GET endpoints without a token (writes still need one)")
    sp.add_argument("--max-body", type=int, default=2 * 1024 * 1024, metavar="BYTES",
                    help="largest request body (default 2 MiB); bigger requests get 413")
    sp.add_argument("--rate-limit", type=float, default=1200, metavar="N",
                    help="requests per minute per client, 0 for no limit (default 1200)")
    sp.add_argument("--alert-interval", type=float, default=30, metavar="S",
                    help="check alert rules every S seconds (default 30; 0: only after API ingests)")
    sp.add_argument("--base-url", metavar="URL", help="public URL of the app, for links in notifications")
    sp.add_argument("--window-seconds", type=float, metavar="S", help="reasoning window for API ingests")
    common(sp, json_flag=False)
    sp.set_defaults(func=cmd_serve)

    tp = sub.add_parser("token", help="create, list or revoke API tokens",
                        description="API tokens for the web app and REST API; the store keeps only their hashes.")
    tsub = tp.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    tc = tsub.add_parser("create", help="create a token and print it (shown only once)",
                         description="Create a token with a role: read (pages, GET), write (+ ingest, approve, "
                                     "reject), admin (+ alert rules, tokens). Prints the secret once.")
    tc.add_argument("--role", choices=["read", "write", "admin"], required=True)
    tc.add_argument("--name", help="who or what the token is for (shown in the audit trail)")
    common(tc)
    tc.set_defaults(func=cmd_token_create)
    tl = tsub.add_parser("list", help="list tokens (ids, names, roles; never the secrets)",
                         description="List the tokens of the store.")
    common(tl)
    tl.set_defaults(func=cmd_token_list)
    tr = tsub.add_parser("revoke", help="revoke a token by its id", description="Delete a token by its token_id.")
    tr.add_argument("token_id", metavar="TOKEN_ID")
    common(tr, json_flag=False)
    tr.set_defaults(func=cmd_token_revoke)

    ap = sub.add_parser("alerts", help="alert rules on root-cause and anomaly scores",
                        description="Alert rules live in the store; `serve` evaluates them, or run `alerts check`.")
    asub = ap.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    al = asub.add_parser("list", help="list alert rules", description="List the alert rules of the store.")
    common(al)
    al.set_defaults(func=cmd_alerts_list)
    aa = asub.add_parser(
        "add", help="add an alert rule",
        description="Fire when an incident's score reaches THRESHOLD (optionally only for one root-cause service), "
                    "at most once per incident and once per service per cooldown; notify by webhook and/or e-mail.")
    aa.add_argument("--name", required=True)
    aa.add_argument("--metric", choices=["root_cause_score", "anomaly_score"], default="root_cause_score")
    aa.add_argument("--threshold", type=float, required=True, help="0..1")
    aa.add_argument("--service", help="only incidents whose root cause is in this service")
    aa.add_argument("--cooldown", type=float, default=900, metavar="S",
                    help="seconds before the same service alerts again (default 900)")
    aa.add_argument("--webhook", action="append", default=[], metavar="URL", help="POST a JSON payload here")
    aa.add_argument("--email", action="append", default=[], metavar="ADDR", help="send an e-mail to ADDR")
    aa.add_argument("--smtp", default="smtp://localhost:25", metavar="URL",
                    help="SMTP server: smtp://HOST:PORT, smtps://..., smtp+starttls://USER:PASS@HOST:PORT")
    aa.add_argument("--from", dest="sender", default="llmid@localhost", metavar="ADDR", help="e-mail sender")
    aa.add_argument("--disabled", action="store_true", help="add the rule switched off")
    common(aa)
    aa.set_defaults(func=cmd_alerts_add)
    at = asub.add_parser("test", help="send a test notification on every channel of a rule",
                         description="Send a test notification (about the best matching incident, else a sample).")
    at.add_argument("rule_id", metavar="RULE_ID")
    common(at)
    at.set_defaults(func=cmd_alerts_test)
    ac = asub.add_parser("check", help="evaluate the rules against the stored incidents now",
                         description="Evaluate every enabled rule once and send what fires (for cron).")
    common(ac)
    ac.set_defaults(func=cmd_alerts_check)
    ad = asub.add_parser("delete", help="delete an alert rule", description="Delete an alert rule by id.")
    ad.add_argument("rule_id", metavar="RULE_ID")
    common(ad, json_flag=False)
    ad.set_defaults(func=cmd_alerts_delete)


# -- serve ------------------------------------------------------------------------------------------------------

def _alert_loop(url: str, interval: float, base_url: str | None, stop: threading.Event) -> None:
    """Evaluate alert rules every `interval` seconds on a store connection of its own."""
    from llmid.plugin import alerts
    from llmid.store import open_store

    st = open_store(url)
    try:
        while not stop.wait(interval):
            try:
                for f in alerts.evaluate(st, base_url=base_url):
                    print(f"llmid: alert {f['status']}: rule {f['rule_id']} incident {f['incident_id']}",
                          file=sys.stderr)
            except LlmidError as e:
                print(f"llmid: warning: alert check failed: {e}", file=sys.stderr)
    finally:
        st.close()


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import waitress
    except ImportError:
        raise ConfigError("The web app needs flask and waitress: pip install 'llmid[web]'.") from None
    from llmid.plugin.webapp import tokens
    from llmid.plugin.webapp.app import create_app
    from llmid.plugin.webapp.config import WebConfig

    cli = _main_cli()
    settings = cli._settings(args, window_seconds=getattr(args, "window_seconds", None))
    if not 0 < args.port < 65536:
        raise ConfigError("--port must be between 1 and 65535.")
    if not 1 <= args.workers <= 256:
        raise ConfigError("--workers must be between 1 and 256.")
    if args.max_body < 1024:
        raise ConfigError("--max-body must be at least 1024 bytes.")
    config = WebConfig(settings=settings, public_read=args.public_read, max_body_bytes=args.max_body,
                       rate_per_minute=args.rate_limit, alert_interval_s=args.alert_interval,
                       base_url=args.base_url)
    with cli._open_store(settings) as st:
        if not tokens.has_tokens(st):
            secret, _ = tokens.create_token(st, "admin", "bootstrap admin")
            print("llmid: no tokens in this store yet; created an admin token (shown only now):\n"
                  f"  {secret}\n  sign in at http://{_display_host(args.host)}:{args.port}/login "
                  "or send Authorization: Bearer TOKEN", file=sys.stderr)
    app = create_app(settings.store, config)
    stop = threading.Event()
    if args.alert_interval > 0:
        threading.Thread(target=_alert_loop, args=(settings.store, args.alert_interval, args.base_url, stop),
                         name="llmid-alerts", daemon=True).start()
    print(f"llmid: serving {settings.store} on http://{_display_host(args.host)}:{args.port}/ "
          f"({args.workers} workers; Ctrl-C stops)", file=sys.stderr)
    try:
        waitress.serve(app, host=args.host, port=args.port, threads=args.workers, ident="llmid",
                       max_request_body_size=args.max_body, channel_timeout=60, connection_limit=200,
                       clear_untrusted_proxy_headers=True, _quiet=args.quiet)
    except OSError as e:
        raise ConfigError(f"Cannot listen on {args.host}:{args.port}: {e.strerror or e}.") from None
    except KeyboardInterrupt:
        print("llmid: stopped.", file=sys.stderr)
    finally:
        stop.set()
    return 0


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)


# -- tokens -----------------------------------------------------------------------------------------------------

def cmd_token_create(args: argparse.Namespace) -> int:
    from llmid.plugin.webapp import tokens

    cli = _main_cli()
    settings = cli._settings(args)
    with cli._open_store(settings) as st:
        secret, doc = tokens.create_token(st, args.role, args.name)
        st.record_audit("cli", "token.create", doc["token_id"], {"role": doc["role"], "name": doc["name"]})
    if args.json:
        cli._print_json({**doc, "token": secret})
    else:
        print(secret)
        print(f"token {doc['token_id']} ({doc['role']}, {doc['name']}): keep it secret; it is not shown again.",
              file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from llmid import ui
    from llmid.plugin.webapp import tokens

    cli = _main_cli()
    with cli._open_store(cli._settings(args)) as st:
        rows = tokens.list_tokens(st)
    if args.json:
        cli._print_json(rows)
    else:
        ui.print_table(["token_id", "role", "name", "created"],
                       [[r["token_id"], r["role"], r["name"], r["created"]] for r in rows])
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from llmid.plugin.webapp import tokens

    cli = _main_cli()
    with cli._open_store(cli._settings(args)) as st:
        if not tokens.revoke(st, args.token_id):
            raise ConfigError(f"No token {args.token_id!r} (see llmid token list).")
        st.record_audit("cli", "token.revoke", args.token_id, {})
    print(f"revoked {args.token_id}")
    return 0


# -- alerts -----------------------------------------------------------------------------------------------------

def cmd_alerts_list(args: argparse.Namespace) -> int:
    from llmid import ui
    from llmid.plugin import alerts

    cli = _main_cli()
    with cli._open_store(cli._settings(args)) as st:
        rules = [alerts.public_rule(r) for r in alerts.list_rules(st)]
    if args.json:
        cli._print_json(rules)
        return 0
    ui.print_table(["rule_id", "name", "when", "service", "cooldown", "channels", "enabled"], [
        [r["rule_id"], r["name"], f"{r['metric']} >= {r['threshold']}", r["service"] or "any",
         f"{r['cooldown_s']:g}s", "; ".join(c.get("url") or ", ".join(c.get("to", [])) for c in r["channels"]),
         "yes" if r["enabled"] else "no"] for r in rules])
    return 0


def cmd_alerts_add(args: argparse.Namespace) -> int:
    from llmid.plugin import alerts

    channels: list[dict[str, Any]] = [{"type": "webhook", "url": u} for u in args.webhook]
    if args.email:
        channels.append({"type": "email", "to": args.email, "smtp": args.smtp, "from": args.sender})
    if not channels:
        raise ConfigError("Give at least one --webhook URL or --email ADDR.")
    rule = alerts.AlertRule.from_doc({
        "name": args.name, "metric": args.metric, "threshold": args.threshold, "service": args.service,
        "cooldown_s": args.cooldown, "channels": channels, "enabled": not args.disabled})
    cli = _main_cli()
    with cli._open_store(cli._settings(args)) as st:
        doc = alerts.add_rule(st, rule)
        st.record_audit("cli", "alert_rule.add", rule.rule_id, {"name": rule.name})
    if args.json:
        cli._print_json(alerts.public_rule(doc))
    else:
        print(rule.rule_id)
    return 0


def cmd_alerts_test(args: argparse.Namespace) -> int:
    from llmid.plugin import alerts

    cli = _main_cli()
    with cli._open_store(cli._settings(args)) as st:
        results = alerts.send_test(st, args.rule_id)
    if args.json:
        cli._print_json(results)
    else:
        for r in results:
            print(f"{r['channel']}: {'sent' if r['ok'] else 'FAILED: ' + r['error']}")
    failed = [r for r in results if not r["ok"]]
    if failed and not args.json:
        raise ConfigError(f"{len(failed)} of {len(results)} notifications failed: {failed[0]['error']}.")
    return 1 if failed else 0


def cmd_alerts_check(args: argparse.Namespace) -> int:
    from llmid.plugin import alerts

    cli = _main_cli()
    with cli._open_store(cli._settings(args)) as st:
        firings = alerts.evaluate(st)
    if args.json:
        cli._print_json(firings)
    else:
        for f in firings:
            print(f"{f['status']}: rule {f['rule_id']} incident {f['incident_id']} ({f['service']}, {f['value']:.2f})")
        print(f"{len(firings)} new firings")
    return 0


def cmd_alerts_delete(args: argparse.Namespace) -> int:
    from llmid.plugin import alerts

    cli = _main_cli()
    with cli._open_store(cli._settings(args)) as st:
        if not alerts.delete_rule(st, args.rule_id):
            raise ConfigError(f"No alert rule {args.rule_id!r} (see llmid alerts list).")
        st.record_audit("cli", "alert_rule.delete", args.rule_id, {})
    print(f"deleted {args.rule_id}")
    return 0
