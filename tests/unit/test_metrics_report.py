from __future__ import annotations

import csv
import io
from pathlib import Path

from fleetsim.metrics import Metrics, read_json, render_summary, write_json, write_timeline_csv
from fleetsim.metrics.progress import Progress, ProgressState, render_progress_line


class Clock:
    t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def sample_metrics() -> tuple[Metrics, Clock]:
    clock = Clock()
    m = Metrics(clock=clock)
    with m.step("connect"):
        for us in (1500, 2500, 40_000):
            m.record("mqtt.connect", us)
        m.error("tls_refused", "mqtt.connect")
    clock.t += 2
    with m.step("telemetry"):
        m.record("mqtt.publish", 800)
        m.error("disconnected_by_server", "mqtt.publish", n=2)
        m.error("tls_refused", "mqtt.connect")
    m.incr("messages.sent", 7)
    m.gauge("devices.connected", 3)
    m.check("every device connected", False, "3 of 4")
    return m, clock


def test_summary_lists_steps_operations_errors_and_checks() -> None:
    m, _ = sample_metrics()
    text = render_summary(m.snapshot(), title="demo run",
                          checks=[{"name": "broker up", "passed": True, "detail": ""}])
    lines = text.splitlines()
    assert lines[0] == "demo run"
    connect_row = next(line for line in lines if "mqtt.connect" in line and "connect " in line)
    # ok, errors, then p50 p90 p99 max of 1.5, 2.5 and 40 ms
    assert connect_row.split() == ["connect", "mqtt.connect", "3", "1",
                                   "2.50", "40.00", "40.00", "40.00"]
    tls_row = next(line for line in lines if line.strip().startswith("tls_refused"))
    assert tls_row.split()[1] == "2"
    assert "mqtt.connect @ connect x1" in tls_row and "mqtt.connect @ telemetry x1" in tls_row
    assert any(line.split()[:2] == ["disconnected_by_server", "2"] for line in lines)
    assert any(line.split()[:2] == ["messages.sent", "7"] for line in lines)
    assert any(line.split()[:2] == ["FAIL", "every"] for line in lines)
    assert any(line.split()[:2] == ["PASS", "broker"] for line in lines)
    assert "1 passed, 1 failed" in text
    assert any(line.split()[:2] == ["connect", "ok"] for line in lines)


def test_summary_of_empty_run_is_short() -> None:
    assert render_summary(Metrics().snapshot()) == "\n"


def test_json_round_trip(tmp_path: Path) -> None:
    m, _ = sample_metrics()
    path = tmp_path / "run.json"
    write_json(path, m.snapshot(), scenario="lab1")
    assert read_json(path) == m.snapshot()
    assert not list(tmp_path.glob("*.tmp"))


def test_timeline_csv_fills_quiet_seconds(tmp_path: Path) -> None:
    m, _ = sample_metrics()
    path = tmp_path / "timeline.csv"
    write_timeline_csv(path, m.snapshot())
    rows = list(csv.DictReader(path.open()))
    assert [r["elapsed_s"] for r in rows] == ["0", "1", "2"]
    assert [r["mqtt.connect"] for r in rows] == ["3", "0", "0"]
    assert [r["errors"] for r in rows] == ["1", "0", "3"]
    assert rows[2]["messages.sent"] == "7"


def test_progress_line_rendering() -> None:
    line = render_progress_line(ProgressState(
        elapsed_s=75, connected=950, connects_per_s=212.4, msgs_per_s=12_345, p99_ms=4.13,
        p99_op="mqtt.connect", errors=5, new_errors=2))
    assert line == ("[01:15] connected 950  connects/s 212  msgs/s 12.3k  "
                    "p99 4.1 ms (mqtt.connect)  errors 5 (+2)")


def test_progress_samples_rates_over_the_last_interval() -> None:
    m = Metrics()
    progress = Progress(m, stream=io.StringIO(), interval=1)
    t0 = progress._start
    for us in (1000, 2000):
        m.record("mqtt.connect", us)
    m.gauge("devices.connected", 2)
    first = progress.sample(now=t0 + 2)
    assert (first.connected, first.connects_per_s, first.p99_op) == (2, 1.0, "mqtt.connect")
    for _ in range(10):
        m.record("mqtt.publish", 50_000)
    m.error("timeout", "mqtt.publish")
    second = progress.sample(now=t0 + 4)
    assert (second.connects_per_s, second.msgs_per_s) == (0.0, 5.0)
    assert second.p99_op == "mqtt.publish"
    assert 49 < second.p99_ms < 51
    assert (second.errors, second.new_errors) == (1, 1)


async def test_progress_prints_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    m = Metrics()
    async with Progress(m, stream=out, interval=0.01):
        m.gauge("devices.connected", 1)
    lines = out.getvalue().splitlines()
    assert lines and "connected 1" in lines[-1]
    assert "\r" not in out.getvalue()
