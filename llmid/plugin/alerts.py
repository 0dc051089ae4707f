"""Alert rules on root-cause and anomaly scores, kept in the store, notifying by webhook and e-mail (SMTP).

A rule fires for an incident whose score (`root_cause_score`: the root cause's score; `anomaly_score`: the
window's) is at or above its threshold, optionally only when the root cause is in one service. Two guards keep
on-call sane:
- de-duplication: one incident notifies a rule at most once, ever (also across processes: the claim is atomic);
- cooldown: after a rule notified about a service, further incidents of that service are recorded as
  suppressed for `cooldown_s` seconds instead of paging again.
Rules are evaluated by `llmid serve` (periodically and after each API ingest) and by `llmid alerts check`.
"""

from __future__ import annotations

import json
import re
import secrets
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from llmid import __version__
from llmid.documents import iso
from llmid.errors import ConfigError
from llmid.store.base import Store

RULE_KIND = "alert_rule"
SEEN_KIND = "alert_seen"
COOLDOWN_KIND = "alert_cooldown"
METRICS = ("root_cause_score", "anomaly_score")
NOTIFY_TIMEOUT_S = 10.0
MAX_CHANNELS = 10
MAX_INCIDENTS_PER_CHECK = 1000
EMAIL_PATTERN = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,190}"
NAME_PATTERN = r"[^\x00-\x1f\x7f]{1,100}"
_PORT = r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
WEBHOOK_PATTERN = r"https?://[A-Za-z0-9.-]{1,253}" + _PORT + r"([/?#][!-~]*)?"
_USERINFO = r"([A-Za-z0-9._~%!$&'()*+,;=-]{1,64}(:[A-Za-z0-9._~%!$&'()*+,;=-]{0,128})?@)?"
SMTP_PATTERN = r"(smtp|smtps|smtp\+starttls)://" + _USERINFO + r"[A-Za-z0-9.-]{1,253}" + _PORT
_EMAIL = re.compile(EMAIL_PATTERN)
_NAME = re.compile(NAME_PATTERN)
_WEBHOOK = re.compile(WEBHOOK_PATTERN)
_SMTP = re.compile(SMTP_PATTERN)


# -- rules ------------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class AlertRule:
    name: str
    metric: str
    threshold: float
    channels: list[dict[str, Any]]
    service: str | None = None
    """Only incidents whose root cause is in this service (None: any)."""
    cooldown_s: float = 900.0
    enabled: bool = True
    rule_id: str = field(default_factory=lambda: secrets.token_hex(6))
    created: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> AlertRule:
        """Validate a rule from the API, the CLI or the store; a bad field raises ConfigError naming it."""
        if not isinstance(doc, dict):
            raise ConfigError("An alert rule must be a JSON object.")
        known = {"name", "metric", "threshold", "channels", "service", "cooldown_s", "enabled", "rule_id", "created"}
        extra = sorted(set(doc) - known - {"_id"})
        if extra:
            raise ConfigError(f"Unknown alert rule field {extra[0]!r}.")
        name = doc.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError("An alert rule needs a name of 1-100 printable characters.")
        metric = doc.get("metric", "root_cause_score")
        if metric not in METRICS:
            raise ConfigError(f"metric must be one of {', '.join(METRICS)}.")
        threshold = doc.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
            raise ConfigError("threshold must be a number between 0 and 1.")
        service = doc.get("service")
        if service is not None and (not isinstance(service, str) or not 0 < len(service) <= 128):
            raise ConfigError("service must be a service name of at most 128 characters, or null.")
        cooldown = doc.get("cooldown_s", 900.0)
        if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or not 0 <= cooldown <= 30 * 86400:
            raise ConfigError("cooldown_s must be between 0 and 2592000 seconds (30 days).")
        enabled = doc.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError("enabled must be true or false.")
        channels = doc.get("channels")
        if not isinstance(channels, list) or not 1 <= len(channels) <= MAX_CHANNELS:
            raise ConfigError(f"channels must list 1 to {MAX_CHANNELS} notification channels.")
        rule = cls(name=name, metric=metric, threshold=float(threshold), channels=[check_channel(c) for c in channels],
                   service=service, cooldown_s=float(cooldown), enabled=enabled)
        rid = doc.get("rule_id")
        if rid is not None:
            if not isinstance(rid, str) or not re.fullmatch(r"[0-9a-f]{12}", rid):
                raise ConfigError("rule_id must be 12 hexadecimal characters.")
            rule.rule_id = rid
        if isinstance(doc.get("created"), str):
            rule.created = doc["created"]
        return rule


def check_channel(ch: Any) -> dict[str, Any]:
    """A webhook `{"type": "webhook", "url": "http(s)://..."}` or an e-mail
    `{"type": "email", "to": ["a@b"], "smtp": "smtp://host:port", "from": "llmid@host"}` channel."""
    if not isinstance(ch, dict):
        raise ConfigError("Each channel must be an object with a type.")
    kind = ch.get("type")
    if kind == "webhook":
        url = ch.get("url")
        if set(ch) - {"type", "url"}:
            raise ConfigError("A webhook channel has only type and url.")
        if not isinstance(url, str) or len(url) > 2000 or not _WEBHOOK.fullmatch(url) or not _port_ok(url):
            raise ConfigError("A webhook channel needs an http:// or https:// url.")
        return {"type": "webhook", "url": url}
    if kind == "email":
        if set(ch) - {"type", "to", "smtp", "from"}:
            raise ConfigError("An email channel has only type, to, smtp and from.")
        to = ch.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not 1 <= len(to) <= 20 or \
                not all(isinstance(a, str) and _EMAIL.fullmatch(a) for a in to):
            raise ConfigError("An email channel needs 1 to 20 addresses in to.")
        smtp = ch.get("smtp", "smtp://localhost:25")
        if not isinstance(smtp, str) or not _SMTP.fullmatch(smtp) or not _port_ok(smtp):
            raise ConfigError("smtp must be smtp://HOST:PORT, smtps://... or smtp+starttls://USER:PASS@HOST:PORT.")
        sender = ch.get("from", "llmid@localhost")
        if not isinstance(sender, str) or not _EMAIL.fullmatch(sender):
            raise ConfigError("from must be an e-mail address.")
        return {"type": "email", "to": list(to), "smtp": smtp, "from": sender}
    raise ConfigError("A channel type must be webhook or email.")


def _port_ok(url: str) -> bool:
    """The URL splits and its port, if any, is 1-65535."""
    try:
        port = urlsplit(url).port
    except ValueError:
        return False
    return port is None or 0 < port < 65536


def public_channel(ch: dict[str, Any]) -> dict[str, Any]:
    """A channel as listings show it: SMTP passwords masked."""
    if ch.get("type") == "email":
        p = urlsplit(ch["smtp"])
        if p.password:
            netloc = f"{p.username}:***@{p.hostname}" + (f":{p.port}" if p.port else "")
            return {**ch, "smtp": p._replace(netloc=netloc).geturl()}
    return dict(ch)


def public_rule(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "_id"}
    out["channels"] = [public_channel(c) for c in doc.get("channels", [])]
    return out


def add_rule(store: Store, rule: AlertRule) -> dict[str, Any]:
    rule.created = rule.created or iso(time.time())
    store.put_object(RULE_KIND, rule.rule_id, rule.to_doc())
    return rule.to_doc()


def list_rules(store: Store) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k != "_id"} for d in store.list_objects(RULE_KIND)]


def get_rule(store: Store, rule_id: str) -> dict[str, Any] | None:
    doc = store.get_object(RULE_KIND, rule_id) if re.fullmatch(r"[0-9a-f]{12}", rule_id or "") else None
    return None if doc is None else {k: v for k, v in doc.items() if k != "_id"}


def delete_rule(store: Store, rule_id: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{12}", rule_id or "")) and store.delete_object(RULE_KIND, rule_id)


# -- matching -----------------------------------------------------------------------------------------------------

def metric_value(incident: dict[str, Any], metric: str) -> float:
    if metric == "anomaly_score":
        return float(incident.get("anomaly_score") or 0.0)
    return float((incident.get("root_cause") or {}).get("score") or 0.0)


def root_service(incident: dict[str, Any]) -> str | None:
    return ((incident.get("root_cause") or {}).get("service") or {}).get("name")


def matches(rule: AlertRule, incident: dict[str, Any]) -> bool:
    if not rule.enabled or metric_value(incident, rule.metric) < rule.threshold:
        return False
    return rule.service is None or root_service(incident) == rule.service


def payload(rule: AlertRule, incident: dict[str, Any], base_url: str | None = None, test: bool = False
            ) -> dict[str, Any]:
    """What a webhook receives (and an e-mail renders): the rule, the score, the root cause, chain and actions."""
    iid = incident.get("incident_id")
    return {
        "source": "llmid",
        "version": __version__,
        "test": test,
        "rule": {"rule_id": rule.rule_id, "name": rule.name, "metric": rule.metric, "threshold": rule.threshold,
                 "service": rule.service},
        "value": metric_value(incident, rule.metric),
        "incident": {
            "incident_id": iid,
            "@timestamp": incident.get("@timestamp"),
            "anomaly_score": incident.get("anomaly_score"),
            "window": incident.get("window"),
            "root_cause": {k: v for k, v in (incident.get("root_cause") or {}).items() if k != "lines"},
            "chain": [{"template": e.get("template"), "service": (e.get("service") or {}).get("name"),
                       "score": e.get("score")} for e in (incident.get("chain") or [])[:10]],
            "recommendations": [
                {"recommendation_id": r.get("recommendation_id"), "action": r.get("action"),
                 "target": r.get("target"), "confidence": r.get("confidence"),
                 "safety": (r.get("safety") or {}).get("verdict"), "status": r.get("status")}
                for r in incident.get("recommendations") or []
            ],
        },
        "url": f"{base_url.rstrip('/')}/incidents/{iid}" if base_url and iid else None,
    }


# -- notifiers ----------------------------------------------------------------------------------------------------

def send_webhook(url: str, body: dict[str, Any], timeout: float = NOTIFY_TIMEOUT_S) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"llmid/{__version__}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked in check_channel
            resp.read(65536)
    except urllib.error.HTTPError as e:
        raise OSError(f"webhook {url} answered {e.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise OSError(f"webhook {url} unreachable ({reason})") from None


def email_text(body: dict[str, Any]) -> tuple[str, str]:
    inc = body["incident"]
    rc = inc["root_cause"]
    svc = (rc.get("service") or {}).get("name") or "?"
    subject = (f"[LLM-ID]{' TEST' if body['test'] else ''} {body['rule']['name']}: root cause in {svc}, "
               f"{body['rule']['metric']} {body['value']:.2f}")
    lines = [
        f"Rule: {body['rule']['name']} ({body['rule']['metric']} >= {body['rule']['threshold']})",
        f"Incident: {inc['incident_id']}  at {inc.get('@timestamp')}  anomaly {inc.get('anomaly_score')}",
        f"Root cause: [{svc}] {rc.get('template')}  (score {rc.get('score')})",
        "",
        "Fault chain:",
        *[f"  {i + 1}. [{e['service']}] {e['template']}" for i, e in enumerate(inc["chain"])],
        "",
        "Recommended:",
        *[f"  {r['action']} on {r['target']}  confidence {(r['confidence'] or {}).get('mean')}  "
          f"safety {r['safety']}  status {r['status']}" for r in inc["recommendations"]],
    ]
    if body.get("url"):
        lines += ["", body["url"]]
    return subject, "\n".join(lines) + "\n"


def send_email(ch: dict[str, Any], body: dict[str, Any], timeout: float = NOTIFY_TIMEOUT_S) -> None:
    p = urlsplit(ch["smtp"])
    subject, text = email_text(body)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = ch["from"]
    msg["To"] = ", ".join(ch["to"])
    msg.set_content(text)
    host = p.hostname or "localhost"
    try:
        if p.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, p.port or 465, timeout=timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, p.port or 25, timeout=timeout)
        with client:
            if p.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if p.username:
                client.login(unquote(p.username), unquote(p.password or ""))
            client.send_message(msg)
    except (smtplib.SMTPException, OSError) as e:
        raise OSError(f"e-mail via {host}:{p.port or 25} failed ({e})") from None


def notify(rule: AlertRule, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Send on every channel; one failing channel does not stop the others. Returns one result per channel."""
    results = []
    for ch in rule.channels:
        try:
            if ch["type"] == "webhook":
                send_webhook(ch["url"], body)
            else:
                send_email(ch, body)
            results.append({"channel": ch["type"], "ok": True})
        except OSError as e:
            results.append({"channel": ch["type"], "ok": False, "error": str(e)})
    return results


# -- evaluation -----------------------------------------------------------------------------------------------------

def evaluate(store: Store, *, send: bool = True, base_url: str | None = None,
             incidents: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Check every enabled rule against the incidents (default: the highest-scoring MAX_INCIDENTS_PER_CHECK);
    returns one firing per new (rule, incident) match: `status` is sent, failed, suppressed or muted
    (`send` False: recorded, nothing sent)."""
    rules = [AlertRule.from_doc(d) for d in list_rules(store)]
    rules = [r for r in rules if r.enabled]
    if not rules:
        return []
    if incidents is None:
        incidents = store.incidents(limit=MAX_INCIDENTS_PER_CHECK).hits
    firings = []
    for rule in rules:
        for inc in incidents:
            if not matches(rule, inc):
                continue
            iid = inc.get("incident_id") or inc.get("_id")
            seen_id = f"{rule.rule_id}:{iid}"
            if store.get_object(SEEN_KIND, seen_id) is not None:
                continue
            if not store.claim_object(SEEN_KIND, seen_id, {"at": iso(time.time())}, float("inf")):
                continue  # another process claimed it between our read and our claim
            service = root_service(inc) or "-"
            firing: dict[str, Any] = {"rule_id": rule.rule_id, "incident_id": iid, "service": service,
                                      "value": metric_value(inc, rule.metric), "at": iso(time.time())}
            if not store.claim_object(COOLDOWN_KIND, f"{rule.rule_id}:{service}", {"incident_id": iid},
                                      rule.cooldown_s):
                firing["status"] = "suppressed"
            elif not send:
                firing["status"] = "muted"
            else:
                results = notify(rule, payload(rule, inc, base_url))
                firing["results"] = results
                firing["status"] = "sent" if all(r["ok"] for r in results) else "failed"
            store.put_object(SEEN_KIND, seen_id, firing)
            store.record_audit("alerts", f"alert.{firing['status']}", iid, firing)
            firings.append(firing)
    return firings


SAMPLE_INCIDENT: dict[str, Any] = {
    "incident_id": "test-incident",
    "@timestamp": None,
    "anomaly_score": 1.0,
    "window": None,
    "root_cause": {"template": "test notification from LLM-ID", "score": 1.0, "service": {"name": "llmid"}},
    "chain": [],
    "recommendations": [],
}


def send_test(store: Store, rule_id: str, base_url: str | None = None, send: bool = True) -> list[dict[str, Any]]:
    """Send a test notification for a rule: about the highest-scoring incident it matches, else a sample one.
    Nothing is recorded as seen, so the real alert still fires later."""
    doc = get_rule(store, rule_id)
    if doc is None:
        raise ConfigError(f"No alert rule {rule_id!r}.")
    rule = AlertRule.from_doc(doc)
    found = [i for i in store.incidents(limit=100).hits if matches(rule, i)]
    body = payload(rule, found[0] if found else SAMPLE_INCIDENT, base_url, test=True)
    if not send:
        return [{"channel": c["type"], "ok": False, "error": "notifications are disabled"} for c in rule.channels]
    return notify(rule, body)
