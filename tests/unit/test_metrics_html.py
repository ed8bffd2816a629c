"""The HTML report's pure parts: deltas, series, tables, pages (no browser: see
tests/integration/test_html_report.py for the page drawn in Chromium)."""

from __future__ import annotations

import json
import math
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.cli import main
from fleetsim.metrics import Metrics, write_json
from fleetsim.metrics.html import render_comparison_html, render_report
from fleetsim.metrics.html.deltas import BETTER, SAME, WORSE, delta
from fleetsim.metrics.html.page import plotly_js
from fleetsim.metrics.html.series import cumulative, per_minute, per_second
from fleetsim.metrics.html.tables import Cell, Table, labs_table, render_table, steps_table
from fleetsim.metrics.report import op_histograms, summary_document


class Clock:
    t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def sample(connect_us: int = 2000, errors: int = 1) -> dict[str, Any]:
    clock = Clock()
    m = Metrics(clock=clock)
    with m.step("connect"):
        for _ in range(3):
            m.record("mqtt.connect", connect_us)
        m.error("tls_refused", "mqtt.connect", n=errors)
    clock.t += 65
    with m.step("<telemetry>"):
        m.record("mqtt.publish", 800)
        m.incr_at("job.ended", clock.t)
    m.check("every device connected", errors == 0, f"{errors} refused")
    return summary_document(m.snapshot(), run_id="r1", scenario="lab", passed=errors == 0,
                            scenario_text="name: lab\n# </pre><script>alert(1)</script>\n")


# --- deltas ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("base", "value", "better", "text", "verdict"), [
    (4, 3, "higher", "-1 (-25%)", WORSE),
    (4, 3, "lower", "-1 (-25%)", BETTER),
    (2.5, 40.0, "lower", "+37.5 (+1500%)", WORSE),
    (0, 5, "lower", "+5", WORSE),  # no percentage of nothing
    (3, 3, "lower", "=", SAME),
    (3, 3, None, "=", ""),
    (1000, 1500, "higher", "+500 (+50%)", BETTER),
    (0.25, 0.5, None, "+0.25 (+100%)", ""),
    (None, 3, "lower", "", ""),
])
def test_delta_examples(base: float | None, value: float | None, better: str | None,
                        text: str, verdict: str) -> None:
    assert delta(base, value, better) == (delta(base, value, better).__class__(text, verdict))


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(finite, finite, st.sampled_from(["lower", "higher", None]))
def test_delta_sign_and_verdict_agree(base: float, value: float, better: str | None) -> None:
    d = delta(base, value, better)
    diff = value - base
    assert "nan" not in d.text and "inf" not in d.text
    if diff == 0:
        assert d.text == "=" and d.verdict == (SAME if better else "")
        return
    assert d.text[0] == ("+" if diff > 0 else "-")
    if better is None:
        assert d.verdict == ""
    else:
        assert d.verdict == (BETTER if (diff < 0) == (better == "lower") else WORSE)
    # the percentage, when given, has the sign of the difference
    percent = re.search(r"\(([+-])", d.text)
    assert percent is None or percent.group(1) == d.text[0]


# --- series ---------------------------------------------------------------------------------

def test_per_second_fills_quiet_seconds_and_starts_at_the_run() -> None:
    snap = sample()["metrics"]
    (connects,) = per_second(snap, [("connects", "mqtt.connect"), ("none", "no.such")])
    assert connects.x[:3] == [0.0, 1.0, 2.0] and connects.y[:3] == [3.0, 0.0, 0.0]
    assert len(connects.x) == 66  # to the last second of the run
    assert sum(connects.y) == 3


def test_per_minute_bins_since_the_start() -> None:
    (ended,) = per_minute(sample()["metrics"], [("ended", "job.ended"), ("q", "job.queued")])
    assert ended.x == [0.0, 1.0] and ended.y == [0.0, 1.0]


def test_series_of_an_empty_run_are_empty() -> None:
    snap = Metrics().snapshot()
    assert per_second(snap, [("connects", "mqtt.connect")]) == []
    assert per_minute(snap, [("ended", "job.ended")]) == []


def test_cumulative_latency_reaches_every_sample() -> None:
    m = Metrics()
    for us in (100, 1000, 1000, 50_000):
        m.record("op", us)
    s = cumulative(op_histograms(m.snapshot())["op"])
    assert s is not None
    assert s.y == [25.0, 75.0, 100.0]
    assert s.x[0] == 0.1 and s.x[-1] == 50.0
    assert s.x == sorted(s.x)


# --- tables and pages -----------------------------------------------------------------------

def test_tables_escape_and_colour_status() -> None:
    html = render_table(steps_table(sample()["metrics"]))
    assert "&lt;telemetry&gt;" in html and "<telemetry>" not in html
    assert html.count("<tr>") == 3  # header and two steps
    assert '<td class="good">ok</td>' in html


@given(st.text())
def test_any_text_in_a_table_is_escaped(text: str) -> None:
    html = render_table(Table(("h",), [[Cell(text)]]))
    inner = html.split("<td>", 1)[1].rsplit("</td>", 1)[0]
    assert "<" not in inner and ">" not in inner
    assert unescape(inner) == text


def test_labs_table_only_when_the_summary_has_labs() -> None:
    assert labs_table(sample()) is None
    labs = labs_table({"labs": [{"name": "JITP", "status": "passed", "seconds": 12.5,
                                 "steps": ["register_ca", "jit_connect"]},
                                {"name": "jobs", "status": "failed", "seconds": 70,
                                 "detail": "11.wait_job: failed: job CANCELED"}]})
    assert labs is not None
    html = render_table(labs)
    assert html.count("<tr>") == 3
    assert '<td class="good">passed</td>' in html and '<td class="bad">failed</td>' in html
    assert "register_ca, jit_connect" in html and "1 min 10.0 s" in html
    assert "11.wait_job: failed: job CANCELED" in html


def test_report_page_is_self_contained_with_one_copy_of_plotly() -> None:
    page = render_report(sample())
    assert page.count(plotly_js()) == 1
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?https?:""", page)
    # the scenario is shown, escaped
    assert "# &lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    for title in ("Connects per second", "Job executions per minute", "Errors per second",
                  "Latency distribution (cumulative)"):
        assert title in page
    assert "Messages per second" in page  # one publish
    assert 'id="labs"' not in page


def test_report_of_an_empty_run_says_so() -> None:
    page = render_report(summary_document(Metrics().snapshot()))
    assert page.count('class="js-plotly-plot"') == 0 and "Plotly.newPlot" not in page
    assert "no events recorded" in page and "no operation succeeded" in page
    assert "holds no scenario text" in page


def test_comparison_colours_deltas() -> None:
    page = render_comparison_html([sample(connect_us=2000, errors=1),
                                   sample(connect_us=4000, errors=0)], ["a.json", "b.json"])
    assert page.count(plotly_js()) == 1
    cells = re.findall(r"<tr><td>([^<]+)</td>(.*?)</tr>", page)
    row = {name: re.findall(r'<td class="([^"]*)">([^<]*)</td>', rest) for name, rest in cells}
    assert row["errors"] == [("num", "1"), ("num", "0"), ("num better", "-1 (-100%)")]
    assert row["mqtt.connect p50 ms"][2] == ("num worse", "+2 (+100%)")
    assert row["tls_refused"] == [("num", "1"), ("num", "0"), ("num better", "-1 (-100%)")]


# --- the command ----------------------------------------------------------------------------

def test_report_html_of_one_and_of_two_files(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    a, b = sample(), sample(connect_us=3000, errors=0)
    for name, s in (("a", a), ("b", b)):
        write_json(tmp_path / f"{name}.json", s["metrics"],
                   **{k: v for k, v in s.items() if k not in ("metrics", "throughput")})
    assert main(["report", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html")]) == 0
    assert "<h1>fleetsim run r1</h1>" in (tmp_path / "a.html").read_text()
    assert main(["report", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--html", str(tmp_path / "c.html")]) == 0
    assert "2 runs compared" in (tmp_path / "c.html").read_text()
    assert f"HTML report written to {tmp_path / 'c.html'}" in capsys.readouterr().out


def test_report_of_a_run_of_labs_prints_its_labs_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = sample()
    s["labs"] = [{"name": "JITP", "file": "jitp.yaml", "status": "pass", "seconds": 2.5,
                  "steps": 7, "detail": ""},
                 {"name": "Clean Up", "file": "", "status": "fail", "seconds": 1.0, "steps": 2,
                  "detail": "still there: thing t-1"}]
    write_json(tmp_path / "a.json", s["metrics"],
               **{k: v for k, v in s.items() if k not in ("metrics", "throughput")})
    assert main(["report", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "Labs (1/2 passed)" in out and "still there: thing t-1" in out


def test_report_html_of_a_malformed_summary_is_one_sentence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"metrics": {"steps": [], "ops": [{"op": "x"}],
                                           "timeline": {}, "counters": {}, "gauges": {}}}))
    assert main(["report", str(bad), "--html", str(tmp_path / "x.html")]) != 0
    err = capsys.readouterr().err
    assert err.startswith("fleetsim: ") and "Traceback" not in err
    assert not (tmp_path / "x.html").exists()


def test_report_merge_html_renders_the_merged_run(tmp_path: Path) -> None:
    for name, s in (("a", sample()), ("b", sample(connect_us=3000))):
        write_json(tmp_path / f"{name}.json", s["metrics"], run_id=name)
    assert main(["report", "--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--html", str(tmp_path / "m.html")]) == 0
    page = (tmp_path / "m.html").read_text()
    assert f"merged from</th><td>{tmp_path / 'a.json'}, {tmp_path / 'b.json'}" in page
    # 3 + 3 connects, in the operations table
    assert re.search(r"<td>mqtt.connect</td><td class=\"num\">6</td>", page)


def test_nan_free_percentages_for_tiny_bases() -> None:
    d = delta(1e-300, 1.0, "lower")
    assert d.verdict == WORSE and "inf" not in d.text and not math.isnan(len(d.text))
