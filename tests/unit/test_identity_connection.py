"""Device-side parts that need no broker: the target, payload templates, error kinds and the
observer's waiting logic."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from fleetsim.device import Observer
from fleetsim.device.errors import DeviceError, connack_kind, connect_failure_kind, lost_kind
from fleetsim.device.payload import SENT_FIELD, encode
from fleetsim.metrics import Metrics, error_kind
from fleetsim.target import Target, parse_endpoint_address


@pytest.mark.parametrize(("address", "expected"), [
    ("abc123-ats.iot.us-east-1.amazonaws.com", ("abc123-ats.iot.us-east-1.amazonaws.com", 8883)),
    ("127.0.0.1:18883", ("127.0.0.1", 18883)),
    ("localhost", ("localhost", 8883)),
    ("[::1]:9000", ("::1", 9000)),
    ("[::1]", ("::1", 8883)),
])
def test_parse_endpoint_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint_address(address) == expected


def test_parse_endpoint_address_rejects_empty() -> None:
    with pytest.raises(ValueError):
        parse_endpoint_address("  ")


def test_aws_target_defaults_and_alpn_on_443() -> None:
    t = Target.aws("eu-west-1", "abc-ats.iot.eu-west-1.amazonaws.com")
    assert (t.kind, t.mqtt_port, t.use_alpn, t.alpn_protocols, t.api_url) == (
        "aws", 8883, False, None, None)
    assert t.server_ca_file.name == "cacert.pem"  # certifi
    assert t.boto3_kwargs() == {"region_name": "eu-west-1"}
    alpn = Target.aws("eu-west-1", "abc-ats.iot.eu-west-1.amazonaws.com", port=443)
    assert alpn.alpn_protocols == ["x-amzn-mqtt-ca"]
    assert alpn.endpoint_address == "abc-ats.iot.eu-west-1.amazonaws.com:443"


def test_local_target_from_core_info(tmp_path: Path) -> None:
    info = tmp_path / "localcore.json"
    info.write_text(json.dumps({"api_url": "http://127.0.0.1:4510", "mqtt_host": "127.0.0.1",
                                "mqtt_port": 18883, "root_ca": str(tmp_path / "r.pem")}))
    t = Target.from_local_core_info(info)
    assert (t.kind, t.mqtt_host, t.mqtt_port) == ("local", "127.0.0.1", 18883)
    assert t.server_ca_file == tmp_path / "r.pem"
    assert t.endpoint_address == "127.0.0.1:18883"
    assert t.boto3_kwargs() == {"region_name": "us-east-1",
                                "endpoint_url": "http://127.0.0.1:4510"}
    assert Target.aws("us-east-1", t.endpoint_address).mqtt_port == 18883


def test_encode_stamps_objects_only() -> None:
    data = json.loads(encode({"a": 1}, stamp=True))
    assert data["a"] == 1 and isinstance(data[SENT_FIELD], int)
    assert encode([1, 2]) == b"[1,2]"
    with pytest.raises(TypeError):
        encode([1], stamp=True)


@pytest.mark.parametrize(("name", "kind"), [
    ("Not authorized", "connack_5"),
    ("Bad user name or password", "connack_4"),
    ("Client identifier not valid", "connack_2"),
    ("Server unavailable", "connack_3"),
])
def test_connack_kinds_use_mqtt_311_codes(name: str, kind: str) -> None:
    assert connack_kind(ReasonCode(PacketTypes.CONNACK, name)) == kind


@pytest.mark.parametrize(("text", "kind"), [
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
     "certificate (_ssl.c:1006)", "tls_server_untrusted"),
    ("[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580)",
     "tls_refused"),
    ("failed to receive on socket: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert "
     "certificate required (_ssl.c:2580)", "tls_refused"),
    ("[Errno 111] Connection refused", "connection_refused"),
    ("timed out", "timeout"),
    ("[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol",
     "tls_refused"),
    ("[Errno 104] Connection reset by peer", "closed_before_connack"),
    ("something else", "connect_failed"),
])
def test_connect_failure_kinds(text: str, kind: str) -> None:
    assert connect_failure_kind(text) == kind


def test_lost_kinds_and_device_error_kind() -> None:
    assert lost_kind(ReasonCode(PacketTypes.DISCONNECT, "Keep alive timeout")) == \
        "keepalive_timeout"
    assert lost_kind(ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")) == \
        "disconnected_by_server"
    assert error_kind(DeviceError("connack_5", "dev-1")) == "connack_5"


class _NoSession:
    metrics = None


def _observer() -> Observer:
    return Observer(_NoSession(), ["#"], metrics=Metrics())  # type: ignore[arg-type]


async def test_observer_waits_for_matching_messages_and_records_e2e() -> None:
    obs = _observer()
    obs.add("iot/ws", b'{"n": 1}')
    mark = obs.mark()
    waiting = asyncio.create_task(obs.wait_for("iot/+", lambda m: m.data["n"] == 2, since=mark))
    await asyncio.sleep(0)
    obs.add("iot/other", b'{"n": 3}')
    assert not waiting.done()
    obs.add("iot/ws", encode({"n": 2}, stamp=True))
    got = await waiting
    assert (got.seq, got.topic, got.data["n"]) == (2, "iot/ws", 2)
    assert got.e2e_us is not None and got.e2e_us >= 0
    assert obs.metrics.histogram("e2e").count == 1
    assert obs.metrics.counters["messages.received"] == 3
    # already received messages count unless `since` excludes them
    assert (await obs.wait_for("iot/ws")).seq == 0


async def test_observer_wait_for_count_and_timeouts() -> None:
    obs = _observer()
    obs.add("a/1", b"x")
    later = asyncio.get_running_loop().call_later(0.01, obs.add, "a/2", b"y")
    got = await obs.wait_for_count("a/#", 2, timeout=5)
    assert [m.topic for m in got] == ["a/1", "a/2"]
    later.cancel()
    with pytest.raises(TimeoutError, match="2 of 3 messages"):
        await obs.wait_for_count("a/#", 3, timeout=0.05)
    with pytest.raises(TimeoutError, match="seen since then: a/1, a/2"):
        await obs.wait_for("b/#", timeout=0.05)


async def test_closing_the_observer_fails_its_waiters() -> None:
    obs = _observer()
    waiting = asyncio.create_task(obs.wait_for("x", timeout=5))
    await asyncio.sleep(0)
    await obs.__aexit__(None, None, None)
    with pytest.raises(DeviceError, match="observer_closed"):
        await waiting
