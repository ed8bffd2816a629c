"""DeviceSession and Observer over real TLS sockets against a local core process, provisioned
through its AWS-compatible API with boto3, as a user would against AWS IoT."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetsim.device import (
    DeviceError,
    DeviceIdentity,
    DeviceSession,
    IdentityStore,
    Observer,
    TlsContextFactory,
    transport,
)
from fleetsim.device.payload import encode
from fleetsim.device.source_ports import SourcePorts
from fleetsim.metrics import Metrics
from fleetsim.pki import CertificateAuthority, certificate_pem, generate_key, private_key_pem
from fleetsim.target import Target
from tests.helpers import ALLOW_ALL_DOCUMENT, aws_client

pytestmark = pytest.mark.timeout(60)


class Provisioner:
    def __init__(self, core: Any, tmp: Path):
        self.iot = aws_client(core.api_url, max_attempts=None)
        self.store = IdentityStore(tmp / "identities", "itest")
        self.target = Target.local(core.api_url, core.mqtt_host, core.mqtt_port, core.root_ca)
        self._policies: dict[str, str] = {}
        self._index = 0

    def policy(self, document: dict[str, Any]) -> str:
        key = json.dumps(document, sort_keys=True)
        if key not in self._policies:
            name = f"policy-{len(self._policies)}"
            self.iot.create_policy(policyName=name, policyDocument=key)
            self._policies[key] = name
        return self._policies[key]

    def device(self, name: str, policy: dict[str, Any] | None = ALLOW_ALL_DOCUMENT,
               active: bool = True) -> DeviceIdentity:
        self.iot.create_thing(thingName=name)
        cert = self.iot.create_keys_and_certificate(setAsActive=active)
        if policy is not None:
            self.iot.attach_policy(policyName=self.policy(policy),
                                   target=cert["certificateArn"])
        self.iot.attach_thing_principal(thingName=name, principal=cert["certificateArn"])
        self._index += 1
        identity = DeviceIdentity("itest", self._index, name, "ec-p256",
                                  cert["keyPair"]["PrivateKey"].encode())
        return self.store.save(identity.with_certificate(cert["certificatePem"],
                                                         cert["certificateArn"]))


@pytest.fixture
def prov(local_core: Any, tmp_path: Path) -> Iterator[Provisioner]:
    yield Provisioner(local_core, tmp_path)


def session(prov: Provisioner, identity: DeviceIdentity, metrics: Metrics,
            **kwargs: Any) -> DeviceSession:
    tls = TlsContextFactory(prov.target, **kwargs).for_identity(identity)
    return DeviceSession(identity, prov.target, metrics, tls=tls, timeout=5)


async def refused(prov: Provisioner, identity: DeviceIdentity, metrics: Metrics,
                  tls_version: str) -> DeviceError:
    """The DeviceError that connecting `identity` over TLS `tls_version` only must raise."""
    with pytest.raises(DeviceError) as caught:
        async with session(prov, identity, metrics, min_version=tls_version,
                           max_version=tls_version):
            pass
    return caught.value


async def test_publish_is_observed_with_end_to_end_latency(prov: Provisioner) -> None:
    sender, watcher = prov.device("sensor-1"), prov.device("watcher-1")
    metrics = Metrics()
    async with session(prov, watcher, metrics) as w, Observer(w, ["dt/#"]) as obs:
        async with session(prov, prov.store.load("sensor-1"), metrics) as s:
            assert metrics.gauges["devices.connected"] == 2
            await s.publish("dt/telemetry/x", encode({"device": "sensor-1", "seq": 1},
                                                     stamp=True), qos=1)
            await s.publish("other/topic", b"not seen", qos=1)
            await s.publish("dt/raw", b"\x00not json", qos=0)
        got = await obs.wait_for("dt/telemetry/+", lambda m: m.data["seq"] == 1)
        raw = await obs.wait_for("dt/raw")
    assert got.data["device"] == "sensor-1" and got.topic == "dt/telemetry/x"
    assert raw.data is None and raw.payload == b"\x00not json"
    assert [m.topic for m in obs.matching()] == ["dt/telemetry/x", "dt/raw"]
    assert metrics.histogram("mqtt.connect").count == 2
    assert metrics.histogram("mqtt.publish").count == 3
    assert metrics.histogram("mqtt.subscribe").count == 1
    assert metrics.histogram("e2e").count == 1
    assert metrics.counters["messages.received"] == 2
    assert metrics.gauges["devices.connected"] == 0
    assert metrics.total_errors() == 0
    assert sender.certificate_id and len(sender.certificate_id) == 64


async def test_lifecycle_events_are_observed(prov: Provisioner) -> None:
    watcher, device = prov.device("watcher-2"), prov.device("device-2")
    metrics = Metrics()
    async with session(prov, watcher, metrics) as w, \
            Observer(w, ["$aws/events/presence/+/device-2"]) as obs:
        async with session(prov, device, metrics):
            event = await obs.wait_for("$aws/events/presence/connected/device-2")
        gone = await obs.wait_for("$aws/events/presence/disconnected/#", since=event.seq + 1)
    assert event.data["clientId"] == "device-2" and event.data["eventType"] == "connected"
    assert gone.data["eventType"] == "disconnected"


async def test_wait_for_times_out_naming_what_it_saw(prov: Provisioner) -> None:
    watcher = prov.device("watcher-3")
    async with session(prov, watcher, Metrics()) as w, Observer(w, ["a/#"]) as obs:
        await w.publish("a/b", b"{}", qos=1)
        await obs.wait_for("a/b")
        with pytest.raises(TimeoutError, match=r"a/c.*seen since then: a/b"):
            await obs.wait_for("a/c", timeout=0.3)


async def test_denied_qos1_publish_fails_as_disconnected_by_server(prov: Provisioner) -> None:
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
        {"Effect": "Allow", "Action": "iot:Publish",
         "Resource": "arn:aws:iot:us-east-1:*:topic/allowed/*"}]}
    device = prov.device("limited-1", policy)
    metrics = Metrics()
    async with session(prov, device, metrics) as s:
        await s.publish("allowed/x", b"{}", qos=1)
        with pytest.raises(DeviceError) as caught:
            await s.publish("denied/x", b"{}", qos=1)
        assert caught.value.kind == "disconnected_by_server"
        assert not s.connected
        with pytest.raises(DeviceError, match="disconnected_by_server"):
            await s.publish("allowed/x", b"{}")
    [entry] = [e for e in metrics.snapshot()["ops"] if e["op"] == "mqtt.publish"]
    assert entry["errors"] == {"disconnected_by_server": 2}
    assert entry["latency_us"]["count"] == 1
    assert metrics.gauges["devices.connected"] == 0


async def test_denied_qos0_publish_counts_the_disconnect_once(prov: Provisioner) -> None:
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
    device = prov.device("limited-2", policy)
    metrics = Metrics()
    async with session(prov, device, metrics) as s:
        await s.publish("denied/x", b"{}", qos=0)
        assert await asyncio.wait_for(s.wait_closed(), 5) == "disconnected_by_server"
    [entry] = [e for e in metrics.snapshot()["ops"] if e["op"] == "mqtt.publish"]
    assert entry["errors"] == {"disconnected_by_server": 1}


@pytest.mark.parametrize("tls_version", ["1.2", "1.3"])
async def test_inactive_certificate_is_closed_before_connack(prov: Provisioner,
                                                             tls_version: str) -> None:
    device = prov.device(f"inactive-{tls_version.replace('.', '')}", active=False)
    metrics = Metrics()
    error = await refused(prov, device, metrics, tls_version)
    assert error.kind == "closed_before_connack"
    assert metrics.snapshot()["ops"][0]["errors"] == {"closed_before_connack": 1}
    assert metrics.gauges.get("devices.connected", 0) == 0


@pytest.mark.parametrize("tls_version", ["1.2", "1.3"])
async def test_certificate_of_unknown_ca_is_refused_in_tls(prov: Provisioner, tmp_path: Path,
                                                           tls_version: str) -> None:
    rogue = CertificateAuthority.create("rogue CA")
    key = generate_key()
    identity = DeviceIdentity("itest", 99, "rogue", "ec-p256", private_key_pem(key)) \
        .with_certificate(certificate_pem(rogue.issue_device(key.public_key())))
    metrics = Metrics()
    error = await refused(prov, identity, metrics, tls_version)
    assert error.kind == "tls_refused"


def trusting_another_ca(target: Target, tmp_path: Path) -> Target:
    """`target` with a CA file of another CA, which local core's certificate does not chain to."""
    other_root = tmp_path / "other-root.pem"
    other_root.write_bytes(certificate_pem(CertificateAuthority.create("other").cert))
    return Target.local(target.api_url or "", target.mqtt_host, target.mqtt_port, other_root)


async def test_untrusted_server_and_closed_port(prov: Provisioner, tmp_path: Path) -> None:
    device = prov.device("device-4")
    wrong_ca = trusting_another_ca(prov.target, tmp_path)
    metrics = Metrics()
    untrusted = DeviceSession(device, wrong_ca, metrics, timeout=5)
    with pytest.raises(DeviceError) as caught:
        async with untrusted:
            pass
    assert caught.value.kind == "tls_server_untrusted"
    assert not untrusted.connected
    assert await untrusted.wait_closed() == "tls_server_untrusted"
    with pytest.raises(DeviceError, match="not_connected"):
        await untrusted.publish("a/b", b"")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    nobody = Target.local("", "127.0.0.1", closed_port, prov.target.server_ca_file)
    with pytest.raises(DeviceError) as caught:
        async with DeviceSession(device, nobody, metrics, timeout=5):
            pass
    assert caught.value.kind == "connection_refused"
    errors = {e["op"]: e["errors"] for e in metrics.snapshot()["ops"]}
    assert errors == {"mqtt.connect": {"connection_refused": 1, "tls_server_untrusted": 1},
                      "mqtt.publish": {"not_connected": 1}}


def local_port(s: DeviceSession) -> int:
    sock = s.client._client.socket()
    assert sock is not None
    with socket.socket(fileno=os.dup(sock.fileno())) as dup:
        return int(dup.getsockname()[1])


async def test_devices_take_their_local_ports_in_turn(prov: Provisioner,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`source_ports`: not the kernel's search at connect(), which slows down as a process's
    connections fill its ephemeral range; a port another socket holds is skipped."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    low = holder.getsockname()[1]
    high = min(low + 500, 65535)
    ports = SourcePorts(low, high)
    ports._next = 0
    monkeypatch.setattr(transport, "_source_ports", ports)
    metrics = Metrics()
    try:
        async with session(prov, prov.device("port-1"), metrics) as a, \
                session(prov, prov.device("port-2"), metrics) as b:
            taken = [local_port(a), local_port(b)]
    finally:
        holder.close()
    assert low < taken[0] < taken[1] <= high  # `low` was held: skipped
    assert metrics.total_errors() == 0
