"""The openssl device TLS backend (`fleetsim/device/tls_openssl.py`, pyOpenSSL with each
device's key and certificate decoded once) against a real local core: sessions through paho
over TLS 1.2 and 1.3, the server verified as strictly as Python's ssl verifies it (trust
anchors, name), refusals classified as the stdlib path classifies them, reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fleetsim.device import DeviceError, DeviceIdentity, DeviceSession, Observer, ReconnectPolicy
from fleetsim.device.tls import DeviceTls, TlsContextFactory
from fleetsim.device.tls_openssl import OpenSslDeviceTls, TlsSocket, _ffi, _lib
from fleetsim.metrics import Metrics
from fleetsim.pki import CertificateAuthority, certificate_pem, generate_key, private_key_pem
from fleetsim.target import Target
from tests.integration.test_device_session import Provisioner, trusting_another_ca

pytestmark = pytest.mark.timeout(60)
VERSIONS = ["1.2", "1.3"]


@pytest.fixture(scope="module")
def prov(core: Any, tmp_path_factory: pytest.TempPathFactory) -> Provisioner:
    return Provisioner(core, tmp_path_factory.mktemp("tls-openssl"))


def openssl(target: Target, version: str | None = None) -> TlsContextFactory:
    return TlsContextFactory(target, version or "1.2", version,  # type: ignore[arg-type]
                             backend="openssl")


def session(prov: Provisioner, identity: DeviceIdentity, metrics: Metrics,
            factory: TlsContextFactory, **kwargs: Any) -> DeviceSession:
    tls = factory.device_tls(identity)
    assert isinstance(tls, OpenSslDeviceTls)
    return DeviceSession(identity, factory.target, metrics, tls=tls, timeout=5, **kwargs)


def tls_socket(s: DeviceSession) -> TlsSocket:
    sock = s.client._client.socket()
    assert isinstance(sock, TlsSocket)
    return sock


async def connect_error(prov: Provisioner, identity: DeviceIdentity,
                        factory: TlsContextFactory, metrics: Metrics) -> DeviceError:
    with pytest.raises(DeviceError) as caught:
        async with session(prov, identity, metrics, factory):
            pass
    return caught.value


@pytest.mark.parametrize("version", VERSIONS)
async def test_messages_larger_than_a_tls_record_go_both_ways(prov: Provisioner,
                                                             version: str) -> None:
    """A 40 KB payload spans three TLS records: the reader must drain what OpenSSL holds
    decoded (`pending`), which the socket's readiness no longer signals."""
    v = version.replace(".", "")
    sender, watcher = prov.device(f"ossl-sender-{v}"), prov.device(f"ossl-watcher-{v}")
    factory, metrics = openssl(prov.target, version), Metrics()
    payload = bytes(range(256)) * 160
    async with session(prov, watcher, metrics, factory) as w, Observer(w, ["big/#"]) as obs, \
            session(prov, sender, metrics, factory) as s:
        assert tls_socket(s).version() == f"TLSv{version}"
        await s.publish("big/one", payload, qos=1)
        await s.publish("big/two", b"small", qos=0)
        got = await obs.wait_for("big/one")
        small = await obs.wait_for("big/two")
    assert got.payload == payload and small.payload == b"small"
    assert metrics.total_errors() == 0


async def test_the_server_name_is_sent_and_verified(prov: Provisioner) -> None:
    """local core's certificate names 127.0.0.1 and localhost: `server_name` localhost is
    sent as SNI and verified; a name the certificate does not carry fails the handshake."""
    device, metrics = prov.device("ossl-sni"), Metrics()
    factory = openssl(prov.target)
    good = factory.device_tls(device)
    good.server_name = "localhost"
    async with DeviceSession(device, prov.target, metrics, tls=good, timeout=5) as s:
        await s.publish("sni/ok", b"{}", qos=1)
    wrong = factory.device_tls(device)
    wrong.server_name = "wrong.example.com"
    with pytest.raises(DeviceError) as caught:
        async with DeviceSession(device, prov.target, metrics, tls=wrong, timeout=5):
            pass
    assert caught.value.kind == "tls_server_untrusted"
    assert "hostname mismatch" in str(caught.value).lower()


async def test_a_server_of_another_ca_is_untrusted(prov: Provisioner, tmp_path: Path) -> None:
    device = prov.device("ossl-untrusted")
    wrong_ca = trusting_another_ca(prov.target, tmp_path)
    error = await connect_error(prov, device, openssl(wrong_ca), Metrics())
    assert error.kind == "tls_server_untrusted"
    assert "certificate verify failed" in str(error)


@pytest.mark.parametrize("version", VERSIONS)
async def test_refusals_are_classified_as_with_pythons_ssl(prov: Provisioner,
                                                          version: str) -> None:
    """As `test_device_session`: an inactive certificate is closed before CONNACK, one of an
    unknown CA is refused in TLS (under 1.3 the client notices only after its handshake)."""
    v = version.replace(".", "")
    factory = openssl(prov.target, version)
    inactive = prov.device(f"ossl-inactive-{v}", active=False)
    assert (await connect_error(prov, inactive, factory, Metrics())).kind == \
        "closed_before_connack"
    rogue, key = CertificateAuthority.create("rogue CA"), generate_key()
    stranger = DeviceIdentity("itest", 99, f"ossl-rogue-{v}", "ec-p256", private_key_pem(key)) \
        .with_certificate(certificate_pem(rogue.issue_device(key.public_key())))
    # Under 1.3 local core refuses the certificate after the client's handshake: when the
    # client's CONNECT is still unread there, closing makes the client's kernel see a reset,
    # which drops the alert before it is read (a race Python's ssl has alike).
    kinds = {"tls_refused"} if version == "1.2" else {"tls_refused", "closed_before_connack"}
    assert (await connect_error(prov, stranger, factory, Metrics())).kind in kinds


async def test_a_dropped_connection_reconnects_with_the_same_decoded_key(
        prov: Provisioner) -> None:
    device, metrics = prov.device("ossl-reconnect"), Metrics()
    async with session(prov, device, metrics, openssl(prov.target),
                       reconnect=ReconnectPolicy(base=0.05, cap=0.2)) as s:
        first = tls_socket(s)
        s.drop()
        async with asyncio.timeout(15):
            while not (s.reconnects >= 1 and s.connected):
                await asyncio.sleep(0.02)
        assert tls_socket(s) is not first
        await s.publish("again/x", b"{}", qos=1)


async def test_a_device_reconnecting_after_its_credentials_were_cleared_presents_its_own(
        prov: Provisioner) -> None:
    """The connection gives back the device's certificate and key once its handshake is done
    (SSL_certs_clear); a reconnect, after another device connected on the same context, must
    present this device's certificate again: local core names it in the presence event
    (principalIdentifier, the certificate id: "Connect/Disconnect events")."""
    factory, metrics = openssl(prov.target), Metrics()
    device, other = prov.device("ossl-cleared"), prov.device("ossl-cleared-other")
    presence = "$aws/events/presence/connected/"
    async with session(prov, prov.device("ossl-cleared-watch"), metrics, factory) as w, \
            Observer(w, [presence + "+"]) as obs, \
            session(prov, device, metrics, factory,
                    reconnect=ReconnectPolicy(base=0.05, cap=0.2)) as s:
        first = await obs.wait_for(presence + device.thing_name)
        assert first.data["principalIdentifier"] == device.certificate_id
        assert _lib.SSL_get_certificate(tls_socket(s)._conn._ssl) == _ffi.NULL
        async with session(prov, other, metrics, factory):
            pass
        since = first.seq + 1
        for reconnects in (1, 2):  # decoded again, then kept
            s.drop()
            again = await obs.wait_for(presence + device.thing_name, since=since)
            assert again.data["principalIdentifier"] == device.certificate_id
            since = again.seq + 1
            async with asyncio.timeout(15):
                while not (s.reconnects >= reconnects and s.connected):
                    await asyncio.sleep(0.02)
            assert _lib.SSL_get_certificate(tls_socket(s)._conn._ssl) == _ffi.NULL
            await s.publish("again/x", b"{}", qos=1)


async def test_a_certificate_chain_stays_with_pythons_ssl(prov: Provisioner) -> None:
    """pyOpenSSL cannot add chain certificates to one connection: an identity whose PEM
    carries a chain (a device of a registered CA presenting it) keeps the stdlib path."""
    device = prov.device("ossl-chain")
    assert device.certificate_pem is not None
    chained = device.with_certificate(device.certificate_pem + b"\n" + certificate_pem(
        CertificateAuthority.create("intermediate").cert))
    assert isinstance(openssl(prov.target).device_tls(chained), DeviceTls)
