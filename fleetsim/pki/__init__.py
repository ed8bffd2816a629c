"""Keys, CSRs, CAs and certificates, built with `cryptography`.

`cryptography` (~11 MB of RSS) is imported when one of these names is first used, not with
the package: a device process that re-uses stored identities over Python's ssl (and any user
of `KeyType` alone) never loads it (issue 9: fixed RSS of the device process).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fleetsim.pki.key_type import KeyType

if TYPE_CHECKING:
    from fleetsim.pki.certs import (
        CertificateAuthority,
        build_csr,
        certificate_id,
        certificate_pem,
        load_certificate,
        public_key_id,
        public_key_pem,
    )
    from fleetsim.pki.keys import generate_key, load_private_key, private_key_pem, write_private

# Where each name lives.
_MODULES = {
    "CertificateAuthority": "certs", "build_csr": "certs", "certificate_id": "certs",
    "certificate_pem": "certs", "load_certificate": "certs", "public_key_id": "certs",
    "public_key_pem": "certs", "generate_key": "keys", "load_private_key": "keys",
    "private_key_pem": "keys", "write_private": "keys",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


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
