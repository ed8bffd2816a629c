"""A registered certificate's chain is not verified again at every handshake (issue 9).

What X509_verify_cert decides of a client's chain, local core decided when the certificate
entered its registry: it issued it (CreateKeysAndCertificate, CreateCertificateFromCsr,
provisioning), checked its signature against a registered CA (RegisterCertificate,
just-in-time registration), or made it its own trust anchor (RegisterCertificateWithoutCA);
and trust anchors are only ever added. So for a certificate the registry holds, presented
while it and its issuer are within their validity (`Principal.valid_from`, `valid_until`),
the chain is not verified again: its X509_verify_cert was an ECDSA verify, ~19% of local
core's instructions per connection (`python -m bench core-connect --core-callgrind 200`).
AWS IoT, too, knows a client by its registered certificate ("X.509 client certificates").
What proves the client holds that certificate's key, its CertificateVerify, is checked at
every handshake, by OpenSSL, outside this callback. A certificate the registry does not hold
(an unknown CA, just-in-time registration's first connect) is verified in full and refused as
before, with OpenSSL's own error.

The registry is asked through the broker's `Authority`, which keeps what it answers until the
registry changes: the broker asks it again for the same certificate after the handshake.
"""

from __future__ import annotations

import time
from typing import Any

from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from fleetsim import openssl_unbound
from fleetsim.localcore.principal import Authority


class RegisteredChains:
    """The verify callback of local core's server context (`install`)."""

    def __init__(self, authority: Authority):
        self._authority = authority
        self._callback = _ffi.callback("int(X509_STORE_CTX *, void *)", self._verify)
        self.skipped = 0  # handshakes whose chain was not verified again

    def install(self, ctx: SSL.Context) -> bool:
        """Decide `ctx`'s client chains here; False where OpenSSL's setter cannot be located
        (every chain is then verified in full, as before)."""
        return openssl_unbound.set_cert_verify_callback(ctx, self._callback)

    def _verify(self, store_ctx: Any, _arg: Any) -> int:
        try:
            registered = self._registered(store_ctx)
        except Exception:  # never fail a handshake over the shortcut: verify in full
            registered = False
        if registered:
            self.skipped += 1
            return 1
        return int(_lib.X509_verify_cert(store_ctx))

    def _registered(self, store_ctx: Any) -> bool:
        leaf = _lib.X509_STORE_CTX_get0_cert(store_ctx)
        if leaf == _ffi.NULL:
            return False
        _lib.X509_up_ref(leaf)  # the wrapper below frees its own reference
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, crypto.X509._from_raw_x509_ptr(leaf))
        principal = self._authority.principal_for_certificate(der)
        return (principal is not None
                and principal.valid_from <= time.time() < principal.valid_until)
