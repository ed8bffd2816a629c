"""A target's server chain verified once per client context, not at every connect (issue 9).

Every device of a target connects to the same endpoint, which presents the same certificate
chain each time; OpenSSL verified it in full at every handshake (X509_verify_cert: the chain
built, each signature checked with an ECDSA verify, the name matched), ~0.9 M instructions,
~19% of a device's connect (`python -m bench.connect_path --callgrind`), though only a few %
of its CPU time: that code runs at a high instruction rate.

X509_verify_cert's result depends only on the certificates presented, the trust store, the
verification parameters (here: the name expected) and the time. The store and parameters of a
shared context are fixed when it is made, but for the name, which each connection sets. So a
chain that verified once for a name verifies again, byte for byte the same chain for the same
name, as long as the time stays inside every validity period of the chain it was verified
through; within that window this verdict is reused (SSL_CTX_set_cert_verify_callback, not in
cryptography's bindings: `openssl_unbound`). What makes each handshake prove the server holds
that certificate's key, its CertificateVerify (TLS 1.3) or signed key exchange (TLS 1.2), is
still checked at every connect, by OpenSSL, outside this callback. A chain that fails is
verified again at each connect and fails as before, with OpenSSL's own error; nothing is kept
of it.

Where either function cannot be located, the context verifies every chain as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections import OrderedDict
from functools import cache
from typing import Any

from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from fleetsim import openssl_unbound

FUNCTIONS = ("SSL_CTX_set_cert_verify_callback", "X509_STORE_CTX_get0_untrusted")
_CHAINS_KEPT = 16  # distinct (chain, name) verdicts per context; the oldest goes first
_DIGEST_SIZE = 32

# (the name expected, the SHA-256 of each certificate presented, leaf first)
ChainKey = tuple[str, tuple[bytes, ...]]


class VerifiedChains:
    """The chains a client context has verified, and the callback that consults them."""

    def __init__(self) -> None:
        self._valid: OrderedDict[ChainKey, tuple[float, float]] = OrderedDict()
        self._sha256 = _lib.EVP_get_digestbyname(b"sha256")
        self._digest = _ffi.new("unsigned char[]", _DIGEST_SIZE)
        self._digest_len = _ffi.new("unsigned int *")
        self._callback = _ffi.callback("int(X509_STORE_CTX *, void *)", self._verify)
        self.reused = 0  # handshakes whose chain was not verified again
        self.installed = False

    def install(self, ctx: SSL.Context) -> None:
        """Verify `ctx`'s server chains through this cache (`installed`), where it can."""
        if _untrusted() is None or self._sha256 == _ffi.NULL:
            return
        self.installed = openssl_unbound.set_cert_verify_callback(ctx, self._callback)

    def _verify(self, store_ctx: Any, _arg: Any) -> int:
        try:
            key = self._key(store_ctx)
        except Exception:  # never fail a handshake over the cache: verify in full
            key = None
        if key is not None:
            window = self._valid.get(key)
            if window is not None and window[0] <= time.time() < window[1]:
                self.reused += 1
                return 1
        ok: int = _lib.X509_verify_cert(store_ctx)
        if ok == 1 and key is not None:
            with contextlib.suppress(Exception):  # not kept: the next connect verifies it
                self._remember(key, store_ctx)
        return ok

    def _key(self, store_ctx: Any) -> ChainKey | None:
        """The chain presented and the name expected; None if either cannot be read."""
        ssl = _lib.X509_STORE_CTX_get_ex_data(store_ctx,
                                              _lib.SSL_get_ex_data_X509_STORE_CTX_idx())
        conn = SSL.Connection._reverse_mapping.get(_ffi.cast("SSL *", ssl))
        name = conn.get_app_data() if conn is not None else None
        presented = _untrusted()(int(_ffi.cast("uintptr_t", store_ctx)))
        if not isinstance(name, str) or not presented:
            return None
        stack = _ffi.cast("Cryptography_STACK_OF_X509 *", presented)
        return name, tuple(self._fingerprint(_lib.sk_X509_value(stack, i))
                           for i in range(_lib.sk_X509_num(stack)))

    def _fingerprint(self, cert: Any) -> bytes:
        if _lib.X509_digest(cert, self._sha256, self._digest, self._digest_len) != 1:
            raise ValueError("no digest")
        return bytes(_ffi.buffer(self._digest, self._digest_len[0]))

    def _remember(self, key: ChainKey, store_ctx: Any) -> None:
        """Keep the verdict for as long as every certificate of the chain it was verified
        through (the trust anchor's included) is within its validity period."""
        chain = _lib.X509_STORE_CTX_get1_chain(store_ctx)
        if chain == _ffi.NULL:
            return
        starts, ends = [], []
        for i in range(_lib.sk_X509_num(chain)):
            # The stack holds a reference to each certificate; the wrapper takes it over.
            cert = crypto.X509._from_raw_x509_ptr(_lib.sk_X509_value(chain, i))
            verified = cert.to_cryptography()
            starts.append(verified.not_valid_before_utc.timestamp())
            ends.append(verified.not_valid_after_utc.timestamp())
        _lib.sk_X509_free(chain)
        if not starts:
            return
        self._valid[key] = (max(starts), min(ends))
        self._valid.move_to_end(key)
        while len(self._valid) > _CHAINS_KEPT:
            self._valid.popitem(last=False)


@cache
def _untrusted() -> Any:
    """X509_STORE_CTX_get0_untrusted: the certificates the peer presented, leaf first."""
    return openssl_unbound.function(FUNCTIONS[1], ctypes.c_void_p,
                                    ctypes.c_void_p)
