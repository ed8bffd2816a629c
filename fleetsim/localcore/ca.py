"""Local core's own root CA (the stand-in for Amazon Root CA 1) and the broker's TLS identity."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from fleetsim.pki import (
    CertificateAuthority,
    certificate_pem,
    load_certificate,
    load_private_key,
    private_key_pem,
    write_private,
)

ROOT_CA_FILE = "root.ca.bundle.pem"  # the name the workshop gives the server CA bundle
SERVER_NAMES = ["127.0.0.1", "localhost"]


@dataclass
class LocalCA:
    authority: CertificateAuthority
    root_ca_path: Path
    server_cert_path: Path
    server_key_path: Path

    @classmethod
    def load_or_create(cls, state_dir: Path) -> LocalCA:
        state_dir.mkdir(parents=True, exist_ok=True)
        root, root_key = state_dir / ROOT_CA_FILE, state_dir / "root-ca.key"
        server, server_key = state_dir / "server.pem", state_dir / "server.key"
        if root.exists() and root_key.exists():
            authority = CertificateAuthority(load_certificate(root.read_bytes()),
                                             load_private_key(root_key.read_bytes()))
        else:
            authority = CertificateAuthority.create("fleetsim local core Root CA",
                                                    organization="fleetsim")
            write_private(root_key, private_key_pem(authority.key))
            root.write_bytes(certificate_pem(authority.cert))
        if not (server.exists() and server_key.exists()):
            cert, key = authority.issue_server(SERVER_NAMES)
            write_private(server_key, private_key_pem(key))
            server.write_bytes(certificate_pem(cert) + certificate_pem(authority.cert))
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
        return ctx


def add_trust_anchor(ctx: ssl.SSLContext, pem: str) -> None:
    """Trust a registered CA (or a CA-less registered leaf) for future handshakes."""
    ctx.load_verify_locations(cadata=pem)
