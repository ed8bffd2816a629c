"""The broker's server TLS on both backends (pyOpenSSL, the default, and Python's ssl,
`FLEETSIM_LOCAL_TLS=stdlib`): the same handshakes, refusals, trust anchors and streams, over
real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from fleetsim.errors import UserError
from fleetsim.localcore.broker import codec
from fleetsim.localcore.broker.handshake import UNKNOWN_CA
from fleetsim.localcore.servertls import BACKENDS, TLS_ENV, add_trust_anchor, backend
from fleetsim.pki import CertificateAuthority, certificate_pem
from tests.mqtt_testing import (
    Env,
    RawClient,
    client_hello,
    issue_device,
    running_broker,
    subscribe,
)

pytestmark = pytest.mark.timeout(30)
VERSIONS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)


@pytest.fixture(params=BACKENDS)
async def tls_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with running_broker(tmp_path, request.param) as running:
        yield running


def pinned(ctx: ssl.SSLContext, version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


async def open_tls(env: Env, ctx: ssl.SSLContext, server_hostname: str = "localhost",
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", env.port, ssl=ctx,
                                         server_hostname=server_hostname)


async def connection_of(env: Env) -> object:
    for _ in range(300):
        if env.broker.connections:
            return next(iter(env.broker.connections))
        await asyncio.sleep(0.01)
    raise AssertionError("no connection reached the broker")


@pytest.mark.parametrize("version", VERSIONS, ids=("tls1.2", "tls1.3"))
async def test_a_device_connects_with_alpn_sni_and_an_aead_suite(tls_env: Env, version):
    device = tls_env.device("dev")
    ctx = pinned(device.ssl_context(), version)
    ctx.set_alpn_protocols(["x-amzn-mqtt-ca"])
    reader, writer = await open_tls(tls_env, ctx)
    writer.write(codec.encode_connect("dev", 60))
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"\x20\x02\x00\x00"
    tls = writer.get_extra_info("ssl_object")
    assert tls.version() == {VERSIONS[0]: "TLSv1.2", VERSIONS[1]: "TLSv1.3"}[version]
    assert tls.selected_alpn_protocol() == "x-amzn-mqtt-ca"
    assert "GCM" in tls.cipher()[0]
    assert tls.cipher()[0].startswith(("ECDHE-", "TLS_"))
    conn = tls_env.broker.clients["dev"]
    assert conn.cert_der == device.cert_der
    server_side = conn.transport.get_extra_info("ssl_object")
    assert server_side.server_name_indication == "localhost"  # JITP/JITR need it
    writer.close()


async def test_alpn_mqtt_is_chosen_when_offered_alone(tls_env: Env):
    ctx = tls_env.device("dev").ssl_context()
    ctx = pinned(ctx, ssl.TLSVersion.TLSv1_3)
    ctx.set_alpn_protocols(["mqtt"])
    _, writer = await open_tls(tls_env, ctx)
    assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "mqtt"
    writer.close()


@pytest.mark.parametrize("version", VERSIONS, ids=("tls1.2", "tls1.3"))
async def test_an_unknown_ca_is_refused_with_an_alert_and_logged(
        tls_env: Env, version, caplog: pytest.LogCaptureFixture):
    stranger = CertificateAuthority.create("not registered anywhere")
    device = issue_device(tls_env.tmp, "stranger", stranger, tls_env.ca.root_ca_path)
    with caplog.at_level(logging.WARNING, "fleetsim.localcore.broker"):
        with pytest.raises((ssl.SSLError, ConnectionError)) as refused:
            reader, writer = await open_tls(tls_env, pinned(device.ssl_context(), version))
            writer.write(codec.encode_connect("stranger", 60))
            if not await asyncio.wait_for(reader.read(4), 5):  # TLS 1.3: the alert comes after
                raise ConnectionError("closed")
        if tls_env.broker.ssl_context.__class__ is not ssl.SSLContext:
            # pyOpenSSL's path always sends the alert before closing (Python's: the reset of
            # its abort can overtake it); devices classify it as an unknown CA.
            assert "UNKNOWN_CA" in str(refused.value)
        for _ in range(100):
            if tls_env.broker.handshakes.refusals.refused:
                break
            await asyncio.sleep(0.02)
    assert any(f"refused: {UNKNOWN_CA} (" in r.getMessage() for r in caplog.records)
    assert not tls_env.broker.connections


async def test_a_client_without_a_certificate_is_refused_and_logged(
        tls_env: Env, caplog: pytest.LogCaptureFixture):
    ctx = ssl.create_default_context(cafile=str(tls_env.ca.root_ca_path))
    with caplog.at_level(logging.WARNING, "fleetsim.localcore.broker"):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            reader, _ = await open_tls(tls_env, pinned(ctx, ssl.TLSVersion.TLSv1_2))
            await asyncio.wait_for(reader.read(4), 5)
            raise ConnectionError("closed")
        for _ in range(100):
            if tls_env.broker.handshakes.refusals.refused:
                break
            await asyncio.sleep(0.02)
    assert any("the client sent no certificate" in r.getMessage() for r in caplog.records)


async def test_trust_anchors_added_while_running_serve_later_handshakes(tls_env: Env):
    """A registered CA, and a CA-less registered leaf trusted on its own (partial chain)."""
    registered = CertificateAuthority.create("registered later")
    device = issue_device(tls_env.tmp, "late", registered, tls_env.ca.root_ca_path)
    tls_env.authority.register(device)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        reader, _ = await open_tls(tls_env, device.ssl_context())
        if not await asyncio.wait_for(reader.read(4), 5):
            raise ConnectionError("closed")
    add_trust_anchor(tls_env.broker.ssl_context, certificate_pem(registered.cert).decode())
    client = await RawClient.open(tls_env.port, device)
    assert (await client.connect("late"))[1] == b"\x00\x00"
    await client.close()

    loner = CertificateAuthority.create("a leaf's issuer nobody registers")
    leaf = issue_device(tls_env.tmp, "loner", loner, tls_env.ca.root_ca_path)
    tls_env.authority.register(leaf)
    add_trust_anchor(tls_env.broker.ssl_context, leaf.cert_path.read_text())
    client = await RawClient.open(tls_env.port, leaf)
    assert (await client.connect("loner"))[1] == b"\x00\x00"
    await client.close()


async def test_a_silent_handshake_times_out_and_is_logged(
        tls_env: Env, caplog: pytest.LogCaptureFixture):
    await tls_env.broker.stop()
    tls_env.broker.handshake_timeout = 0.3
    tls_env.port = await tls_env.broker.start("127.0.0.1", 0)
    with caplog.at_level(logging.WARNING, "fleetsim.localcore.broker"):
        reader, writer = await asyncio.open_connection("127.0.0.1", tls_env.port)
        writer.write(client_hello())
        while await asyncio.wait_for(reader.read(65536), 5):
            pass  # the server's flight, then the close
        writer.close()
    assert any("TLS handshake timed out" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("version", VERSIONS, ids=("tls1.2", "tls1.3"))
async def test_large_packets_cross_many_records_both_ways(tls_env: Env, version):
    device = tls_env.device("big")
    reader, writer = await open_tls(tls_env, pinned(device.ssl_context(), version))
    client = RawClient(reader, writer)
    assert (await client.connect("big"))[1] == b"\x00\x00"
    await subscribe(client, ("big/t", 0))
    payload = bytes(range(256)) * 400  # 100 KiB: several TLS records each way
    await client.send(codec.publish(codec.encode_topic("big/t"), payload, qos=0))
    kind, body = await client.read(timeout=5)
    assert kind == 0x30 and body.endswith(payload)
    await client.close()


async def test_the_client_closing_ends_the_connection_and_a_drop_reaches_the_client(
        tls_env: Env):
    first = await tls_env.raw(tls_env.device("one"))
    await first.close()
    for _ in range(200):
        if not tls_env.broker.connections:
            break
        await asyncio.sleep(0.01)
    assert not tls_env.broker.connections
    second = await tls_env.raw(tls_env.device("two"))
    tls_env.broker.clients["two"].drop("server")
    assert await second.read() is None  # close_notify, then EOF


@pytest.mark.parametrize("version", VERSIONS, ids=("tls1.2", "tls1.3"))
async def test_no_session_is_resumed_and_no_ticket_is_sent(tls_env: Env, version):
    ctx = pinned(tls_env.device("dev").ssl_context(), version)

    def handshake(session: ssl.SSLSession | None) -> tuple[ssl.SSLSession | None, bool]:
        with socket.create_connection(("127.0.0.1", tls_env.port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            tls.sendall(codec.encode_connect("dev", 60))
            tls.recv(4)  # TLS 1.3: tickets, if any, come before the CONNACK
            return tls.session, tls.session_reused

    loop = asyncio.get_running_loop()
    # Python's ssl cannot turn its server session cache and TLS 1.2 tickets off: it resumes
    # there.
    python_tls12 = (tls_env.broker.ssl_context.__class__ is ssl.SSLContext
                    and version == ssl.TLSVersion.TLSv1_2)
    session, _ = await loop.run_in_executor(None, handshake, None)
    # AWS IoT documents no session resumption ("Transport security in AWS IoT Core"): no
    # ticket, which a client would keep and never use.
    assert session is not None and (not session.has_ticket or python_tls12)
    _, reused = await loop.run_in_executor(None, handshake, session)
    assert not reused or python_tls12


async def test_the_server_certificate_is_presented_without_the_root(tls_env: Env):
    """Clients hold the root already; one sent along is a certificate each decodes and keeps for
    the connection's life (what Python's ssl server sends is its own choice: it builds the
    chain from its trust store)."""
    device = tls_env.device("dev")
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.use_certificate_file(str(device.cert_path))
    ctx.use_privatekey_file(str(device.key_path))
    ctx.load_verify_locations(str(tls_env.ca.root_ca_path))
    ctx.set_verify(SSL.VERIFY_PEER)

    def presented() -> list[bytes]:
        with socket.create_connection(("127.0.0.1", tls_env.port), timeout=5) as raw:
            raw.settimeout(None)  # pyOpenSSL drives a blocking socket only
            tls = SSL.Connection(ctx, raw)
            tls.set_connect_state()
            tls.set_tlsext_host_name(b"localhost")
            tls.do_handshake()
            chain = tls.get_peer_cert_chain(as_cryptography=True) or []
            return [c.public_bytes(Encoding.DER) for c in chain]

    chain = await asyncio.get_running_loop().run_in_executor(None, presented)
    root = tls_env.ca.authority.cert.public_bytes(Encoding.DER)
    assert chain and chain[0] != root
    assert chain[1:] == ([] if tls_env.broker.ssl_context.__class__ is SSL.Context else [root])


def test_the_backend_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(TLS_ENV, raising=False)
    assert backend() == "openssl"
    monkeypatch.setenv(TLS_ENV, "STDLIB")
    assert backend() == "stdlib"
    monkeypatch.setenv(TLS_ENV, "gnutls")
    with pytest.raises(UserError, match=r"\$FLEETSIM_LOCAL_TLS is 'gnutls'; it must be openssl"):
        backend()
