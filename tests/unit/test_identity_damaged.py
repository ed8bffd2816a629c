"""A persistent identity whose files are missing or damaged is named in one sentence
(`IdentityDamaged`, a UserError), never a traceback from deep inside a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fleetsim.device.identity import IdentityDamaged, IdentityStore, KeyFactory
from fleetsim.errors import UserError
from fleetsim.pki import CertificateAuthority, certificate_pem, load_private_key


@pytest.fixture
async def store(tmp_path: Path) -> IdentityStore:
    ca = CertificateAuthority.create("test root")
    identity = await KeyFactory().new_identity("fleet-a", 0, "dev-0")
    cert = ca.issue_device(load_private_key(identity.private_key_pem).public_key())
    store = IdentityStore(tmp_path, "fleet-a")
    store.save(identity.with_certificate(certificate_pem(cert), arn="arn:aws:iot:::cert/x"))
    return store


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


DAMAGE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "key missing": ("key", Path.unlink, "is missing"),
    "key truncated": ("key", truncate, "is not a readable PEM private key"),
    "key garbage": ("key", lambda p: p.write_bytes(b"\x00\xff garbage"),
                    "is not a readable PEM private key"),
    "crt missing": ("crt", Path.unlink, "is missing"),
    "crt truncated": ("crt", truncate, "is not a readable certificate"),
    "json truncated": ("json", truncate, "is not valid JSON"),
    "json not utf-8": ("json", lambda p: p.write_bytes(b"\xff\xfe{"), "is not valid JSON"),
    "json wrong type": ("json", lambda p: p.write_text('{"index": "zero"}'),
                        "has no valid 'fleet'"),
    "json a list": ("json", lambda p: p.write_text("[]"), "is not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_files_are_named_with_what_to_do(store: IdentityStore, case: str) -> None:
    suffix, damage, what = DAMAGE[case]
    path = store.directory / f"dev-0.{suffix}"
    damage(path)
    with pytest.raises(IdentityDamaged) as caught:
        store.load("dev-0")
    assert isinstance(caught.value, UserError)
    assert str(caught.value) == (
        f"stored identity file {path} {what}: delete the files of dev-0 in {store.directory} "
        "(or run `fleetsim cleanup`) to provision that device again")


def test_nothing_stored_is_not_damage(store: IdentityStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.load("dev-1")


def test_a_key_that_parses_only_as_armour_is_named_when_the_device_connects(
        store: IdentityStore, tmp_path: Path) -> None:
    """The store checks the key's PEM armour only (parsing every key cost most of a
    10,000-device start-up); OpenSSL's parse at connect names the file in one sentence."""
    import base64
    import socket

    from fleetsim.device.tls import TlsContextFactory
    from fleetsim.target import Target

    key = store.directory / "dev-0.key"
    body = base64.encodebytes(bytes(range(121))).decode()
    key.write_text(f"-----BEGIN EC PRIVATE KEY-----\n{body}-----END EC PRIVATE KEY-----\n")
    identity = store.load("dev-0")  # armour and base64 are fine
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(certificate_pem(CertificateAuthority.create("other").cert))
    tls = TlsContextFactory(Target.local("http://x", "127.0.0.1", 1, ca_file)).device_tls(identity)
    a, b = socket.socketpair()
    with a, b, pytest.raises(IdentityDamaged) as caught:
        tls.wrap_socket(a, server_hostname="localhost", do_handshake_on_connect=False)
    assert str(caught.value).startswith(f"stored identity file {key} or its certificate is not")
