"""Keys, CSRs, CAs and certificates, built with `cryptography`."""

from fleetsim.pki.certs import (
    CertificateAuthority,
    build_csr,
    certificate_id,
    certificate_pem,
    load_certificate,
    public_key_id,
    public_key_pem,
)
from fleetsim.pki.keys import (
    KeyType,
    generate_key,
    load_private_key,
    private_key_pem,
    write_private,
)

__all__ = [
    "CertificateAuthority",
    "KeyType",
    "build_csr",
    "certificate_id",
    "certificate_pem",
    "generate_key",
    "load_certificate",
    "load_private_key",
    "private_key_pem",
    "public_key_id",
    "public_key_pem",
    "write_private",
]
