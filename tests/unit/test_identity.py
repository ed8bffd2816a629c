from __future__ import annotations

import logging
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetsim.device.identity import DeviceIdentity, IdentityStore, KeyFactory
from fleetsim.device.tls import AMAZON_TRUST_ROOTS, TlsContextFactory, trust_anchors_der
from fleetsim.pki import CertificateAuthority, KeyType, certificate_pem, load_private_key
from fleetsim.target import Target


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("test root")


async def issued(ca: CertificateAuthority, name: str, index: int = 0,
                 key_type: KeyType = "ec-p256") -> DeviceIdentity:
    identity = await KeyFactory().new_identity("fleet-a", index, name, key_type)
    cert = ca.issue_device(load_private_key(identity.private_key_pem).public_key())
    return identity.with_certificate(certificate_pem(cert), arn=f"arn:aws:iot:::cert/{name}")


async def test_store_round_trip_with_0600_key(tmp_path: Path, ca: CertificateAuthority) -> None:
    store = IdentityStore(tmp_path, "fleet-a")
    saved = store.save(await issued(ca, "dev-0001", index=1))
    assert saved.key_path == tmp_path / "fleet-a" / "dev-0001.key"
    assert stat.S_IMODE(saved.key_path.stat().st_mode) == 0o600
    assert saved.cert_path is not None and saved.cert_path.suffix == ".crt"
    loaded = store.load("dev-0001")
    for attr in ("fleet", "index", "thing_name", "key_type", "private_key_pem",
                 "certificate_pem", "certificate_id", "certificate_arn", "key_path",
                 "cert_path"):
        assert getattr(loaded, attr) == getattr(saved, attr), attr
    assert store.exists("dev-0001") and not store.exists("dev-0002")
    assert [i.thing_name for i in store.load_all()] == ["dev-0001"]
    store.delete("dev-0001")
    assert store.names() == []


async def test_certificate_id_is_sha256_of_der(ca: CertificateAuthority) -> None:
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    identity = await issued(ca, "dev-1")
    assert identity.certificate_pem is not None
    der = x509.load_pem_x509_certificate(identity.certificate_pem).public_bytes(Encoding.DER)
    assert identity.certificate_id == hashlib.sha256(der).hexdigest()


async def test_key_material_never_in_repr_or_logs(tmp_path: Path, ca: CertificateAuthority,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    identity = IdentityStore(tmp_path, "fleet-a").save(await issued(ca, "dev-2"))
    logging.getLogger("test").info("identity %s / %r", identity, identity)
    secret = identity.private_key_pem.decode().splitlines()[1]
    assert "dev-2" in repr(identity)
    assert secret not in repr(identity) and secret not in str(identity)
    assert "PRIVATE KEY" not in caplog.text and secret not in caplog.text
    meta = (tmp_path / "fleet-a" / "dev-2.json").read_text()
    assert "PRIVATE" not in meta


async def test_saving_an_identity_without_certificate(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path, "f")
    identity = await KeyFactory().new_identity("f", 0, "dev")
    saved = store.save(identity)
    assert saved.cert_path is None
    assert store.load("dev").certificate_pem is None


@pytest.mark.parametrize("name", ["../evil", "a/b", "", "x" * 129, "dev 1"])
def test_thing_names_that_are_not_valid_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="thing name"):
        DeviceIdentity("f", 0, name, "ec-p256", b"")


def test_identity_of_another_fleet_is_refused(tmp_path: Path) -> None:
    identity = DeviceIdentity("other", 0, "dev", "ec-p256", b"k")
    with pytest.raises(ValueError, match="fleet"):
        IdentityStore(tmp_path, "f").save(identity)


def test_loading_a_missing_identity_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dev-9"):
        IdentityStore(tmp_path, "f").load("dev-9")


async def test_csr_carries_the_identity_key() -> None:
    identity = await KeyFactory().new_identity("f", 0, "dev-3")
    csr = x509.load_pem_x509_csr(identity.csr_pem())
    key = load_private_key(identity.private_key_pem)
    assert csr.public_key() == key.public_key()
    assert csr.subject.rfc4514_string() == "CN=dev-3"


async def test_rsa_keys_come_from_the_process_pool() -> None:
    with KeyFactory(workers=1) as keys:
        pems = [await keys.new_key_pem("rsa-2048") for _ in range(2)]
        assert keys._pool is not None
    assert all(load_private_key(p).key_size == 2048 for p in pems)  # type: ignore[union-attr]
    assert pems[0] != pems[1]


def test_tls_contexts_for_stored_and_in_memory_identities(tmp_path: Path,
                                                          ca: CertificateAuthority) -> None:
    import asyncio

    ca_file = tmp_path / "root.ca.bundle.pem"
    ca_file.write_bytes(certificate_pem(ca.cert))
    factory = TlsContextFactory(Target.local("http://x", "127.0.0.1", 1, ca_file),
                                max_version="1.2")
    identity = asyncio.run(issued(ca, "dev-4"))
    for candidate in (identity, IdentityStore(tmp_path, "fleet-a").save(identity)):
        ctx = factory.for_identity(candidate)
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
        [root] = ctx.get_ca_certs()
        assert root["subject"] == ((("commonName", "test root"),),)
    with pytest.raises(ValueError, match="no certificate"):
        factory.for_identity(DeviceIdentity("f", 0, "dev", "ec-p256", b""))


def test_aws_contexts_trust_only_amazon_roots_from_certifi() -> None:
    import certifi

    der = trust_anchors_der(Path(certifi.where()).read_bytes(), AMAZON_TRUST_ROOTS)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=der)
    subjects = {dict(x[0] for x in c["subject"])["commonName"] for c in ctx.get_ca_certs()}
    assert "Amazon Root CA 1" in subjects
    assert subjects <= AMAZON_TRUST_ROOTS
    assert len(ctx.get_ca_certs()) == len(subjects)


def _server_context(tmp_path: Path, ca: CertificateAuthority) -> ssl.SSLContext:
    """A TLS server on `ca` that requires a client certificate issued by it."""
    from fleetsim.pki import private_key_pem

    cert, key = ca.issue_server(["localhost"])
    (tmp_path / "server.pem").write_bytes(certificate_pem(cert) + private_key_pem(key))
    (tmp_path / "ca.pem").write_bytes(certificate_pem(ca.cert))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "server.pem")
    server.load_verify_locations(tmp_path / "ca.pem")
    server.verify_mode = ssl.CERT_REQUIRED
    return server


def test_devices_each_present_their_own_certificate(
        tmp_path: Path, ca: CertificateAuthority) -> None:
    """All sockets are wrapped before any handshakes: each presents the certificate of the
    device it was wrapped for, from a file or from PEM kept in memory, EC or RSA. Devices
    with keys of one kind share a context; an RSA key next to an EC one on one context made
    the RSA device present the EC device's certificate under TLS 1.3."""
    import asyncio
    import socket
    import threading

    server = _server_context(tmp_path, ca)
    factory = TlsContextFactory(Target.local("http://x", "localhost", 1, tmp_path / "ca.pem"))
    stored = IdentityStore(tmp_path, "fleet-a").save(asyncio.run(issued(ca, "dev-a")))
    identities = [stored, asyncio.run(issued(ca, "dev-b", key_type="rsa-2048")),
                  asyncio.run(issued(ca, "dev-c"))]
    devices = [factory.device_tls(i) for i in identities]
    assert devices[0].context is devices[2].context  # EC keys share one context
    assert devices[1].context is not devices[0].context and devices[1].shared
    pairs = [socket.socketpair() for _ in devices]
    clients = [d.wrap_socket(a, server_hostname="localhost", do_handshake_on_connect=False)
               for d, (a, _) in zip(devices, pairs, strict=True)]
    seen: list[bytes | None] = [None] * len(devices)

    def serve(i: int) -> None:
        with server.wrap_socket(pairs[i][1], server_side=True) as s:
            seen[i] = s.getpeercert(binary_form=True)

    for i in reversed(range(len(devices))):  # the other way round from the loads
        thread = threading.Thread(target=serve, args=(i,))
        thread.start()
        clients[i].do_handshake()
        assert clients[i].version() == "TLSv1.3"
        thread.join(10)
        clients[i].close()
    for i, identity in enumerate(identities):
        assert identity.certificate_pem is not None
        assert seen[i] == x509.load_pem_x509_certificate(identity.certificate_pem).public_bytes(
            serialization.Encoding.DER), identity.thing_name


def test_key_slot_reads_the_kind_of_key_from_its_armour() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from fleetsim.device.tls import key_slot
    from fleetsim.pki import generate_key, private_key_pem

    assert key_slot(private_key_pem(generate_key("ec-p256"))) == "ec"
    assert key_slot(b"\n" + private_key_pem(generate_key("rsa-2048"))) == "rsa"
    pkcs8 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    assert key_slot(pkcs8) is None  # not said by its armour: a context of its own
    assert key_slot(b"") is None


def test_a_key_of_unknown_kind_gets_a_context_of_its_own(
        tmp_path: Path, ca: CertificateAuthority) -> None:
    import asyncio
    from dataclasses import replace

    (tmp_path / "ca.pem").write_bytes(certificate_pem(ca.cert))
    factory = TlsContextFactory(Target.local("http://x", "localhost", 1, tmp_path / "ca.pem"))
    identity = asyncio.run(issued(ca, "dev-p8"))
    pkcs8 = load_private_key(identity.private_key_pem).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    one, two = (factory.device_tls(replace(identity, private_key_pem=pkcs8)) for _ in "12")
    assert one.context is not two.context and not one.shared
