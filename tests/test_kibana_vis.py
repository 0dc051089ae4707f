"""Saved visualizations and alert monitors against a real OpenSearch node: every dataset query of the dashboard
and the monitor's query run over fixture data written by the cluster store and return exactly the expected
buckets / hits; the alert message renders (the node's mustache) with incident, root cause and recommendation;
every Vega-Lite spec renders in headless Chromium (Debian's) with the vendored vega-embed over the node's
responses, to a non-blank canvas and a screenshot; the NDJSON saved objects are well formed for OSD and Kibana.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearch_node import drop_prefix, fresh_prefix, http, node_url

from llmid.documents import Confidence, Incident, LogRecord, RankedEvent, Recommendation, Template, iso
from llmid.kibana_vis import queries, saved_objects, specs
from llmid.plugin import monitors
from llmid.store.base import Batch
from llmid.store.opensearch import OpenSearchStore

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "llmid" / "plugin" / "webapp" / "static" / "vendor"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
T0 = 1_700_000_040.0  # a minute boundary
INTERVAL = "60s"
SERVICES = ("api", "db", "auth")
TEMPLATES = {"t1": "user <*> logged in", "t2": "disk <*> is full", "t3": "connection to <*> refused"}


def fixture_batch() -> Batch:
    """180 records over 3 minutes, 3 services, 3 templates; 4 incidents; 4 recommendations."""
    records = []
    for i in range(180):
        tid = ("t1", "t1", "t2", "t3")[i % 4]
        svc = SERVICES[i % 3]
        records.append(LogRecord(
            line_id=i + 1, source="fixture.log", offset=i * 80, message=f"line {i} {TEMPLATES[tid]}",
            content=TEMPLATES[tid], timestamp=T0 + i, level=("INFO", "WARN", "ERROR")[i % 3 if i % 5 else 2],
            service=svc, host="h1", template_id=tid, template=TEMPLATES[tid],
            anomaly_score=round((i % 10) / 10 + (0.05 if svc == "db" else 0.0), 2),
            root_cause_score=0.0))
    templates = [Template(t, TEMPLATES[t], service="api") for t in TEMPLATES]
    incidents, recs = [], []
    for k, (svc, tid, score, at) in enumerate([("db", "t2", 0.95, 30), ("db", "t3", 0.85, 95),
                                               ("auth", "t3", 0.5, 100), ("api", "t1", 0.3, 170)]):
        ev = RankedEvent(tid, TEMPLATES[tid], score, [at + 1], service=svc, host="h1", level="ERROR",
                         first_seen=T0 + at)
        iid = f"inc{k}"
        incidents.append(Incident(iid, "fixture.log", T0 + at - 10, T0 + at + 50, at, at + 5, 0.6 + k / 10,
                                  ranking=[ev], chain=[ev]))
        recs.append(Recommendation(f"rec{k}", iid, ("free_disk", "restart_service", "scale_out",
                                                    "escalate_to_human")[k], svc,
                                   Confidence(3, 1, 0.9 - k / 10, 0.5 - k / 10, 0.99 - k / 10),
                                   safety_verdict="needs_approval"))
    return Batch(records=records, templates=templates, incidents=incidents, recommendations=recs)


@pytest.fixture(scope="module")
def node() -> Iterator[dict[str, Any]]:
    base = node_url()
    prefix = fresh_prefix("v")
    batch = fixture_batch()
    with OpenSearchStore.from_url(f"opensearch+{base}/?prefix={prefix}") as st:
        st.write(batch)
    yield {"base": base, "prefix": prefix, "batch": batch}
    drop_prefix(base, prefix)


def run_query(node: dict[str, Any], name: str) -> dict[str, Any]:
    q = queries.dataset_queries(INTERVAL)[name]
    status, res = http("POST", f"{node['base']}/{queries.index_of(q.kind, node['prefix'])}/_search",
                       queries.request_body(q))
    assert status == 200, res
    return res


def rows(res: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The response in the dataset's shape (what the spec's Vega-Lite transforms compute, written out here)."""
    q = queries.dataset_queries(INTERVAL)[name]
    if q.property == "hits.hits":
        return [h["_source"] for h in res["hits"]["hits"]]
    outer = res["aggregations"][q.property.split(".")[1]]["buckets"]
    if "s" not in (outer[0] if outer else {}):
        return outer
    return [{"t": b["key"], **sub} for b in outer for sub in b["s"]["buckets"]]


def minute(ts: float) -> int:
    return int(ts // 60 * 60 * 1000)


# ---------------------------------------------------------------- every dataset query, exact results


def test_time_bucketed_datasets_match_the_fixture(node: dict[str, Any]) -> None:
    b: Batch = node["batch"]
    want_levels = Counter((minute(r.timestamp), r.level) for r in b.records)  # type: ignore[arg-type]
    got = {(x["t"], x["key"]): x["doc_count"] for x in rows(run_query(node, "records_over_time"), "records_over_time")}
    assert got == dict(want_levels)

    want_tpl = Counter((minute(r.timestamp), r.template) for r in b.records)  # type: ignore[arg-type]
    got = {(x["t"], x["key"]): x["doc_count"] for x in rows(run_query(node, "template_volume"), "template_volume")}
    assert got == dict(want_tpl)

    want_heat: dict[tuple[int, str], float] = defaultdict(float)
    for r in b.records:
        k = (minute(r.timestamp), r.service)  # type: ignore[arg-type]
        want_heat[k] = max(want_heat[k], r.anomaly_score)
    got_heat = {(x["t"], x["key"]): round(x["a"]["value"], 4)
                for x in rows(run_query(node, "anomaly_heatmap"), "anomaly_heatmap")}
    assert got_heat == {k: round(v, 4) for k, v in want_heat.items()}

    want_inc = Counter((minute(i.ranking[0].first_seen), i.ranking[0].service) for i in b.incidents)  # type: ignore
    got = {(x["t"], x["key"]): x["doc_count"]
           for x in rows(run_query(node, "incidents_over_time"), "incidents_over_time")}
    assert got == dict(want_inc)


def test_incident_and_template_datasets_match_the_fixture(node: dict[str, Any]) -> None:
    b: Batch = node["batch"]
    got = [(x["key"], x["doc_count"]) for x in rows(run_query(node, "root_cause_services"), "root_cause_services")]
    assert got == [("db", 2), ("api", 1), ("auth", 1)]

    got_t = [(x["key"], x["doc_count"], x["m"]["value"])
             for x in rows(run_query(node, "root_cause_templates"), "root_cause_templates")]
    assert [(k, n) for k, n, _ in got_t] == [(TEMPLATES["t3"], 2), (TEMPLATES["t2"], 1), (TEMPLATES["t1"], 1)]
    assert dict((k, round(m, 2)) for k, _, m in got_t)[TEMPLATES["t3"]] == 0.85

    inc = rows(run_query(node, "incidents"), "incidents")
    assert [x["incident_id"] for x in inc] == ["inc0", "inc1", "inc2", "inc3"]  # by @timestamp
    assert [x["root_cause"]["score"] for x in inc] == [0.95, 0.85, 0.5, 0.3]

    tops = rows(run_query(node, "top_templates"), "top_templates")
    counts = Counter(r.template_id for r in b.records)
    assert [(x["template_id"], x["count"]) for x in tops] == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    recs = rows(run_query(node, "recommendations"), "recommendations")
    assert [x["recommendation_id"] for x in recs] == ["rec0", "rec1", "rec2", "rec3"]  # by confidence
    assert recs[0]["confidence"]["mean"] == 0.9 and recs[0]["action"] == "free_disk"


# ---------------------------------------------------------------- alerting: the monitor's query and message


def _period_end(node: dict[str, Any]) -> int:
    return int((T0 + 180) * 1000)


def test_monitor_query_fires_exactly_on_scores_above_the_threshold(node: dict[str, Any]) -> None:
    """The OpenSearch monitor's query (mustache period_end, as Alerting renders it) through the node's search
    template API; the trigger condition through the Painless execute API; the message through _render/template."""
    mon = monitors.opensearch_monitor(node["prefix"], 0.8, channel_id="chan")
    search = mon["inputs"][0]["search"]
    index = search["indices"][0]
    status, res = http("POST", f"{node['base']}/{index}/_search/template",
                       {"source": json.dumps(search["query"]), "params": {"period_end": _period_end(node)}})
    assert status == 200, res
    hits = res["hits"]["hits"]
    assert [h["_source"]["incident_id"] for h in hits] == ["inc0", "inc1"]
    assert res["hits"]["total"]["value"] == 2

    cond = mon["triggers"][0]["query_level_trigger"]["condition"]["script"]["source"].replace("ctx.", "params.ctx.")
    for results, expected in ((res, True), ({"hits": {"total": {"value": 0}, "hits": []}}, False)):
        status, out = http("POST", f"{node['base']}/_scripts/painless/_execute",
                           {"script": {"source": cond, "params": {"ctx": {"results": [results]}}}})
        assert status == 200, out
        assert out["result"] == str(expected).lower()

    message = mon["triggers"][0]["query_level_trigger"]["actions"][0]["message_template"]["source"]
    status, out = http("POST", f"{node['base']}/_render/template",
                       {"source": json.dumps({"m": message}), "params": {"ctx": {"results": [res]}}})
    assert status == 200, out
    text = out["template_output"]["m"]
    assert "2 incident(s) with a root-cause score at or above 0.8" in text
    assert "Incident inc0" in text and "root cause [db] disk <*> is full (score 0.95)" in text
    assert "recommended: free_disk on db (confidence 0.9, needs_approval)" in text
    assert "inc2" not in text

    # a quieter window: nothing fires
    status, res = http("POST", f"{node['base']}/{index}/_search/template",
                       {"source": json.dumps(search["query"]), "params": {"period_end": int((T0 + 2000) * 1000)}})
    assert res["hits"]["total"]["value"] == 0


def test_kibana_rule_query_matches_the_same_incidents(node: dict[str, Any]) -> None:
    rule = monitors.kibana_rule(node["prefix"], 0.8, connector_id="c1")
    query = json.loads(rule["params"]["esQuery"])
    status, res = http("POST", f"{node['base']}/{rule['params']['index'][0]}/_search",
                       {**query, "sort": [{"root_cause.score": "desc"}]})
    assert status == 200
    assert [h["_source"]["incident_id"] for h in res["hits"]["hits"]] == ["inc0", "inc1"]
    assert rule["rule_type_id"] == ".es-query" and rule["params"]["timeField"] == "@timestamp"
    assert "{{#context.hits}}" in rule["actions"][0]["params"]["message"]


# ---------------------------------------------------------------- rendering in Chromium


PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="{vendor}/vega.min.js"></script><script src="{vendor}/vega-lite.min.js"></script>
<script src="{vendor}/vega-embed.min.js"></script>
<style>body{{font-family:sans-serif;width:1100px}} .chart{{width:1000px;margin:8px}}</style></head><body>
{divs}
<pre id="result">pending</pre>
<script>
const specs = {specs};
const fields = {fields};
const out = {{}};
Promise.all(Object.keys(specs).map(function (name) {{
  return vegaEmbed('#' + name, specs[name], {{renderer: 'canvas', actions: false}}).then(function (r) {{
    const c = document.querySelector('#' + name + ' canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 0; i < d.length; i += 4) {{
      if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200)) ink++;
    }}
    // the first dataset of the compiled view whose rows carry every field the named dataset promises
    let rows = -1;
    const names = ['source_0'].concat([0, 1, 2, 3, 4, 5, 6, 7].map(function (i) {{ return 'data_' + i; }}));
    for (const key of names) {{
      let vals = null;
      try {{ vals = r.view.data(key); }} catch (e) {{ continue; }}
      if (vals && vals.length && fields[name].every(function (f) {{ return f in vals[0]; }})) {{
        rows = vals.length; break;
      }}
    }}
    out[name] = {{ink: ink, width: c.width, height: c.height, rows: rows}};
  }}).catch(function (e) {{ out[name] = {{error: String(e)}}; }});
}})).then(function () {{ document.getElementById('result').textContent = JSON.stringify(out); }});
</script></body></html>"""


def _chromium(args: list[str], page: Path) -> str:
    profile = tempfile.mkdtemp(prefix="llmid-chromium-")
    try:
        p = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--allow-file-access-from-files", f"--user-data-dir={profile}",
                            "--virtual-time-budget=20000", "--window-size=1100,4200", *args, page.as_uri()],
                           capture_output=True, text=True, timeout=120)
        return p.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="Debian's chromium is missing")
def test_every_spec_renders_over_the_nodes_results(node: dict[str, Any], tmp_path: Path) -> None:
    """The Kibana/OSD form of each spec (cluster query + transforms), its data inlined from the real node's
    response to that very query, rendered by vega-embed in headless Chromium: non-blank, with every row."""
    queries_ = queries.dataset_queries(INTERVAL)
    inlined = {}
    expected_rows = {}
    for name in specs.CLUSTER_DASHBOARD:
        ds = next(iter(specs.dataset_names(specs.SPECS[name])))
        res = run_query(node, ds)
        inlined[name] = queries.cluster_spec(name, node["prefix"], INTERVAL, values=res)
        expected_rows[name] = len(rows(res, ds))
        assert inlined[name]["transform"][: len(queries_[ds].transform)] == queries_[ds].transform
    fields = {n: list(specs.DATASETS[next(iter(specs.dataset_names(specs.SPECS[n])))]["fields"])
              for n in inlined}
    divs = "\n".join(f'<div class="chart" id="{n}"></div>' for n in inlined)
    page = tmp_path / "dashboard.html"
    page.write_text(PAGE.format(vendor=VENDOR.as_uri(), divs=divs, specs=json.dumps(inlined),
                                 fields=json.dumps(fields)), encoding="utf-8")
    dom = _chromium(["--dump-dom"], page)
    m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert m, dom[-2000:]
    result = json.loads(html.unescape(m.group(1)))
    for name in specs.CLUSTER_DASHBOARD:
        r = result.get(name, {})
        assert "error" not in r, (name, r)
        assert r["ink"] > 500, (name, r)  # drawn marks, axes and labels: not a blank canvas
        assert r["rows"] == expected_rows[name], (name, r)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "kibana-vis-dashboard.png"
    _chromium([f"--screenshot={shot}"], page)
    assert shot.exists() and shot.stat().st_size > 20_000


# ---------------------------------------------------------------- saved objects


@pytest.mark.parametrize("flavor", saved_objects.FLAVORS)
def test_saved_objects_are_well_formed(flavor: str, tmp_path: Path) -> None:
    objs = saved_objects.saved_objects(flavor, "llmid-", "1h")
    types = Counter(o["type"] for o in objs)
    assert types == {"index-pattern": 4, "search": 1, "visualization": len(specs.CLUSTER_DASHBOARD), "dashboard": 1}
    ids = {(o["type"], o["id"]) for o in objs}
    for o in objs:  # every reference points at an object of the export, listed before it
        for ref in o.get("references", []):
            assert (ref["type"], ref["id"]) in ids
        assert saved_objects.stored_digest(o) == saved_objects.digest(o)
    search = next(o for o in objs if o["type"] == "search")
    assert all(c in search["attributes"]["columns"] for c in ("llmid.template", "llmid.root_cause_score"))
    for o in objs:
        if o["type"] == "visualization":
            vis = json.loads(o["attributes"]["visState"])
            spec = json.loads(vis["params"]["spec"])
            assert vis["type"] == "vega" and spec["$schema"].endswith("vega-lite/v5.json")
            assert "url" in spec["data"] and spec["data"]["url"]["index"].startswith("llmid-")
    dash = next(o for o in objs if o["type"] == "dashboard")
    assert len(json.loads(dash["attributes"]["panelsJSON"])) == len(specs.CLUSTER_DASHBOARD) + 1
    if flavor == "kibana":
        assert all("coreMigrationVersion" in o for o in objs)
    else:
        assert all("migrationVersion" in o for o in objs)
    lines = saved_objects.to_ndjson(objs).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [o["id"] for o in objs]


def test_export_dashboards_command(tmp_path: Path) -> None:
    from llmid.cli import main

    assert main(["export-dashboards", str(tmp_path / "out"), "--interval", "5m"]) == 0
    assert (tmp_path / "out" / "llmid-osd.ndjson").read_text().count("\n") == 6 + len(specs.CLUSTER_DASHBOARD)
    assert (tmp_path / "out" / "llmid-kibana.ndjson").exists()
    spec = json.loads((tmp_path / "out" / "vega" / "anomaly_heatmap.vl.json").read_text())
    assert spec["data"]["url"]["%context%"] is True
    assert spec["data"]["url"]["body"]["aggs"]["t"]["date_histogram"]["fixed_interval"] == "5m"


def test_incident_timestamps_fixture_is_on_minute_boundaries() -> None:
    assert T0 % 60 == 0 and iso(T0).endswith(":00.000Z")
