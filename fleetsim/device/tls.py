"""Client TLS for devices (mutual TLS), as cheaply as Python's ssl allows.

Each device has a context of its own (`TlsContextFactory.device_tls`), its certificate and key
loaded right before its socket is wrapped (`DeviceTls`), from files or from PEM kept in memory.
One context shared by all devices (each chain loaded into it right before the wrap, relying on
SSL_new copying it) was tried and saved ~21 KB per device, but in a full run a device that
connected after the observer presented the observer's certificate (not understood yet), so it
is not used. `for_identity` builds a loaded context at once.

Measured on this machine (OpenSSL 3.0, CPU per context): `create_default_context(cafile=
certifi)` + `load_cert_chain` 21.5 ms — parsing certifi's 117 roots dominates; a bare
`SSLContext` 0.17 ms; + one trust anchor as DER 0.35 ms; + `load_cert_chain` from files
~1.0 ms in all (from a memfd: the same; from a combined file: ~0.9 ms). So: parse the CA file
once per target, keep only the roots that can anchor the target's chain, hand them to each
context as DER. Building in threads does not help (OpenSSL 3's decoder locks contend: 2
threads took twice the CPU for the same wall time), so build on the loop, ahead of a ramp.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fleetsim.device.identity import DeviceIdentity, IdentityDamaged
from fleetsim.target import Target

TlsVersion = Literal["1.2", "1.3"]
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# The roots AWS IoT's ATS endpoints chain to (Amazon Trust Services, with Starfield's cross-sign).
AMAZON_TRUST_ROOTS = frozenset({
    "Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4",
    "Starfield Services Root Certificate Authority - G2",
})
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def trust_anchors_der(pem_bundle: bytes, only: frozenset[str] | None = None) -> bytes:
    """The certificates of a PEM bundle as concatenated DER, optionally only those whose
    common name is in `only`."""
    out = []
    for block in _PEM_BLOCK.findall(pem_bundle):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # certifi holds a root with a negative serial
            cert = x509.load_pem_x509_certificate(block)
        if only is not None:
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if not names or names[0].value not in only:
                continue
        out.append(cert.public_bytes(Encoding.DER))
    if not out:
        raise ValueError("no usable CA certificate in the server CA bundle")
    return b"".join(out)


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
                 max_version: TlsVersion | None = None):
        self.target = target
        only = AMAZON_TRUST_ROOTS if target.kind == "aws" and target.ca_file is None else None
        self._cadata = trust_anchors_der(target.server_ca_file.read_bytes(), only)
        self._min = _VERSIONS[min_version]
        self._max = _VERSIONS[max_version] if max_version else None
        self._alpn = target.alpn_protocols

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

    def device_tls(self, identity: DeviceIdentity) -> DeviceTls:
        """The identity's TLS, its chain loaded as it connects (see the module's docstring)."""
        if identity.certificate_pem is None:
            raise ValueError(f"{identity.thing_name} has no certificate yet")
        context = self._bare()
        if identity.cert_path is not None and identity.key_path is not None:
            return DeviceTls(context, identity.cert_path, identity.key_path)
        return DeviceTls(context, None, None,
                         identity.certificate_pem + b"\n" + identity.private_key_pem)

    def for_identity(self, identity: DeviceIdentity) -> ssl.SSLContext:
        """From the identity's stored files, or from memory when it has none."""
        if identity.certificate_pem is None:
            raise ValueError(f"{identity.thing_name} has no certificate yet")
        if identity.cert_path is not None and identity.key_path is not None:
            return self.build(identity.cert_path, identity.key_path)
        with _in_memory_file(identity.certificate_pem + b"\n" + identity.private_key_pem) as p:
            return self.build(p, p)


class DeviceTls:
    """One device's certificate and key (files, or PEM kept in memory) and its context.
    Quacks like an `SSLContext` where `transport.open_tls` and paho need one: the first
    `wrap_socket` loads the device's chain into the context (reconnects reuse it).
    `server_name`, when set, is sent as SNI and verified instead of the host (see
    `DeviceSSLContext`)."""

    __slots__ = ("_cert", "_context", "_key", "_loaded", "_pem", "server_name")

    def __init__(self, context: DeviceSSLContext, cert_file: Path | None, key_file: Path | None,
                 pem: bytes | None = None):
        self._context = context
        self._cert, self._key, self._pem = cert_file, key_file, pem
        self._loaded = False
        self.server_name: str | None = None

    @property
    def context(self) -> ssl.SSLContext:
        """The device's context (its chain loaded once it has connected)."""
        return self._context

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
        if not self._loaded:
            self._load()
            self._loaded = True
        return self._context.wrap_socket(sock, server_hostname=self.server_name or server_hostname,
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
