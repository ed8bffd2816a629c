"""Client TLS for devices (mutual TLS), as cheaply as Python's ssl allows.

Devices of a target share contexts, one per kind of key (`TlsContextFactory.device_tls`):
each device's certificate and key are loaded into its kind's context right before its socket
is wrapped (`DeviceTls.wrap_socket`, under a lock, with nothing in between), and OpenSSL's
SSL_new copies the context's certificates and keys into the new connection, so the next
device's load does not touch it. A device then costs its connection, not a context of its
own: `python -m bench.fleet --devices 1000 --tls per-device shared` measured 61 -> 43 KB RSS
per connected device, and a context of one's own cost 0.65-0.8 ms CPU to build; the load itself
(`load_cert_chain`, ~1 ms of OpenSSL 3's PEM decoding) is paid at every connect, reconnects
included.

Why one context per kind of key: OpenSSL keeps a certificate and key per key type in a context
(RSA, EC, Ed25519, ...; `SSL_CTX_use_certificate` replaces only its own type's), and SSL_new
copies all of them. With one context for all, an EC P-256 observer loaded first and an RSA
device (CreateKeysAndCertificate makes RSA 2048 keys) loaded after it left both in the
device's connection; under TLS 1.2 OpenSSL sends the last one loaded, but under TLS 1.3 the
client signs with the first of the server's signature algorithms it has a key for (ECDSA
before RSA in OpenSSL's list), so the device presented the observer's certificate (issue 9).
A key whose kind its PEM armour does not tell (`key_slot`, e.g. PKCS #8) gets a context of its
own, loaded once. `for_identity` builds a loaded context of one's own at once, for callers
that change it per device (just-in-time SNI, the claim certificate).

Measured on this machine (OpenSSL 3.0, CPU per context): `create_default_context(cafile=
certifi)` + `load_cert_chain` 21.5 ms — parsing certifi's 117 roots dominates; a bare
`SSLContext` 0.17 ms; + one trust anchor as DER 0.35 ms; + `load_cert_chain` from files
~1.0 ms in all (from a memfd: the same; from a combined file: ~0.9 ms). So: parse the CA file
once per target, keep only the roots that can anchor the target's chain, hand them to each
context as DER. Loading in threads does not help (OpenSSL 3's decoder locks contend: 2
threads took twice the CPU for the same wall time), so devices load on the loop as they connect.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from fleetsim.device.identity import DeviceIdentity, IdentityDamaged
from fleetsim.target import Target

if TYPE_CHECKING:
    from fleetsim.device.tls_openssl import OpenSslContext, OpenSslDeviceTls, TlsSocket

TlsVersion = Literal["1.2", "1.3"]
TlsBackend = Literal["stdlib", "openssl"]
TLS_BACKENDS: tuple[TlsBackend, ...] = ("stdlib", "openssl")
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# The roots AWS IoT's ATS endpoints chain to (Amazon Trust Services, with Starfield's cross-sign).
AMAZON_TRUST_ROOTS = frozenset({
    "Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4",
    "Starfield Services Root Certificate Authority - G2",
})
_KEY_ARMOURS = {b"-----BEGIN RSA PRIVATE KEY-----": "rsa",
                b"-----BEGIN EC PRIVATE KEY-----": "ec"}
# A device's TLS, of either backend, and the socket it wraps.
AnyDeviceTls: TypeAlias = "DeviceTls | OpenSslDeviceTls"
AnyTlsSocket: TypeAlias = "ssl.SSLSocket | TlsSocket"
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def single_certificate(certificate_pem: bytes) -> bool:
    """Whether a certificate PEM holds one certificate rather than a chain (its armour is
    checked where it is read; counting the armour's first lines costs ~0.4 µs a device, matching
    whole blocks with a regex ~9 µs)."""
    return certificate_pem.count(b"-----BEGIN CERTIFICATE-----") == 1


def trust_anchors(pem_bundle: bytes, only: frozenset[str] | None = None) -> list[bytes]:
    """The certificates of a PEM bundle as DER, optionally only those whose common name is in
    `only` (CA certificates: what anchors a server's chain). Read by OpenSSL through Python's
    ssl, as the device contexts read them: the device process needs no `cryptography` for
    them (~11 MB of its fixed RSS, issue 9). ValueError when one cannot be read."""
    try:
        ders = [ssl.PEM_cert_to_DER_cert(block.decode("ascii"))
                for block in _PEM_BLOCK.findall(pem_bundle)]
        scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        scratch.load_verify_locations(cadata=b"".join(ders))
    except (ValueError, ssl.SSLError) as e:
        raise ValueError(f"the server CA bundle holds a certificate that cannot be read "
                         f"({e})") from e
    if only is not None:
        # get_ca_certs lists the store's CA certificates in one order, parsed and as DER.
        ders = [der for info, der in zip(scratch.get_ca_certs(),
                                         scratch.get_ca_certs(binary_form=True), strict=True)
                if _common_name(info) in only]
    if not ders:
        raise ValueError("no usable CA certificate in the server CA bundle")
    return ders


def _common_name(info: dict[str, Any]) -> str | None:
    """The first common name of a certificate's subject, as `SSLContext.get_ca_certs` gives
    it."""
    return next((value for rdn in info.get("subject", ()) for key, value in rdn
                 if key == "commonName"), None)


def trust_anchors_der(pem_bundle: bytes, only: frozenset[str] | None = None) -> bytes:
    """The certificates of a PEM bundle as concatenated DER (see `trust_anchors`)."""
    return b"".join(trust_anchors(pem_bundle, only))


def key_slot(private_key_pem: bytes) -> str | None:
    """The kind of key a PEM holds, as OpenSSL files certificates in a context: one
    certificate and key per kind (RSA, EC, ...), and a load replaces only its own kind's. So
    devices whose keys are of one kind can share a context; mixing kinds in one would leave
    another device's certificate beside the loaded one, and TLS 1.3 picks among them by the
    server's preference. None when the PEM's armour does not say (e.g. PKCS #8)."""
    head = private_key_pem.lstrip()[:32]
    return next((slot for armour, slot in _KEY_ARMOURS.items() if head.startswith(armour)),
                None)


class DeviceSSLContext(ssl.SSLContext):
    """A client context whose sockets report a connection dropped without TLS close_notify
    as an error. Before CONNACK that tells a TLS-level refusal (servers drop the socket
    without an alert; under TLS 1.3 the client only notices after its handshake) from an MQTT
    hang-up, which closes TLS cleanly. `server_name`, when set, is the name sent as SNI and
    verified instead of the host connected to (a device of a just-in-time lab must send SNI,
    which TLS never carries for an IP address such as local core's 127.0.0.1)."""

    server_name: str | None = None

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        kwargs["suppress_ragged_eofs"] = False
        if self.server_name:
            kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


class TlsContextFactory:
    """Builds client contexts for one target; the server CA file is read and parsed once."""

    def __init__(self, target: Target, min_version: TlsVersion = "1.2",
                 max_version: TlsVersion | None = None, *, share: bool = True,
                 backend: TlsBackend = "stdlib"):
        """`backend` "openssl": devices connect through pyOpenSSL with their key and
        certificate decoded once (`tls_openssl`); "stdlib": Python's ssl."""
        self.target = target
        only = AMAZON_TRUST_ROOTS if target.kind == "aws" and target.ca_file is None else None
        anchors = trust_anchors(target.server_ca_file.read_bytes(), only)
        self._cadata = b"".join(anchors)
        self._openssl: OpenSslContext | None = None
        if backend == "openssl":  # pyOpenSSL and cryptography: only for this backend
            from cryptography import x509

            from fleetsim.device.tls_openssl import OpenSslContext
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # certifi holds a root with a negative serial
                certificates = [x509.load_der_x509_certificate(der) for der in anchors]
            self._openssl = OpenSslContext(certificates, min_version, max_version,
                                           target.alpn_protocols)
        self._min = _VERSIONS[min_version]
        self._max = _VERSIONS[max_version] if max_version else None
        self._alpn = target.alpn_protocols
        # Contexts shared by devices, one per key type (see key_slot), each with its lock.
        self._shared: dict[str, tuple[DeviceSSLContext, threading.Lock]] = {}
        self._share = share  # False: a context per device (e.g. to compare in a bench)

    def _bare(self) -> DeviceSSLContext:
        """A context that trusts the target's CA, without a client certificate."""
        ctx = DeviceSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the server and its name
        ctx.minimum_version = self._min
        if self._max is not None:
            ctx.maximum_version = self._max
        ctx.load_verify_locations(cadata=self._cadata)
        if self._alpn:
            ctx.set_alpn_protocols(self._alpn)
        return ctx

    def build(self, cert_file: Path | str, key_file: Path | str) -> ssl.SSLContext:
        ctx = self._bare()
        ctx.load_cert_chain(cert_file, key_file)
        return ctx

    def device_tls(self, identity: DeviceIdentity) -> AnyDeviceTls:
        """The identity's TLS on the context its key type shares, or on one of its own when
        the key's type is not known from its PEM (see the module's docstring). With the
        openssl backend, its key and certificate decoded once (a certificate chain stays with
        Python's ssl: pyOpenSSL cannot add one to a connection)."""
        certificate_pem = identity.certificate_pem  # read once (a stored one, from its file)
        if certificate_pem is None:
            raise ValueError(f"{identity.thing_name} has no certificate yet")
        if self._openssl is not None and single_certificate(certificate_pem):
            return self._openssl.device(identity, certificate_pem)
        slot = key_slot(identity.private_key_pem) if self._share else None
        if slot is None:
            context, lock = self._bare(), None
        else:
            if slot not in self._shared:
                self._shared[slot] = (self._bare(), threading.Lock())
            context, lock = self._shared[slot]
        if identity.cert_path is not None and identity.key_path is not None:
            return DeviceTls(context, identity.cert_path, identity.key_path, lock=lock)
        return DeviceTls(context, None, None,
                         certificate_pem + b"\n" + identity.private_key_pem, lock=lock)

    def for_identity(self, identity: DeviceIdentity) -> ssl.SSLContext:
        """From the identity's stored files, or from memory when it has none."""
        if identity.certificate_pem is None:
            raise ValueError(f"{identity.thing_name} has no certificate yet")
        if identity.cert_path is not None and identity.key_path is not None:
            return self.build(identity.cert_path, identity.key_path)
        with _in_memory_file(identity.certificate_pem + b"\n" + identity.private_key_pem) as p:
            return self.build(p, p)


class DeviceTls:
    """One device's certificate and key (files, or PEM kept in memory) and the context it
    connects with. Quacks like an `SSLContext` where `transport.open_tls` and paho need one.
    On a shared context (`lock` given) every `wrap_socket` loads the device's chain and wraps
    under the lock, with nothing in between: SSL_new copies the chain, and the context holds
    whichever device's chain was loaded last. On a context of its own, the first `wrap_socket`
    loads the chain and reconnects reuse it. `server_name`, when set, is sent as SNI and
    verified instead of the host (see `DeviceSSLContext`)."""

    __slots__ = ("_cert", "_context", "_key", "_loaded", "_lock", "_pem", "server_name")

    def __init__(self, context: DeviceSSLContext, cert_file: Path | None, key_file: Path | None,
                 pem: bytes | None = None, *, lock: threading.Lock | None = None):
        self._context = context
        self._cert, self._key, self._pem = cert_file, key_file, pem
        self._lock = lock
        self._loaded = False
        self.server_name: str | None = None

    @property
    def context(self) -> ssl.SSLContext:
        """The context sockets are wrapped with: not for wrapping directly (a shared one
        holds whichever device's chain was loaded last); paho reads its check_hostname."""
        return self._context

    @property
    def shared(self) -> bool:
        return self._lock is not None

    @property
    def check_hostname(self) -> bool:
        return self._context.check_hostname

    def _load(self) -> None:
        if self._pem is None:
            assert self._cert is not None and self._key is not None
            try:
                self._context.load_cert_chain(self._cert, self._key)
            except ssl.SSLError as e:  # the store checks only the key's PEM armour
                raise IdentityDamaged(self._key, "or its certificate is not a readable PEM "
                                      "key pair") from e
            return
        with _in_memory_file(self._pem) as p:
            self._context.load_cert_chain(p, p)

    def wrap_socket(self, sock: Any, server_hostname: str | None = None,
                    do_handshake_on_connect: bool = True) -> ssl.SSLSocket:
        name = self.server_name or server_hostname
        if self._lock is None:
            if not self._loaded:
                self._load()
                self._loaded = True
            return self._context.wrap_socket(sock, server_hostname=name,
                                             do_handshake_on_connect=do_handshake_on_connect)
        with self._lock:  # Python's ssl lets other threads run while OpenSSL loads
            self._load()
            return self._context.wrap_socket(sock, server_hostname=name,
                                             do_handshake_on_connect=do_handshake_on_connect)


@contextlib.contextmanager
def _in_memory_file(data: bytes) -> Iterator[str]:
    """A path to `data` that never touches a disk where the platform allows it (Linux memfd);
    elsewhere a 0600 temporary file removed right after use."""
    if hasattr(os, "memfd_create") and sys.platform == "linux":
        fd = os.memfd_create("fleetsim-device", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, name = tempfile.mkstemp(suffix=".pem")
    try:
        os.write(fd, data)
        os.close(fd)
        yield name
    finally:
        os.unlink(name)
