"""`fleetsim run --metrics-port 0`: the Prometheus endpoint scraped while a run goes (real
devices over mutual TLS against the local core the run starts)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from tests.integration.test_run_cli import ephemeral_env
from tests.prometheus_testing import (
    assert_histograms_consistent,
    metrics_url,
    scrape,
    scrape_until,
    total,
)

# Three sensors publish 5 messages a second each in the background; a probe device tries a
# publish its policy allows and one it does not (on MQTT 3.1.1 AWS IoT closes the connection:
# the error kind `disconnected_by_server`), an expected outcome, so the run passes.
SCENARIO = """\
name: metrics-scrape
target: local
fleets:
  - {name: sensors, prefix: prom-sensor, count: 3}
  - {name: probe, prefix: prom-probe, count: 1}
steps:
  - wait: 2s
  - create_policy:
      policy: prom-scrape
      document:
        Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Action: "iot:Connect",
             Resource: "arn:aws:iot:*:*:client/${iot:ClientId}"}
          - {Effect: Allow, Action: "iot:Publish",
             Resource: "arn:aws:iot:*:*:topic/dt/prom/${iot:ClientId}"}
  - observe: {topics: ["dt/prom/#", "forbidden/#"]}
  - provision: {fleet: sensors, policy: prom-scrape}
  - provision: {fleet: probe, policy: prom-scrape}
  - connect: sensors
  - connect: probe
  - telemetry:
      fleet: sensors
      topic: "dt/prom/{thing_name}"
      payload: {seq: "{seq}"}
      rate: 5/s
      duration: 60s
      background: true
  - wait: 4s
  - expect_policy_outcomes:
      fleet: probe
      publish:
        allowed: ["dt/prom/{client_id}"]
        denied: ["forbidden/{client_id}"]
  - wait: 4s
  - disconnect: sensors
  - disconnect: probe
"""


@pytest.mark.timeout(180)
def test_metrics_are_scraped_while_the_run_goes(tmp_path: Path) -> None:
    scenario = tmp_path / "metrics-scrape.yaml"
    scenario.write_text(SCENARIO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetsim", "run", str(scenario), "--metrics-port", "0",
         "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path, env=ephemeral_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        url = metrics_url(proc)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), url

        before = scrape(url)  # during the first `wait`: nothing connected yet
        connected = scrape_until(url, lambda s: total(s, "fleetsim_publishes_sent_total") > 0,
                                 "telemetry being sent")
        assert total(connected, "fleetsim_devices_connected") >= 4
        assert (total(connected, "fleetsim_connects_total")
                > total(before, "fleetsim_connects_total"))
        time.sleep(1.5)
        later = scrape(url)
        for name in ("fleetsim_publishes_sent_total", "fleetsim_publishes_received_total"):
            assert total(later, name) > total(connected, name), name
        assert total(later, "fleetsim_operation_duration_seconds_count",
                     operation="mqtt.publish") == total(later, "fleetsim_publishes_sent_total")

        denied = scrape_until(
            url, lambda s: total(s, "fleetsim_errors_total", kind="disconnected_by_server") > 0,
            "the denied publish")
        assert total(denied, "fleetsim_errors_total", kind="disconnected_by_server",
                     operation="mqtt.publish") >= 1
        assert assert_histograms_consistent(denied) >= 3  # connect, publish, e2e, api.*, ...
        assert total(denied, "process_cpu_seconds_total") > 0

        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert "PASSED" in out
    with pytest.raises(urllib.error.URLError):  # served while the run goes, not after
        scrape(url)
