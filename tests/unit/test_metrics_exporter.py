"""`MetricsServer`: /metrics over HTTP on loopback, from the event loop that records."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetsim.cli import main
from fleetsim.errors import UserError
from fleetsim.metrics.exporter import MetricsServer
from fleetsim.metrics.recorder import Metrics


async def test_serves_the_recorder_as_it_is_at_each_scrape() -> None:
    metrics = Metrics()
    async with MetricsServer(lambda: metrics, "127.0.0.1", 0) as server, \
            aiohttp.ClientSession() as http:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/metrics"
        metrics.record("mqtt.publish", 120)
        async with http.get(server.url) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            first = {f.name: f for f in text_string_to_metric_families(await r.text())}
        metrics.record("mqtt.publish", 80)
        async with http.get(server.url) as r:
            second = {f.name: f for f in text_string_to_metric_families(await r.text())}
        sent = "fleetsim_publishes_sent"
        assert [s.value for s in first[sent].samples] == [1]
        assert [s.value for s in second[sent].samples] == [2]
        assert "process_cpu_seconds" in second  # the process' own collector
        async with http.get(server.url,
                            headers={"Accept": "application/openmetrics-text"}) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await r.text()).endswith("# EOF\n")
        async with http.get(server.url.replace("/metrics", "/")) as r:
            assert r.status == 404


async def test_a_port_in_use_is_one_sentence() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError) as e:
            async with MetricsServer(Metrics, "127.0.0.1", port):
                pass
    assert str(e.value) == (f"--metrics-port {port}: cannot listen on 127.0.0.1:{port} "
                            "(Address already in use)")


async def test_an_unknown_host_is_one_sentence() -> None:
    with pytest.raises(UserError, match=r"^--metrics-host no\.such\.host\.invalid: "):
        async with MetricsServer(Metrics, "no.such.host.invalid", 0):
            pass


def test_metrics_host_without_a_port_is_one_sentence(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(tmp_path / "any.yaml"), "--metrics-host", "0.0.0.0",
                 "--state-dir", str(tmp_path / "state")])
    assert code == 1
    assert capsys.readouterr().err == ("fleetsim: --metrics-host is where --metrics-port "
                                       "listens: add --metrics-port\n")


@pytest.mark.parametrize("port", ["-1", "65536", "nine"])
def test_a_metrics_port_that_is_not_a_port_is_refused(port: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["run", "any.yaml", "--metrics-port", port])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --metrics-port:" in err and "Traceback" not in err
