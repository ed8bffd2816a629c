"""The broker's server TLS context: pyOpenSSL by default, Python's ssl on request.

`FLEETSIM_LOCAL_TLS=stdlib` selects Python's `ssl` (the system's OpenSSL, run by
`broker/handshake.py`) for one release; the default, `openssl`, is pyOpenSSL on
cryptography's bundled OpenSSL (`broker/tlsopenssl.py`), which costs local core about half the
CPU per handshake. Both contexts are set alike: mutual TLS required, TLS 1.2 and 1.3, Python's
cipher suites, ALPN `x-amzn-mqtt-ca` / `mqtt`, no session tickets, partial chains (a
registered leaf may be its own trust anchor), trust anchors added while running. One
difference: Python's ssl cannot be told not to build the server's chain from its trust store,
so it sends the root along with the server certificate, which the default sends alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import ssl
from typing import Any

from cryptography import x509
from OpenSSL import SSL, crypto
from OpenSSL._util import lib as _lib

from fleetsim import openssl_unbound
from fleetsim.errors import UserError
from fleetsim.localcore import ca as _ca
from fleetsim.localcore.ca import LocalCA

TLS_ENV = "FLEETSIM_LOCAL_TLS"
BACKENDS = ("openssl", "stdlib")
ALPN = (b"x-amzn-mqtt-ca", b"mqtt")

ServerContext = ssl.SSLContext | SSL.Context


def backend() -> str:
    """The server TLS backend `$FLEETSIM_LOCAL_TLS` names (default openssl)."""
    value = os.environ.get(TLS_ENV, "").strip().lower() or BACKENDS[0]
    if value not in BACKENDS:
        raise UserError(f"${TLS_ENV} is {value!r}; it must be openssl (the default) or "
                        "stdlib (Python's ssl)")
    return value


def server_context(local_ca: LocalCA, which: str | None = None) -> ServerContext:
    """The broker's server context for `which` backend (default: `backend()`)."""
    if (which or backend()) == "stdlib":
        return local_ca.server_ssl_context()
    return openssl_context(local_ca)


def openssl_context(local_ca: LocalCA) -> SSL.Context:
    """`LocalCA.server_ssl_context` on pyOpenSSL."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_certificate_chain_file(str(local_ca.server_cert_path))
    ctx.use_privatekey_file(str(local_ca.server_key_path))
    ctx.check_privatekey()
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
    store = ctx.get_cert_store()
    assert store is not None
    store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    store.add_cert(crypto.X509.from_cryptography(local_ca.authority.cert))
    # The TLS 1.2 suites Python's ssl offers as a server (its default cipher string).
    python = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_cipher_list(":".join(c["name"] for c in python.get_ciphers()
                                 if c["protocol"] != "TLSv1.3").encode())
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
                    | SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_TICKET)
    # No session resumption, as `server_ssl_context` (num_tickets 0).
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    _no_tls13_tickets(ctx)
    # The server certificate alone (`LocalCA`): without NO_AUTO_CHAIN OpenSSL would build a
    # chain from the trust store at every handshake (an X509_verify_cert of local core's own
    # certificate each time) and send the root along.
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS | openssl_unbound.MODE_NO_AUTO_CHAIN)

    def select(_conn: SSL.Connection, offered: list[bytes]) -> Any:
        return next((p for p in ALPN if p in offered), SSL.NO_OVERLAPPING_PROTOCOLS)

    ctx.set_alpn_select_callback(select)
    return ctx


def _no_tls13_tickets(ctx: SSL.Context) -> None:
    """SSL_CTX_set_num_tickets(ctx, 0), as `server_ssl_context` sets num_tickets: no TLS 1.3
    session tickets. cryptography's bindings do not declare it (50.0); `openssl_unbound` finds
    it in the OpenSSL they run on. Where it cannot, a TLS 1.3 client is sent OpenSSL's stateful
    tickets (a session id each, OP_NO_TICKET), which resume nothing since the session cache is
    off, and cost local core and each client CPU and memory per connection (a Python ssl
    client keeps ~6 KB more, and spends ~14% more CPU per connect, README issue 9)."""
    setter = getattr(_lib, "SSL_CTX_set_num_tickets", None) or openssl_unbound.function(
        "SSL_CTX_set_num_tickets", ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
    if setter is not None:
        setter(openssl_unbound.pointer(ctx._context), 0)


def add_trust_anchor(ctx: ServerContext, pem: str) -> None:
    """Trust a registered CA (or a CA-less registered leaf) for future handshakes."""
    if isinstance(ctx, ssl.SSLContext):
        _ca.add_trust_anchor(ctx, pem)
        return
    store = ctx.get_cert_store()
    assert store is not None
    for cert in x509.load_pem_x509_certificates(pem.encode()):
        with contextlib.suppress(crypto.Error):  # already trusted
            store.add_cert(crypto.X509.from_cryptography(cert))

