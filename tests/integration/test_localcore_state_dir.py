"""A state dir whose CA files no longer fit together: local core refuses to start when the root
CA is incomplete (naming the file and the way out), and issues a new server certificate when
the old one was not issued by the root; checked with real TLS handshakes."""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
from pathlib import Path

import pytest

from fleetsim.errors import UserError
from fleetsim.localcore.ca import LocalCA
from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.pki import certificate_pem, load_certificate
from tests.conftest import start_core
from tests.helpers import aws_client


def mutual_tls_handshake(core: RunningLocalCore) -> None:
    """A device made through the API shakes hands with the broker, trusting only the root CA
    local core hands out (raises ssl.SSLError if the server's certificate does not verify)."""
    out = aws_client(core.api_url).create_keys_and_certificate(setAsActive=True)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "d.crt", Path(tmp) / "d.key"
        cert.write_text(out["certificatePem"])
        key.write_text(out["keyPair"]["PrivateKey"])
        ctx = ssl.create_default_context(cafile=str(core.root_ca))
        ctx.load_cert_chain(cert, key)
    with socket.create_connection((core.mqtt_host, core.mqtt_port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() is not None


@pytest.fixture
def used_state_dir(tmp_path: Path) -> Path:
    """A state dir a local core has run in (and made its CA in)."""
    core = start_core(tmp_path / "core")
    mutual_tls_handshake(core)
    core.stop()
    return tmp_path / "core"


@pytest.mark.parametrize("missing, there", [("root-ca.key", "root.ca.bundle.pem"),
                                            ("root.ca.bundle.pem", "root-ca.key")])
def test_missing_half_of_the_root_is_refused(used_state_dir: Path, missing: str,
                                             there: str) -> None:
    (used_state_dir / missing).unlink()
    with pytest.raises(UserError) as refused:
        start_core(used_state_dir)
    assert str(refused.value) == (
        f"the state dir {used_state_dir} is inconsistent: {missing} is missing but {there} is "
        "there, and local core cannot issue or verify certificates without both; put "
        f"{missing} back, or delete the state dir {used_state_dir} to start afresh (its "
        "things and certificates are then lost)")
    assert not (used_state_dir / missing).exists()  # nothing minted in its place


def test_server_certificate_without_its_root_is_refused(used_state_dir: Path) -> None:
    (used_state_dir / "root-ca.key").unlink()
    (used_state_dir / "root.ca.bundle.pem").unlink()
    with pytest.raises(UserError, match=r"root.ca.bundle.pem and root-ca.key are missing but "
                                        r"server.pem \(issued by them\) is there"):
        start_core(used_state_dir)


def test_foreign_root_gets_a_server_certificate_of_its_own(used_state_dir: Path,
                                                           tmp_path: Path) -> None:
    """The root pair replaced by another consistent one (e.g. restored from elsewhere): the
    server's certificate, issued by the old root, is issued anew by this one."""
    other = start_core(tmp_path / "other")
    other.stop()
    for name in ("root-ca.key", "root.ca.bundle.pem"):
        shutil.copy(tmp_path / "other" / name, used_state_dir / name)
    core = start_core(used_state_dir)
    try:
        mutual_tls_handshake(core)
    finally:
        core.stop()


def test_lost_server_key_is_issued_anew(used_state_dir: Path) -> None:
    (used_state_dir / "server.key").unlink()
    core = start_core(used_state_dir)
    try:
        mutual_tls_handshake(core)
    finally:
        core.stop()


def test_a_server_certificate_stored_with_its_root_is_issued_anew_alone(tmp_path: Path) -> None:
    """Older state dirs kept the root after the server certificate in server.pem (and the
    broker sent both); the server certificate is issued anew, alone, by the same root."""
    state = tmp_path / "core"
    ca = LocalCA.load_or_create(state)
    root = certificate_pem(ca.authority.cert)
    ca.server_cert_path.write_bytes(ca.server_cert_path.read_bytes() + root)
    again = LocalCA.load_or_create(state)
    pem = again.server_cert_path.read_bytes()
    assert pem.count(b"-----BEGIN CERTIFICATE-----") == 1
    load_certificate(pem).verify_directly_issued_by(ca.authority.cert)
    assert certificate_pem(again.authority.cert) == root
