"""What a connected device's Python-ssl connection need not keep, given back (issue 9).

Measured with heaptrack on `python -m bench.device_memory`'s worker (200 devices, EC P-256,
TLS 1.3 against local core), per connected `tls_backend: stdlib` device:
- 16.2 KB: OpenSSL 3.0's read buffer. Python's ssl sets SSL_MODE_RELEASE_BUFFERS, yet the
  system's OpenSSL 3.0 keeps the buffer allocated by the last read (CONNACK, or any message
  since): an idle device held 16 KB of it. `release_buffers` (SSL_free_buffers, which does
  nothing while a record is half read or data is pending) runs after the handshake and after
  every burst of reads; the next read allocates it again.
- ~5 KB: the device's own certificate and key, decoded by `load_cert_chain` into a shared
  context and referenced by each connection made from it (SSL_new copies the context's
  certificates), after the next device's load only by the connection. The client needs them
  only in a handshake (TLS 1.3 post-handshake authentication is not offered; a TLS 1.2
  renegotiation, which AWS IoT does not ask for, would then send no certificate and be
  refused); `shed_credentials` (SSL_certs_clear) drops them once the handshake is done.

Python's ssl has no way to these calls: the SSL* is read from the `_ssl._SSLSocket` object
(CPython's PySSLSocket: the object header, the socket's weakref, `SSL *ssl`, then the
`PySSLContext *ctx`; the same layout in CPython 3.7-3.14). The layout is checked before each
use (the field after `ssl` must be the socket's context object, and the SSL* must belong to that
context's SSL_CTX); when it does not hold, nothing is done.
"""

from __future__ import annotations

import ctypes
import ssl
import weakref
from functools import cache
from typing import Any

_PTR = ctypes.sizeof(ctypes.c_void_p)
_SSL_AT = 3 * _PTR  # PySSLSocket: ob_refcnt, ob_type, Socket, then ssl
_CTX_AT = 4 * _PTR  # ... then ctx (the PySSLContext)
_SSL_CTX_AT = 2 * _PTR  # PySSLContext: ob_refcnt, ob_type, then ctx (the SSL_CTX*)


@cache
def _libssl() -> Any | None:
    """libssl as Python's `_ssl` links it, or None when it cannot be used safely: SSL_free_buffers
    could free a buffer still in use before OpenSSL 3.0.14 ("Use After Free with
    SSL_free_buffers", CVE-2024-4741)."""
    if ssl.OPENSSL_VERSION_INFO < (3, 0, 0, 14):
        return None
    import _ssl

    try:
        lib = ctypes.CDLL(_ssl.__file__)
        for name in ("SSL_free_buffers", "SSL_certs_clear", "SSL_get_SSL_CTX"):
            getattr(lib, name)
    except (OSError, AttributeError):  # a statically linked or unusual build
        return None
    lib.SSL_free_buffers.argtypes = [ctypes.c_void_p]
    lib.SSL_free_buffers.restype = ctypes.c_int
    lib.SSL_certs_clear.argtypes = [ctypes.c_void_p]
    lib.SSL_certs_clear.restype = None
    lib.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
    lib.SSL_get_SSL_CTX.restype = ctypes.c_void_p
    return lib


# Each socket's SSL* once its layout checks held, with the `_ssl` object they were made on:
# `release_buffers` runs after every burst of reads, and the checks cost ~2 us a call.
_checked: weakref.WeakKeyDictionary[ssl.SSLSocket, tuple[object, Any, int]] = (
    weakref.WeakKeyDictionary())


def _ssl_of(sock: object) -> tuple[Any, int] | None:
    """The SSL* of a connected `ssl.SSLSocket` and libssl, when the layout checks hold."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    obj = sock._sslobj  # type: ignore[attr-defined]
    known = _checked.get(sock)
    if known is not None and known[0] is obj:
        return known[1], known[2]
    lib = _libssl()
    if obj is None or lib is None:
        return None
    context = sock.context
    if ctypes.c_void_p.from_address(id(obj) + _CTX_AT).value != id(context):
        return None
    ptr = ctypes.c_void_p.from_address(id(obj) + _SSL_AT).value
    ssl_ctx = ctypes.c_void_p.from_address(id(context) + _SSL_CTX_AT).value
    if not ptr or not ssl_ctx or lib.SSL_get_SSL_CTX(ptr) != ssl_ctx:
        return None
    _checked[sock] = (obj, lib, ptr)
    return lib, ptr


def release_buffers(sock: object) -> bool:
    """Free the connection's idle record buffers (Python's ssl only); whether it did."""
    found = _ssl_of(sock)
    return found is not None and found[0].SSL_free_buffers(found[1]) == 1


def shed_credentials(sock: object) -> bool:
    """Drop the connection's references to the device's certificate and key after the
    handshake (Python's ssl only); whether it did."""
    found = _ssl_of(sock)
    if found is None:
        return False
    found[0].SSL_certs_clear(found[1])
    return True
