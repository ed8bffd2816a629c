"""`tls_openssl`: a pyOpenSSL connection as paho's `SSLSocket`, against a Python `ssl` server
in a thread over a socket pair: ends of a connection and verification failures surface as
Python's ssl raises them (and are classified alike), and a key that does not match its
certificate is one clear sentence."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from OpenSSL import SSL, crypto

from fleetsim.device import tls_openssl
from fleetsim.device.errors import connect_failure_kind
from fleetsim.device.identity import DeviceIdentity, IdentityDamaged, IdentityStore
from fleetsim.device.tls import single_certificate
from fleetsim.device.tls_openssl import (
    OpenSslContext,
    OpenSslDeviceTls,
    TlsSocket,
    _ffi,
    _lib,
    _translated,
)
from fleetsim.pki import CertificateAuthority, certificate_pem, generate_key, private_key_pem

pytestmark = pytest.mark.timeout(30)
CA = CertificateAuthority.create("unit CA")


def identity(name: str = "dev") -> DeviceIdentity:
    key = generate_key()
    return DeviceIdentity("f", 0, name, "ec-p256", private_key_pem(key)).with_certificate(
        certificate_pem(CA.issue_device(key.public_key())))


@pytest.fixture
def server_context(tmp_path: Path) -> ssl.SSLContext:
    cert, key = CA.issue_server(["localhost"])
    (tmp_path / "s.pem").write_bytes(certificate_pem(cert) + private_key_pem(key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "s.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=certificate_pem(CA.cert).decode())
    return ctx


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    yield a, b
    a.close()
    b.close()


def serve(ctx: ssl.SSLContext, sock: socket.socket,
          then: Callable[[ssl.SSLSocket], None]) -> threading.Thread:
    def run() -> None:
        try:
            tls = ctx.wrap_socket(sock, server_side=True)
            then(tls)
        except OSError:  # ssl.SSLError included: the client's side is what is tested
            return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def client(pair: tuple[socket.socket, socket.socket], name: str = "localhost") -> TlsSocket:
    return client_of(OpenSslContext([CA.cert]).device(identity()), pair, name)


def client_of(device: OpenSslDeviceTls, pair: tuple[socket.socket, socket.socket],
              name: str = "localhost") -> TlsSocket:
    sock = pair[0]
    sock.setblocking(True)
    return device.wrap_socket(sock, server_hostname=name)


def test_one_certificate_takes_this_path_and_a_chain_does_not() -> None:
    one = identity().certificate_pem
    assert one is not None
    assert single_certificate(one)
    assert single_certificate(b"\n" + one + b"\n\n")
    assert not single_certificate(one + one)
    assert not single_certificate(one + b"\n" + certificate_pem(CA.cert))


def test_data_both_ways_and_close_notify_reads_as_the_end(
        server_context: ssl.SSLContext, pair: tuple[socket.socket, socket.socket]) -> None:
    def echo_then_close(tls: ssl.SSLSocket) -> None:
        tls.sendall(tls.recv(100).upper())
        tls.unwrap()  # close_notify

    thread = serve(server_context, pair[1], echo_then_close)
    tls = client(pair)
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    tls.sendall(b"hello")
    assert tls.recv(100) == b"HELLO"
    assert tls.recv(100) == b""
    thread.join(10)


def test_a_drop_without_close_notify_is_an_eof_error_as_with_pythons_ssl(
        server_context: ssl.SSLContext, pair: tuple[socket.socket, socket.socket]) -> None:
    def drop(tls: ssl.SSLSocket) -> None:
        tls.recv(100)
        socket.socket(fileno=tls.detach()).close()  # no close_notify

    thread = serve(server_context, pair[1], drop)
    tls = client(pair)
    tls.sendall(b"x")
    with pytest.raises(ssl.SSLEOFError) as caught:
        tls.recv(100)
    assert connect_failure_kind(str(caught.value)) == "tls_refused"
    thread.join(10)


@pytest.mark.parametrize("name", ["other.example.com", "127.0.0.1"])
def test_a_server_certificate_for_another_name_fails_the_handshake(
        server_context: ssl.SSLContext, pair: tuple[socket.socket, socket.socket],
        name: str) -> None:
    serve(server_context, pair[1], lambda tls: None)
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        client(pair, name)
    assert "mismatch" in str(caught.value)
    assert connect_failure_kind(str(caught.value)) == "tls_server_untrusted"


def test_a_server_of_an_untrusted_ca_fails_the_handshake(
        pair: tuple[socket.socket, socket.socket], tmp_path: Path) -> None:
    other = CertificateAuthority.create("other CA")
    cert, key = other.issue_server(["localhost"])
    (tmp_path / "o.pem").write_bytes(certificate_pem(cert) + private_key_pem(key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "o.pem")
    serve(ctx, pair[1], lambda tls: None)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        client(pair)


def test_a_stored_key_that_does_not_parse_is_named_when_its_tls_is_prepared(
        tmp_path: Path) -> None:
    """The store checks a key's PEM armour only; the openssl backend decodes it when the
    device's TLS is prepared, and names the file in one sentence."""
    store = IdentityStore(tmp_path, "f")
    store.directory.mkdir(parents=True)
    saved = store.save(identity("dev-0"))
    assert saved.key_path is not None
    body = base64.encodebytes(bytes(range(121))).decode()
    saved.key_path.write_text(f"-----BEGIN EC PRIVATE KEY-----\n{body}"
                              "-----END EC PRIVATE KEY-----\n")
    with pytest.raises(IdentityDamaged) as caught:
        OpenSslContext([CA.cert]).device(store.load("dev-0"))
    assert str(caught.value).startswith(
        f"stored identity file {saved.key_path} or its certificate is not a readable PEM")


def test_a_key_that_is_not_the_certificates_is_one_sentence(
        pair: tuple[socket.socket, socket.socket]) -> None:
    mine, other = identity("a"), identity("b")
    assert other.certificate_pem is not None
    swapped = mine.with_certificate(other.certificate_pem)
    tls = OpenSslContext([CA.cert]).device(swapped)
    with pytest.raises(ssl.SSLError, match="certificate does not match its private key"):
        tls.wrap_socket(pair[0], server_hostname="localhost")


@pytest.mark.parametrize(("error", "raised"), [
    (SSL.WantReadError(), ssl.SSLWantReadError),
    (SSL.WantWriteError(), ssl.SSLWantWriteError),
    (SSL.SysCallError(-1, "Unexpected EOF"), ssl.SSLEOFError),
    (SSL.SysCallError(104, "ECONNRESET"), OSError),
])
def test_pyopenssl_errors_become_pythons_ssl_errors(error: SSL.Error,
                                                    raised: type[OSError]) -> None:
    conn = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    translated = _translated(error, conn)
    assert isinstance(translated, raised)
    assert not isinstance(translated, ssl.SSLEOFError) or raised is ssl.SSLEOFError


def test_a_device_sends_its_certificate_without_a_chain_built_from_the_trust_anchors(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket]) -> None:
    # The device's issuer is also the server's (as with local core): OpenSSL would append it
    # to the device's Certificate message, verifying the device's own certificate to build it.
    cert, key = CA.issue_server(["localhost"])
    server = SSL.Context(SSL.TLS_SERVER_METHOD)
    server.use_certificate(cert)
    server.use_privatekey(key)
    server.get_cert_store().add_cert(crypto.X509.from_cryptography(CA.cert))  # type: ignore[union-attr]
    server.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
    seen: list[object] = []

    pair[1].setblocking(True)

    def run() -> None:
        conn = SSL.Connection(server, pair[1])
        conn.set_accept_state()
        conn.do_handshake()
        seen.append(conn.get_peer_certificate())
        seen.append(conn.get_peer_cert_chain())  # server side: what the client sent after its leaf

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    tls = client(pair)
    tls.do_handshake()
    thread.join(10)
    assert seen and seen[0] is not None
    assert not seen[1]


def test_a_connection_drops_the_device_credentials_after_its_handshake_and_the_next_connect_presents_them_again(  # noqa: E501
        server_context: ssl.SSLContext) -> None:
    """The decoded certificate goes with the first connection and is cleared from it once the
    handshake is done (SSL_certs_clear); every later connect decodes it again from the PEM."""
    mine = identity("again")
    assert mine.certificate_pem is not None
    own = ssl.PEM_cert_to_DER_cert(mine.certificate_pem.decode())
    device = OpenSslContext([CA.cert]).device(mine)
    seen: list[bytes | None] = []
    for connect in range(3):
        a, b = socket.socketpair()
        b.settimeout(10)
        thread = serve(server_context, b, lambda tls: seen.append(tls.getpeercert(True)))
        with a, b:
            tls = device.wrap_socket(a, server_hostname="localhost")
            thread.join(10)
            assert seen == [own] * (connect + 1)
            assert tls._conn._ssl is not None
            assert _lib.SSL_get_certificate(tls._conn._ssl) == _ffi.NULL


def test_where_ssl_certs_clear_cannot_be_located_a_device_keeps_its_credentials(
        server_context: ssl.SSLContext, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls_openssl, "_certs_clear", lambda: None)
    context = OpenSslContext([CA.cert])
    assert not context.sheds_credentials
    device = context.device(identity("kept"))
    serve(server_context, pair[1], lambda tls: None)
    tls = client_of(device, pair)
    assert _lib.SSL_get_certificate(tls._conn._ssl) != _ffi.NULL
    assert device._cert is not None and device._key is not None
