"""Local core's own root CA (the stand-in for Amazon Root CA 1) and the broker's TLS identity."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from fleetsim.errors import UserError
from fleetsim.pki import (
    CertificateAuthority,
    certificate_pem,
    load_certificate,
    load_private_key,
    private_key_pem,
    public_key_id,
    write_private,
)

ROOT_CA_FILE = "root.ca.bundle.pem"  # the name the workshop gives the server CA bundle
ROOT_KEY_FILE = "root-ca.key"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"
SERVER_NAMES = ["127.0.0.1", "localhost"]


@dataclass
class LocalCA:
    authority: CertificateAuthority
    root_ca_path: Path
    server_cert_path: Path
    server_key_path: Path

    @classmethod
    def load_or_create(cls, state_dir: Path) -> LocalCA:
        """The state dir's CA, checked for consistency at start-up: the root (certificate and
        key) cannot be replaced, since clients trust it and it signed every certificate in the
        registry, so a missing or mismatched half is refused in one sentence; the server's
        certificate only needs the root, so a missing, mismatched or foreign one is issued
        anew."""
        state_dir.mkdir(parents=True, exist_ok=True)
        root, root_key = state_dir / ROOT_CA_FILE, state_dir / ROOT_KEY_FILE
        server, server_key = state_dir / SERVER_CERT_FILE, state_dir / SERVER_KEY_FILE
        if not root.exists() and not root_key.exists():
            _refuse_orphans(state_dir, [server, server_key])
            authority = CertificateAuthority.create("fleetsim local core Root CA",
                                                    organization="fleetsim")
            write_private(root_key, private_key_pem(authority.key))
            root.write_bytes(certificate_pem(authority.cert))
        else:
            authority = _load_root(state_dir, root, root_key)
        if not _server_fits(authority, server, server_key):
            cert, key = authority.issue_server(SERVER_NAMES)
            write_private(server_key, private_key_pem(key))
            server.write_bytes(certificate_pem(cert))
        return cls(authority, root, server, server_key)

    def server_ssl_context(self) -> ssl.SSLContext:
        """Mutual TLS as AWS IoT does it: a client certificate is required. Trust anchors are
        this CA, plus whatever the registry adds (registered CAs, certificates registered
        without a CA) through `add_trust_anchor`; identity and status are checked after the
        handshake against the registry."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert_path, self.server_key_path)
        ctx.verify_mode = ssl.CERT_REQUIRED
        # A registered leaf (register-certificate-without-ca) may act as its own trust anchor.
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        ctx.load_verify_locations(cadata=certificate_pem(self.authority.cert).decode())
        ctx.set_alpn_protocols(["x-amzn-mqtt-ca", "mqtt"])
        ctx.sni_callback = _remember_server_name
        # No TLS 1.3 session tickets: AWS IoT's "Transport security" page documents no session
        # resumption, devices here never resume, and OpenSSL's default two tickets were a third
        # of local core's CPU per handshake (1,000 devices connecting at once: bench jit).
        ctx.num_tickets = 0
        return ctx


def _remember_server_name(ssl_object: Any, server_name: str | None,
                          _ctx: ssl.SSLContext) -> None:
    """Keep the client's SNI on its SSL object: just-in-time registration requires one."""
    ssl_object.server_name_indication = server_name


def _afresh(state_dir: Path) -> str:
    return (f"or delete the state dir {state_dir} to start afresh (its things and "
            "certificates are then lost)")


def _refuse_orphans(state_dir: Path, files: list[Path]) -> None:
    """A server certificate without the root that issued it: that root signed the registry's
    certificates too, so a new one would leave them (and clients trusting it) out."""
    present = [f.name for f in files if f.exists()]
    if present:
        raise UserError(f"the state dir {state_dir} is inconsistent: {ROOT_CA_FILE} and "
                        f"{ROOT_KEY_FILE} are missing but {present[0]} (issued by them) is "
                        f"there; put the root CA files back, {_afresh(state_dir)}")


def _load_root(state_dir: Path, root: Path, root_key: Path) -> CertificateAuthority:
    for path in (root, root_key):
        if not path.exists():
            other = root_key if path == root else root
            raise UserError(f"the state dir {state_dir} is inconsistent: {path.name} is "
                            f"missing but {other.name} is there, and local core cannot issue "
                            f"or verify certificates without both; put {path.name} back, "
                            f"{_afresh(state_dir)}")
    try:
        cert = load_certificate(root.read_bytes())
    except ValueError:
        raise UserError(f"{root} is not a PEM certificate; put the original back, "
                        f"{_afresh(state_dir)}") from None
    try:
        key = load_private_key(root_key.read_bytes())
    except (ValueError, TypeError):
        raise UserError(f"{root_key} is not a PEM private key; put the original back, "
                        f"{_afresh(state_dir)}") from None
    if public_key_id(key.public_key()) != public_key_id(cert.public_key()):
        raise UserError(f"the state dir {state_dir} is inconsistent: {ROOT_KEY_FILE} is not "
                        f"the key of {ROOT_CA_FILE}; put the matching files back, "
                        f"{_afresh(state_dir)}")
    return CertificateAuthority(cert, key)


def _server_fits(authority: CertificateAuthority, server: Path, server_key: Path) -> bool:
    """The server certificate is there alone, issued by this root, and its key is beside it.

    The broker presents it without the root. Clients verify it against the root they hold
    already (the workshop's `root.ca.bundle.pem`); one sent along was a certificate every
    client decoded at each connect and kept for the connection's life (~4.9 KB per connected
    device, ~4% of a device's CPU per connect: `python -m bench.device_memory`, `python -m
    bench.connect_path --callgrind`). TLS lets a trust anchor be left out of the chain (RFC
    8446 4.4.2, RFC 5246 7.4.2). A server.pem of older state dirs (the leaf, then the root) is
    issued anew."""
    try:
        pem = server.read_bytes()
        if pem.count(b"-----BEGIN CERTIFICATE-----") != 1:
            return False
        cert = load_certificate(pem)
        key = load_private_key(server_key.read_bytes())
        cert.verify_directly_issued_by(authority.cert)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return public_key_id(key.public_key()) == public_key_id(cert.public_key())


def add_trust_anchor(ctx: ssl.SSLContext, pem: str) -> None:
    """Trust a registered CA (or a CA-less registered leaf) for future handshakes."""
    ctx.load_verify_locations(cadata=pem)
