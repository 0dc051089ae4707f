"""The issue's "done when", as a person does it: `llmid sim generate`, `llmid analyze`, `llmid token create`,
`llmid serve` (waitress), then real headless Chromium (Debian's, driven by selenium through chromedriver) signs
in, runs a search, opens an incident (chain, timeline, recommendation), approves the recommendation and looks
at every page. Screenshots land in test-artifacts/ (gitignored). Nothing may load from outside the server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webapp_support import ARTIFACTS, free_port, start_server, stop_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HAVE_BROWSER = Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()
pytestmark = pytest.mark.skipif(not HAVE_BROWSER and not os.environ.get("CI"),
                                reason="Debian's chromium and chromium-driver are missing (.ci/run installs them)")
WAIT_S = 20.0


def llmid(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "llmid", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("browser")
    llmid("sim", "generate", "--seed", "7", "--out", "demo", cwd=work)
    llmid("analyze", "demo/scenario.log", "--store", "sqlite:///demo/llmid.db", cwd=work)
    url = f"sqlite:///{work / 'demo' / 'llmid.db'}"
    token = llmid("token", "create", "--role", "write", "--name", "browser test", "--store", url, cwd=work)
    port = free_port()
    proc = start_server(url, port)
    try:
        yield {"base": f"http://127.0.0.1:{port}", "token": token.stdout.strip(), "url": url}
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def browser(served: dict[str, Any]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="llmid-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver: Any, name: str) -> Path:
    """Screenshot of the whole page (the window grows to the page, at most 4000 px)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(800, min(int(height) + 40, 4000)))
    path = ARTIFACTS / f"webapp-{name}.png"
    assert driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    assert path.stat().st_size > 10_000
    return path


def wait_for(driver: Any, js: str, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = driver.execute_script(js)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def charts_rendered(driver: Any, n: int) -> None:
    wait_for(driver, f"return document.querySelectorAll('[data-state=rendered]').length >= {n} "
                     "|| document.querySelector('[data-state=error]')", f"{n} charts")
    assert not driver.execute_script("return document.querySelector('[data-state=error]')"), "a chart failed"
    assert driver.execute_script("return document.querySelectorAll('[data-state=rendered] svg').length") >= n


def only_local_resources(driver: Any, base: str) -> None:
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [u for u in urls if not u.startswith(base)]
    assert not outside, outside


def test_done_when_in_the_browser(served: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base, d = served["base"], browser
    d.get(base + "/incidents")
    assert "/login" in d.current_url  # pages need a token
    d.find_element(By.ID, "token").send_keys(served["token"])
    d.find_element(By.ID, "login-submit").click()
    wait_for(d, "return document.querySelector('#incidents')", "the incidents list")
    rows = d.find_elements(By.CSS_SELECTOR, "#incidents tbody tr")
    assert len(rows) >= 3
    shot(d, "incidents")

    # search: type a query, pick a level, submit
    d.find_element(By.LINK_TEXT, "Search").click()
    box = d.find_element(By.ID, "q")
    box.send_keys("metadata-db")
    d.find_element(By.CSS_SELECTOR, "#level option[value='']")  # the choices are there
    for opt in d.find_elements(By.CSS_SELECTOR, "#level option"):
        if opt.text == "ERROR":
            opt.click()
    d.find_element(By.ID, "search-submit").click()
    wait_for(d, "return location.search.includes('q=metadata-db')", "the search results")
    summary = d.find_element(By.ID, "result-summary").text
    assert int(summary.split()[0]) > 0
    hits = d.find_elements(By.CSS_SELECTOR, "#hits tbody tr")
    assert hits and all("metadata-db" in h.text.lower() for h in hits[:10])
    assert d.find_elements(By.CSS_SELECTOR, "#hits mark.param")  # parameters highlighted
    charts_rendered(d, 1)
    shot(d, "search")

    # open the top incident: chain graph, timeline, ranking, evidence, recommendation
    d.find_element(By.LINK_TEXT, "Incidents").click()
    d.find_element(By.CSS_SELECTOR, "a.incident-link").click()
    wait_for(d, "return document.querySelector('#chain svg.chain')", "the fault chain")
    nodes = d.find_elements(By.CSS_SELECTOR, "#chain g.node")
    assert len(nodes) >= 2 and "root" in nodes[0].get_attribute("class")
    assert d.find_elements(By.CSS_SELECTOR, "#chain line.edge")
    assert d.find_elements(By.CSS_SELECTOR, "#ranking tbody tr") and d.find_elements(By.CSS_SELECTOR, "#evidence tr")
    rec = d.find_element(By.CSS_SELECTOR, "#recommendations .rec")
    assert "confidence" in rec.text and "safety:" in rec.text and "proposed" in rec.text
    charts_rendered(d, 1)  # the timeline
    shot(d, "incident")

    # approve the recommendation: status changes and the audit trail shows who
    incident_url = d.current_url
    rec.find_element(By.CSS_SELECTOR, "input[name=reason]").send_keys("runbook checked")
    rec.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait_for(d, "return document.querySelector('#recommendations .rec [data-status]').textContent == 'approved'",
             "the approved status")
    assert d.current_url.split("#")[0] == incident_url.split("#")[0]
    trail = d.find_element(By.CSS_SELECTOR, "#recommendations .audit").text
    assert "browser test" in trail and "recommendation.approved" in trail and "runbook checked" in trail
    shot(d, "incident-approved")

    for page, name, charts in (("/dashboards", "dashboards", 5), ("/templates", "templates", 0),
                               ("/recommendations", "recommendations", 0), ("/alerts", "alerts", 0)):
        d.get(base + page)
        wait_for(d, "return document.readyState == 'complete'", page)
        assert "Error" not in d.title
        if charts:
            charts_rendered(d, charts)
        shot(d, name)
        only_local_resources(d, base)

    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
