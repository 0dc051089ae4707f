"""Search latency of the web app over a store of 100k records (issue 8: a page answers a search in < 300 ms).

Builds the store once with the real pipeline (`llmid sim generate --lines N` + `llmid analyze`, cached at
--store), serves it with `llmid serve` (waitress, a child process on loopback), and times
whole HTTP round trips (request to last byte) of search pages and API calls: a warm-up, then --runs timed
requests each, reporting the median and the maximum.

    .venv/bin/python benchmarks/webapp_search.py --records 100000 --runs 15
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from llmid.config import Settings
from llmid.plugin.webapp import tokens
from llmid.runner import run_source
from llmid.sim.scenario import generate
from llmid.store.sqlite import SQLiteStore


def build(path: Path, records: int) -> str:
    """An analysed simulator scenario of about `records` records (reused when already there)."""
    url = f"sqlite:///{path}"
    if path.exists():
        with SQLiteStore.from_url(url) as st:
            if st.stats()["records"] >= records:
                return url
        path.unlink()
    t0 = time.perf_counter()
    log = generate(11, lines=int(records * 1.1), normal_minutes=600, fault_minutes=30).write(path.parent / "bench")
    with SQLiteStore.from_url(url) as st:
        run_source(str(log), Settings(store=url, quiet=True), st)
        n = st.stats()["records"]
    print(f"built {url}: {n} records in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return url


def timed(conn: http.client.HTTPConnection, path: str, headers: dict[str, str], runs: int) -> tuple[list[float], int]:
    def once() -> tuple[float, int]:
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        dt = time.perf_counter() - t
        if resp.status != 200:
            raise RuntimeError(f"{path} answered {resp.status}: {body[:200]!r}")
        return dt, len(body)

    once()  # warm-up (caches, first query plan)
    samples = [once() for _ in range(runs)]
    return [s[0] for s in samples], samples[-1][1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "llmid-bench-100k" / "llmid.db")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    args.store.parent.mkdir(parents=True, exist_ok=True)
    url = build(args.store, args.records)
    with SQLiteStore.from_url(url) as st:
        total = st.stats()["records"]
        token, _ = tokens.create_token(st, "read", "benchmark")
        rare = st.facet("template_id", size=1000)[-1]["key"]
        top = st.incidents(limit=1).hits[0]["incident_id"]
    # `llmid serve` as a user runs it (waitress, 4 threads), limits off so only the serving is timed.
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmid", "serve", "--store", url, "--port", str(port),
                             "--rate-limit", "0", "--alert-interval", "0", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return _run(port, token, total, rare, top, args)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(port: int, token: str, total: int, rare: str, top: str, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("llmid serve did not start") from None
            time.sleep(0.1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Authorization": f"Bearer {token}"}
    t = time.perf_counter()  # the very first page: store opened, filter choices computed (then cached 30 s)
    conn.request("GET", "/search?q=failed", headers=h)
    conn.getresponse().read()
    cold_ms = round((time.perf_counter() - t) * 1000, 1)
    cases = [
        ("page: newest records, no query", "/search", {}),
        ("page: full text 'failed'", "/search", {"q": "failed"}),
        ("page: full text OR + level filter", "/search", {"q": "failed OR refused", "level": "ERROR"}),
        ("page: full text + service filter", "/search", {"q": "upstream", "service": "gateway"}),
        ("page: a rare template", "/search", {"template": rare}),
        ("page: deep page (offset 5000)", "/search", {"q": "served", "offset": "5000"}),
        ("api: full text 'failed'", "/api/v1/search", {"q": "failed"}),
        ("api: histogram of 'failed' by level", "/api/v1/histogram", {"q": "failed", "by": "level"}),
        ("other page: incidents", "/incidents", {}),
        ("other page: top incident (chain, timeline)", f"/incidents/{top}", {}),
        ("other page: templates (counts over time)", "/templates", {}),
        ("other page: dashboards (5 specs filled)", "/dashboards", {}),
    ]
    rows = []
    for name, path, query in cases:
        full = path + ("?" + urlencode(query) if query else "")
        times, size = timed(conn, full, h, args.runs)
        rows.append({"case": name, "path": full, "median_ms": round(statistics.median(times) * 1000, 1),
                     "max_ms": round(max(times) * 1000, 1), "bytes": size})
    conn.close()
    if args.json:
        print(json.dumps({"records": total, "runs": args.runs, "first_page_ms": cold_ms, "results": rows}, indent=2))
        return 0
    print(f"{total} records, {args.runs} timed runs per case (after one warm-up), whole HTTP round trips")
    print(f"first page after start (cold): {cold_ms} ms")
    print(f"{'case':44} {'median ms':>10} {'max ms':>8} {'bytes':>8}")
    for r in rows:
        print(f"{r['case']:44} {r['median_ms']:>10} {r['max_ms']:>8} {r['bytes']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
