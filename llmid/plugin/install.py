"""`llmid install` / `llmid uninstall`: set a cluster up for LLM-ID in one command, idempotently.

What is installed (each a *resource* with a fixed name, so a second run finds it):
component + index templates (llmid/store/index_templates.py), the retention policy (ISM on OpenSearch, ILM on
Elasticsearch), the ingest pipelines (llmid/ingest_pipelines/cluster_pipelines.py), the alert monitor (OpenSearch
Alerting) or rule (Kibana), and, given a Dashboards/Kibana URL, the saved objects (llmid/kibana_vis) through the
saved-objects import API.

Each resource carries a digest of its body (`_meta`, `version`, a description or tags), so a run compares before it
writes: `created`, `updated` or `unchanged` — a second run changes nothing. A feature the cluster lacks (no ISM or
Alerting plugin) is reported as `skipped` with the reason. `uninstall` deletes exactly these resources (data
indices only with --delete-data). `--dry-run` prints every write request of the plan and contacts nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmid.errors import ConfigError, StoreError
from llmid.ingest_pipelines import cluster_pipelines
from llmid.kibana_vis import queries, saved_objects
from llmid.plugin import monitors
from llmid.store import index_templates as it
from llmid.store.cluster import ClusterStore, error_reason

MONITORS_STATE_KEY = "install.monitors"
"""Where install remembers the ids of the monitors it created (OpenSearch Alerting assigns them)."""


def digest_of(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(slots=True)
class Request:
    """One HTTP request of the plan (what --dry-run prints)."""

    target: str
    """"cluster" or "dashboards"."""
    method: str
    path: str
    body: Any = None

    def show(self) -> str:
        text = f"{self.method} {self.target}:{self.path}"
        if self.body is not None:
            body = self.body if isinstance(self.body, str) else json.dumps(self.body, indent=2, ensure_ascii=False)
            text += "\n" + body
        return text


@dataclass(slots=True)
class Resource:
    kind: str
    name: str
    write: list[Request]
    delete: list[Request]
    current: Callable[[Installer], str | None] | None = None
    """The digest of what is installed now ("" when present without one, None when absent)."""
    digest: str = ""
    requires: str | None = None
    """A capability the cluster must have: ism, ilm, alerting, dashboards, kibana-alerting."""


@dataclass(slots=True)
class Outcome:
    kind: str
    name: str
    result: str
    """created, updated, unchanged, skipped, deleted, absent."""
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "result": self.result, "detail": self.detail}


@dataclass
class Dashboards:
    """A Kibana or OpenSearch Dashboards server, reached with urllib (credentials from the environment)."""

    url: str
    flavor: str
    """osd or kibana."""
    timeout_s: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.headers = {"osd-xsrf" if self.flavor == "osd" else "kbn-xsrf": "true"}
        user = os.environ.get("LLMID_DASHBOARDS_USERNAME") or os.environ.get("LLMID_STORE_USERNAME")
        password = os.environ.get("LLMID_DASHBOARDS_PASSWORD") or os.environ.get("LLMID_STORE_PASSWORD")
        api_key = os.environ.get("LLMID_DASHBOARDS_API_KEY")
        if api_key:
            self.headers["Authorization"] = f"ApiKey {api_key}"
        elif user:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        ca = os.environ.get("LLMID_DASHBOARDS_CA_CERTS") or os.environ.get("LLMID_STORE_CA_CERTS")
        self.context = ssl.create_default_context(cafile=ca) if ca else None

    def request(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()) -> tuple[int, Any]:
        headers = dict(self.headers)
        data = None
        if isinstance(body, tuple):  # (content type, bytes): the multipart import
            headers["Content-Type"], data = body
        elif body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        name = "OpenSearch Dashboards" if self.flavor == "osd" else "Kibana"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=self.context) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            if e.code in ok:
                return e.code, parsed
            if e.code == 401:
                raise StoreError(f"{name} at {self.url} refused the credentials (401); set "
                                 "LLMID_DASHBOARDS_USERNAME and LLMID_DASHBOARDS_PASSWORD (or the LLMID_STORE_ ones)."
                                 ) from None
            msg = parsed.get("message") if isinstance(parsed, dict) else parsed
            raise StoreError(f"{name} at {self.url} answered {e.code} to {method} {path}: "
                             f"{' '.join(str(msg).split())[:200]}.") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise StoreError(f"Cannot reach {name} at {self.url}: {reason}.") from None


def _multipart(ndjson: str) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"llmid.ndjson\"\r\n"
            f"Content-Type: application/ndjson\r\n\r\n{ndjson}\r\n--{boundary}--\r\n").encode()
    return f"multipart/form-data; boundary={boundary}", body


class Installer:
    """Plans, applies and removes LLM-ID's resources in one cluster (and its Dashboards/Kibana)."""

    def __init__(self, engine: str, prefix: str = it.DEFAULT_PREFIX, *, store: ClusterStore | None = None,
                 dashboards: Dashboards | None = None, retention_days: int = it.DEFAULT_RETENTION_DAYS,
                 threshold: float = monitors.DEFAULT_THRESHOLD, channel_id: str | None = None,
                 interval: str = queries.DEFAULT_INTERVAL) -> None:
        self.engine = engine
        self.prefix = prefix
        self.store = store
        self.dashboards = dashboards
        self.retention_days = retention_days
        self.threshold = threshold
        self.channel_id = channel_id
        self.interval = interval
        self._caps: dict[str, str | None] = {}
        self._seq: dict[str, tuple[Any, Any]] = {}

    # ------------------------------------------------------------------ plan
    def resources(self) -> list[Resource]:
        """Every resource, in the order they are created (and reversed for removal)."""
        out: list[Resource] = []
        p = self.prefix
        for name, body in it.component_templates(p, self.engine).items():
            out.append(self._template("component template", "_component_template", "component_templates",
                                      "component_template", name, body))
        for name, body in it.index_templates(p, self.engine).items():
            out.append(self._template("index template", "_index_template", "index_templates", "index_template",
                                      name, body))
        out.append(self._policy())
        for pid, body in cluster_pipelines.pipelines(p).items():
            d = digest_of(body)
            body = {**body, "version": int(d[:7], 16)}
            out.append(Resource("ingest pipeline", pid, [Request("cluster", "PUT", f"/_ingest/pipeline/{pid}", body)],
                                [Request("cluster", "DELETE", f"/_ingest/pipeline/{pid}")],
                                current=lambda inst, pid=pid: inst._pipeline_version(pid), digest=str(body["version"])))
        out.append(self._monitor())
        if self.dashboards is not None:
            out.extend(self._saved_objects())
        return out

    def _template(self, kind: str, api: str, key: str, inner: str, name: str, body: dict[str, Any]) -> Resource:
        d = digest_of(body)
        body = {**body, "_meta": {**body.get("_meta", {}), "llmid_digest": d}}

        def current(inst: Installer) -> str | None:
            res = inst._get(f"/{api}/{name}")
            if res is None:
                return None
            items = res.get(key) or []
            return str(((items[0].get(inner) or {}).get("_meta") or {}).get("llmid_digest", "")) if items else None

        return Resource(kind, name, [Request("cluster", "PUT", f"/{api}/{name}", body)],
                        [Request("cluster", "DELETE", f"/{api}/{name}")], current=current, digest=d)

    def _policy(self) -> Resource:
        pid = it.policy_id(self.prefix)
        if self.engine == "opensearch":
            body = it.ism_policy(self.prefix, self.retention_days)
            d = digest_of(body)
            body["policy"]["description"] += f" [llmid:{d}]"
            return Resource("ISM policy", pid, [Request("cluster", "PUT", f"/_plugins/_ism/policies/{pid}", body)],
                            [Request("cluster", "DELETE", f"/_plugins/_ism/policies/{pid}")],
                            current=lambda inst: inst._ism_digest(pid), digest=d, requires="ism")
        body = it.ilm_policy(self.retention_days)
        d = digest_of(body)
        body["policy"]["_meta"]["llmid_digest"] = d
        return Resource("ILM policy", pid, [Request("cluster", "PUT", f"/_ilm/policy/{pid}", body)],
                        [Request("cluster", "DELETE", f"/_ilm/policy/{pid}")],
                        current=lambda inst: inst._ilm_digest(pid), digest=d, requires="ilm")

    def _monitor(self) -> Resource:
        name = monitors.monitor_name(self.threshold)
        if self.engine == "opensearch":
            body = monitors.opensearch_monitor(self.prefix, self.threshold, self.channel_id)
            d = digest_of(body)
            return Resource("alert monitor", name,
                            [Request("cluster", "POST", "/_plugins/_alerting/monitors", body)],
                            [Request("cluster", "DELETE", "/_plugins/_alerting/monitors/{id}")],
                            current=lambda inst: inst._monitor_digest(name), digest=d, requires="alerting")
        rid = monitors.kibana_rule_id(self.threshold)
        body = monitors.kibana_rule(self.prefix, self.threshold, self.channel_id)
        d = digest_of(body)
        body["tags"] = [*body["tags"], f"llmid:{d}"]
        return Resource("Kibana alert rule", rid, [Request("dashboards", "POST", f"/api/alerting/rule/{rid}", body)],
                        [Request("dashboards", "DELETE", f"/api/alerting/rule/{rid}")],
                        current=lambda inst: inst._rule_digest(rid), digest=d, requires="kibana-alerting")

    def _saved_objects(self) -> list[Resource]:
        assert self.dashboards is not None
        out = []
        for obj in saved_objects.saved_objects(self.dashboards.flavor, self.prefix, self.interval):
            ndjson = saved_objects.to_ndjson([obj])
            path = f"/api/saved_objects/{obj['type']}/{obj['id']}"
            out.append(Resource(
                f"saved {obj['type']}", obj["id"],
                [Request("dashboards", "POST", "/api/saved_objects/_import?overwrite=true", ndjson)],
                [Request("dashboards", "DELETE", path)],
                current=lambda inst, path=path: inst._saved_digest(path),
                digest=saved_objects.digest(obj), requires="dashboards"))
        return out

    # ------------------------------------------------------------------ reads
    def _cluster(self) -> ClusterStore:
        if self.store is None:
            raise ConfigError("No cluster to install into.")
        return self.store

    def _get(self, path: str) -> Any | None:
        res = self._cluster()._call("GET", path, action="read the set-up of", ok=(404,))
        return None if res.get("status") == 404 else res

    def _pipeline_version(self, pid: str) -> str | None:
        res = self._get(f"/_ingest/pipeline/{pid}")
        return None if res is None else str((res.get(pid) or {}).get("version", ""))

    def _ism_digest(self, pid: str) -> str | None:
        res = self._get(f"/_plugins/_ism/policies/{pid}")
        if res is None:
            return None
        self._seq[pid] = (res.get("_seq_no"), res.get("_primary_term"))
        desc = str((res.get("policy") or {}).get("description", ""))
        return desc.rsplit("[llmid:", 1)[1].rstrip("]") if "[llmid:" in desc else ""

    def _ilm_digest(self, pid: str) -> str | None:
        res = self._get(f"/_ilm/policy/{pid}")
        if res is None:
            return None
        return str((((res.get(pid) or {}).get("policy") or {}).get("_meta") or {}).get("llmid_digest", ""))

    def _monitor_digest(self, name: str) -> str | None:
        known = (self._cluster().load_state(MONITORS_STATE_KEY) or {}).get(name)
        if not known:
            return None
        res = self._get(f"/_plugins/_alerting/monitors/{known['id']}")
        return None if res is None else str(known.get("digest", ""))

    def _rule_digest(self, rid: str) -> str | None:
        assert self.dashboards is not None
        status, res = self.dashboards.request("GET", f"/api/alerting/rule/{rid}", ok=(404,))
        if status == 404:
            return None
        tags = [t for t in (res or {}).get("tags", []) if str(t).startswith("llmid:")]
        return tags[0].split(":", 1)[1] if tags else ""

    def _saved_digest(self, path: str) -> str | None:
        assert self.dashboards is not None
        status, res = self.dashboards.request("GET", path, ok=(404,))
        return None if status == 404 else (saved_objects.stored_digest(res or {}) or "")

    def capability(self, name: str) -> str | None:
        """None when the cluster has the feature, else the reason it is skipped."""
        if name in self._caps:
            return self._caps[name]
        reason: str | None = None
        if name == "dashboards":
            reason = None if self.dashboards is not None else "no --dashboards-url / --kibana-url given"
        elif name == "kibana-alerting":
            reason = None if self.dashboards is not None else "no --kibana-url given (Kibana rules live in Kibana)"
        else:
            probe = {"ism": ("GET", "/_plugins/_ism/policies"), "ilm": ("GET", "/_ilm/status"),
                     "alerting": ("GET", "/_plugins/_alerting/monitors/_search")}[name]
            res = self._cluster()._call(*probe, action="probe", ok=(400, 404, 405))
            text = json.dumps(res)
            if res.get("status") == 400 and "no handler found" in text:
                plugin = {"ism": "Index State Management", "alerting": "Alerting", "ilm": "ILM"}[name]
                reason = f"the cluster has no {plugin} plugin"
        self._caps[name] = reason
        return reason

    # ------------------------------------------------------------------ apply
    def install(self, targets: tuple[str, ...] = ("cluster", "dashboards")) -> list[Outcome]:
        """Create or update every resource whose installed digest differs; report each."""
        self._seq = {}
        out = []
        for r in self.resources():
            if r.write[0].target not in targets:
                continue
            if r.requires and (why := self.capability(r.requires)):
                out.append(Outcome(r.kind, r.name, "skipped", why))
                continue
            have = r.current(self) if r.current else None
            if have == r.digest:
                out.append(Outcome(r.kind, r.name, "unchanged"))
                continue
            self._apply(r, update=have is not None)
            out.append(Outcome(r.kind, r.name, "created" if have is None else "updated"))
        if self.store is not None and "cluster" in targets:
            self.store.check_conflicts()
        return out

    def _apply(self, r: Resource, update: bool) -> None:
        for req in r.write:
            if req.target == "dashboards":
                assert self.dashboards is not None
                if req.path.startswith("/api/alerting/rule/") and update:
                    body = {k: v for k, v in req.body.items() if k not in ("rule_type_id", "consumer")}
                    self.dashboards.request("PUT", req.path, body)
                    continue
                body = _multipart(req.body) if req.path.startswith("/api/saved_objects/_import") else req.body
                status, res = self.dashboards.request(req.method, req.path, body)
                if isinstance(res, dict) and res.get("success") is False:
                    errors = res.get("errors") or []
                    raise StoreError(f"The saved-objects import of {r.name} failed: "
                                     f"{json.dumps(errors[:1])[:300]}.")
                continue
            if r.kind == "ISM policy" and update and r.name in self._seq:
                seq, term = self._seq[r.name]
                self._cluster()._call("PUT", req.path, body=req.body, action="install into",
                                      params={"if_seq_no": seq, "if_primary_term": term})
            elif r.kind == "alert monitor":
                self._put_monitor(r, req.body)
            else:
                self._cluster()._call(req.method, req.path, body=req.body, action="install into")

    def _put_monitor(self, r: Resource, body: dict[str, Any]) -> None:
        st = self._cluster()
        known = st.load_state(MONITORS_STATE_KEY) or {}
        prev = known.get(r.name)
        if prev:
            res = st._call("PUT", f"/_plugins/_alerting/monitors/{prev['id']}", body=body, action="install into",
                           ok=(404,))
            if res.get("status") != 404:
                known[r.name] = {"id": prev["id"], "digest": r.digest}
                st.save_state(MONITORS_STATE_KEY, known)
                return
        res = st._call("POST", "/_plugins/_alerting/monitors", body=body, action="install into")
        known[r.name] = {"id": res.get("_id"), "digest": r.digest}
        st.save_state(MONITORS_STATE_KEY, known)

    def uninstall(self, delete_data: bool = False, targets: tuple[str, ...] = ("cluster", "dashboards")) -> list[
            Outcome]:
        """Delete exactly what install creates (index templates before the components they use)."""
        out = []
        resources = [r for r in self.resources() if r.write[0].target in targets]
        order = [r for r in resources if r.kind == "index template"]
        order += [r for r in reversed(resources) if r.kind != "index template"]
        for r in order:
            if r.requires and (why := self.capability(r.requires)):
                out.append(Outcome(r.kind, r.name, "skipped", why))
                continue
            out.append(Outcome(r.kind, r.name, "deleted" if self._remove(r) else "absent"))
        if delete_data:
            st = self._cluster()
            st._call("DELETE", f"/{self.prefix}*", params={"expand_wildcards": "open,closed"}, action="delete data in",
                     ok=(404,))
            out.append(Outcome("data", f"{self.prefix}*", "deleted"))
        return out

    def _remove(self, r: Resource) -> bool:
        req = r.delete[0]
        if req.target == "dashboards":
            assert self.dashboards is not None
            status, _ = self.dashboards.request("DELETE", req.path, ok=(404,))
            return status != 404
        st = self._cluster()
        path = req.path
        if r.kind == "alert monitor":
            known = st.load_state(MONITORS_STATE_KEY) or {}
            prev = known.pop(r.name, None)
            if not prev:
                return False
            st.save_state(MONITORS_STATE_KEY, known)
            path = path.replace("{id}", str(prev["id"]))
        res = st._call("DELETE", path, action="uninstall from", ok=(404,))
        if res.get("status") == 404:
            return False
        if r.kind == "index template" and res.get("status") == 400:
            raise StoreError(f"Cannot delete {r.kind} {r.name}: {error_reason(res)}.")
        return True

    def plan(self) -> list[Request]:
        """Every write request of a first install (what --dry-run prints); contacts nothing."""
        return [req for r in self.resources() for req in r.write]
