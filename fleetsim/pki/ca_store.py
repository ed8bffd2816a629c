"""A CA of your own on disk (`certs/<name>/`): `ca.key` (0600) and `ca.pem`, made on first
use, or put there by the user to use theirs instead."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from fleetsim.errors import UserError
from fleetsim.pki.certs import CertificateAuthority, certificate_pem, load_certificate
from fleetsim.pki.keys import KeyType, load_private_key, private_key_pem, write_private

CA_KEY, CA_CERT = "ca.key", "ca.pem"


def load_or_create_ca(directory: Path, common_name: str, key_type: KeyType = "rsa-2048"
                      ) -> tuple[CertificateAuthority, bool]:
    """The CA in `directory`, made there if it holds none. Returns (CA, made now)."""
    key_path, cert_path = directory / CA_KEY, directory / CA_CERT
    if key_path.exists() or cert_path.exists():
        return _load(key_path, cert_path), False
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create(common_name, key_type)
    write_private(key_path, private_key_pem(ca.key))
    cert_path.write_bytes(certificate_pem(ca.cert))
    return ca, True


def _load(key_path: Path, cert_path: Path) -> CertificateAuthority:
    for path in (key_path, cert_path):
        if not path.is_file():
            raise UserError(f"{path} is missing: a CA folder needs both {CA_KEY} and "
                            f"{CA_CERT} (delete the folder to have a new CA made)")
    try:
        cert = load_certificate(cert_path.read_bytes())
    except ValueError as e:
        raise UserError(f"{cert_path} is not a PEM certificate") from e
    try:
        key = load_private_key(key_path.read_bytes())
    except (ValueError, TypeError) as e:
        raise UserError(f"{key_path} is not an unencrypted PEM private key") from e
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise x509.ExtensionNotFound("not a CA", x509.BasicConstraints.oid)
    except x509.ExtensionNotFound as e:
        raise UserError(f"{cert_path} is not a CA certificate (basicConstraints CA:TRUE)"
                        ) from e
    if cert.public_key() != key.public_key():
        raise UserError(f"{key_path} is not the key of {cert_path}")
    return CertificateAuthority(cert, key)
