"""`tls_verified`: a client context verifies a server chain once per name and reuses the
verdict only for that very chain, that name and inside the chain's validity; everything else is
verified in full, with OpenSSL's errors as before. Real handshakes against Python `ssl` servers
in threads over socket pairs."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from fleetsim.device import tls_verified
from fleetsim.device.identity import DeviceIdentity
from fleetsim.device.tls_openssl import OpenSslContext, OpenSslDeviceTls
from fleetsim.pki import CertificateAuthority, certificate_pem, generate_key, private_key_pem

pytestmark = pytest.mark.timeout(30)
CA = CertificateAuthority.create("unit CA")


def device(context: OpenSslContext, name: str = "dev") -> OpenSslDeviceTls:
    key = generate_key()
    return context.device(DeviceIdentity("f", 0, name, "ec-p256", private_key_pem(key))
                          .with_certificate(certificate_pem(CA.issue_device(key.public_key()))))


def server(tmp_path: Path, authority: CertificateAuthority = CA,
           names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> ssl.SSLContext:
    cert, key = authority.issue_server(list(names))
    path = tmp_path / f"server-{cert.serial_number}.pem"
    path.write_bytes(certificate_pem(cert) + private_key_pem(key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(path)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=certificate_pem(CA.cert).decode())
    return ctx


def connect(tls: OpenSslDeviceTls, served: ssl.SSLContext, name: str = "localhost") -> None:
    """One handshake of `tls` with a server of `served` (raises as the handshake fails)."""
    a, b = socket.socketpair()
    b.settimeout(10)

    def run() -> None:
        try:
            with served.wrap_socket(b, server_side=True):
                pass
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    with a, b:
        tls.wrap_socket(a, server_hostname=name)
    thread.join(10)


@pytest.fixture
def context() -> OpenSslContext:
    ctx = OpenSslContext([CA.cert])
    assert ctx.verified_chains.installed  # located on this build: what the tests rely on
    return ctx


def test_the_same_chain_for_the_same_name_is_verified_once(context: OpenSslContext,
                                                           tmp_path: Path) -> None:
    served = server(tmp_path)
    for _ in range(3):
        connect(device(context), served)
    assert context.verified_chains.reused == 2


def test_another_name_is_verified_and_a_name_the_chain_lacks_still_fails(
        context: OpenSslContext, tmp_path: Path) -> None:
    served = server(tmp_path)
    connect(device(context), served, "localhost")
    connect(device(context), served, "127.0.0.1")
    assert context.verified_chains.reused == 0
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        connect(device(context), served, "other.example.com")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        connect(device(context), served, "other.example.com")
    connect(device(context), served, "localhost")
    assert context.verified_chains.reused == 1


def test_another_certificate_is_verified_in_full(context: OpenSslContext,
                                                 tmp_path: Path) -> None:
    connect(device(context), server(tmp_path))
    connect(device(context), server(tmp_path))  # a new certificate, same CA and names
    assert context.verified_chains.reused == 0
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        connect(device(context), server(tmp_path, CertificateAuthority.create("other CA")))
    assert context.verified_chains.reused == 0


def test_a_verdict_ends_with_the_validity_of_the_chain(context: OpenSslContext, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    served = server(tmp_path)
    connect(device(context), served)
    (start, end), = context.verified_chains._valid.values()
    assert end <= CA.cert.not_valid_after_utc.timestamp()
    monkeypatch.setattr(tls_verified.time, "time", lambda: end + 1)
    connect(device(context), served)  # verified in full (OpenSSL's clock is the real one)
    monkeypatch.setattr(tls_verified.time, "time", lambda: start - 1)
    connect(device(context), served)
    assert context.verified_chains.reused == 0
    monkeypatch.undo()
    connect(device(context), served)
    assert context.verified_chains.reused == 1


def test_where_the_callback_cannot_be_set_every_chain_is_verified(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls_verified.openssl_unbound, "set_cert_verify_callback",
                        lambda ctx, callback: False)
    context = OpenSslContext([CA.cert])
    assert not context.verified_chains.installed
    served = server(tmp_path)
    connect(device(context), served)
    connect(device(context), served)
    assert context.verified_chains.reused == 0
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        connect(device(context), served, "other.example.com")


def test_kept_verdicts_are_bounded(context: OpenSslContext, tmp_path: Path) -> None:
    for _ in range(tls_verified._CHAINS_KEPT + 2):
        connect(device(context), server(tmp_path))
    assert len(context.verified_chains._valid) == tls_verified._CHAINS_KEPT
