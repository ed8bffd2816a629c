"""`run --html` and `report A.json B.json --html`, opened in headless Chromium (Debian's, driven
by Playwright) with the network blocked: every plot drawn with data, the tables filled, the
scenario shown, and a comparison of two real runs with its deltas."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core
from tests.integration.test_run_cli import ephemeral_env, fleetsim

CHROMIUM = "/usr/bin/chromium"
# Never `playwright install`: Debian's chromium, told to reach for nothing on its own.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium missing (make tools)"),
    pytest.mark.timeout(400),
]

# Three devices: telemetry observed end to end, then a job run by their job agents, so every
# plot (connects, messages, job executions per minute, errors, latency) has data.
SCENARIO = """\
name: html-report
target: local
fleets:
  - {name: sensors, prefix: html-sensor, count: 3, key_type: ec-p256,
     thing_name: "{prefix}-{index:02d}"}
steps:
  - create_policy:
      fleet: sensors
      policy: html-report-sensor
      document:
        Version: "2012-10-17"
        Statement: [{Effect: Allow, Action: "iot:*", Resource: "*"}]
  - observe: {topics: ["dt/+/telemetry"]}
  - provision: {fleet: sensors, policy: html-report-sensor}
  - connect: sensors
  - telemetry:
      fleet: sensors
      topic: "dt/{thing_name}/telemetry"
      payload: {seq: "{seq}", at: "{timestamp_ms}"}
      rate: 2/s
      duration: 3s
  - job_agent: {fleet: sensors, poll: 1s, execution_time: 0.2s}
  - create_job: {job_id: "html-{run_id}", fleet: sensors, document: {operation: reboot}}
  - wait_job: {job_id: "html-{run_id}", timeout: 60s, expect_status: COMPLETED}
  - expect:
      timeout: 10s
      messages: [{topic: "dt/+/telemetry", count: 1}]
  - disconnect: sensors
"""




@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Two real runs of the scenario (3 devices, then 2) on one local core, each with `--json`
    and `--html`."""
    tmp = tmp_path_factory.mktemp("html")
    scenario = tmp / "html-report.yaml"
    scenario.write_text(SCENARIO)
    core: RunningLocalCore = start_core(tmp / "state" / "localcore")
    out: dict[str, Path] = {}
    try:
        for name, devices in (("a", "3"), ("b", "2")):
            done = fleetsim("run", str(scenario), "--devices", devices, "--json",
                            str(tmp / f"{name}.json"), "--html", str(tmp / f"{name}.html"),
                            "--state-dir", str(tmp / "state"), cwd=tmp, env=ephemeral_env(),
                            timeout=180)
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"HTML report written to {tmp / f'{name}.html'}" in done.stdout
            out[name] = tmp / name
    finally:
        core.stop()
    yield out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_offline(browser: Any, path: Path) -> tuple[Any, list[str]]:
    """The page of `path`, every request but file:// aborted; returns it and what was tried."""
    page = browser.new_page()
    tried: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            tried.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, tried


# Per plot: its title, each trace's number of points, and the SVG traces drawn.
PLOTS_JS = """[...document.querySelectorAll('.js-plotly-plot')].map(d => ({
    title: d.layout.title.text,
    points: d.data.map(t => (t.y || []).length),
    drawn: d.querySelectorAll('svg .trace').length}))"""


def rows(page: Any, section: str) -> int:
    return int(page.evaluate(f"document.querySelectorAll('#{section} tbody tr').length"))


def test_run_html_renders_every_plot_with_data_offline(runs: dict[str, Path],
                                                       browser: Any) -> None:
    summary = json.loads(runs["a"].with_suffix(".json").read_text())
    assert summary["scenario_text"] == SCENARIO
    page, tried = open_offline(browser, runs["a"].with_suffix(".html"))
    plots = page.evaluate(PLOTS_JS)
    assert tried == []
    assert {p["title"] for p in plots} == {
        "Connects per second", "Messages per second", "Job executions per minute",
        "Errors per second", "Latency distribution (cumulative)"}
    for plot in plots:
        assert plot["points"] and all(n > 0 for n in plot["points"]), plot
        assert plot["drawn"] >= len(plot["points"]), plot
    # what the runs did shows in the plots' data: 3 connects, 3 job executions
    connects = page.evaluate("""[...document.querySelectorAll('.js-plotly-plot')]
        .find(d => d.layout.title.text === 'Connects per second').data[0].y
        .reduce((a, b) => a + b, 0)""")
    assert connects == sum(n for _, n in summary["metrics"]["timeline"]["mqtt.connect"])
    ended = page.evaluate("""[...document.querySelectorAll('.js-plotly-plot')]
        .find(d => d.layout.title.text === 'Job executions per minute').data
        .find(t => t.name === 'ended').y.reduce((a, b) => a + b, 0)""")
    assert ended == 3
    assert rows(page, "steps") == len(summary["metrics"]["steps"])
    assert rows(page, "latency") == len({o["op"] for o in summary["metrics"]["ops"]})
    assert rows(page, "phases") == len(summary["metrics"]["ops"])
    assert rows(page, "checks") == 2
    assert page.inner_text("#scenario pre") == SCENARIO
    assert page.inner_text(".verdict") == "PASSED"
    page.close()


def test_report_compares_two_runs_with_deltas(runs: dict[str, Path], browser: Any) -> None:
    out = runs["a"].parent / "compare.html"
    done = fleetsim("report", str(runs["a"].with_suffix(".json")),
                    str(runs["b"].with_suffix(".json")), "--html", str(out),
                    cwd=out.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    page, tried = open_offline(browser, out)
    plots = page.evaluate(PLOTS_JS)
    assert tried == []
    assert plots and all(p["points"] and all(n > 0 for n in p["points"]) for p in plots)
    # one trace per run in the overlaid connects plot
    connects = next(p for p in plots if p["title"] == "Connects per second")
    assert len(connects["points"]) == 2
    figures = {r[0][0]: r[1:] for r in page.evaluate("""[...document.querySelectorAll(
        '#figures tbody tr')].map(tr => [...tr.cells].map(c => [c.innerText, c.className]))""")}
    # 3 devices and the observer connected, against 2 and the observer: one fewer is worse
    assert figures["mqtt.connect ok"] == [["4", "num"], ["3", "num"], ["-1 (-25%)", "num worse"]]
    assert page.evaluate("document.querySelectorAll('td.better, td.worse').length") > 1
    assert rows(page, "steps") == 10
    page.close()
