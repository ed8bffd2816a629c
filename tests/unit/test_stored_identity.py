"""A stored identity re-used at start-up (`IdentityStore.stored`, a `StoredIdentity`) reads
its `.json` only; its key and certificate files are read, and checked, when first used (as
its device's TLS is prepared), and it crosses the split run's pipe unread (issue 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetsim.device.identity import IdentityDamaged, IdentityStore, KeyFactory, StoredIdentity
from fleetsim.engine.split import _flat, _identity
from fleetsim.pki import CertificateAuthority, certificate_pem, load_private_key

ARN = "arn:aws:iot:us-east-1:123456789012:cert/x"


@pytest.fixture
async def store(tmp_path: Path) -> IdentityStore:
    ca = CertificateAuthority.create("test root")
    identity = await KeyFactory().new_identity("fleet-a", 3, "dev-3")
    cert = ca.issue_device(load_private_key(identity.private_key_pem).public_key())
    store = IdentityStore(tmp_path, "fleet-a")
    store.save(identity.with_certificate(certificate_pem(cert), arn=ARN))
    store.save(await KeyFactory().new_identity("fleet-a", 4, "dev-4"))  # no certificate yet
    return store


def test_stored_reads_the_json_now_and_the_key_and_certificate_when_used(
        store: IdentityStore) -> None:
    full = store.load("dev-3")
    lazy = store.stored("dev-3")
    assert isinstance(lazy, StoredIdentity) and not lazy.loaded
    assert (lazy.index, lazy.certificate_id, lazy.certificate_arn) == (
        3, full.certificate_id, ARN)
    assert (lazy.key_path, lazy.cert_path) == (full.key_path, full.cert_path)
    assert lazy.private_key_pem == full.private_key_pem and lazy.loaded
    assert lazy.certificate_pem == full.certificate_pem


def test_nothing_stored_or_no_certificate_is_none(store: IdentityStore) -> None:
    assert store.stored("dev-9") is None
    assert store.stored("dev-4") is None


@pytest.mark.parametrize(("suffix", "damage", "problem"), [
    (".key", lambda p: p.unlink(), "is missing"),
    (".key", lambda p: p.write_bytes(b"garbage"), "is not a readable PEM private key"),
    (".crt", lambda p: p.write_bytes(b"-----BEGIN CERTIFICATE-----\n"),
     "is not a readable certificate"),
])
def test_a_file_damaged_after_start_up_is_named_at_first_use(
        store: IdentityStore, suffix: str, damage: object, problem: str) -> None:
    lazy = store.stored("dev-3")
    assert lazy is not None
    path = store.directory / f"dev-3{suffix}"
    damage(path)  # type: ignore[operator]
    with pytest.raises(IdentityDamaged, match=problem) as raised:
        lazy.private_key_pem  # noqa: B018 - the first use
    assert raised.value.path == path


def test_a_damaged_json_is_named_at_once(store: IdentityStore) -> None:
    (store.directory / "dev-3.json").write_text("{")
    with pytest.raises(IdentityDamaged, match="is not valid JSON"):
        store.stored("dev-3")


def test_an_unread_identity_crosses_the_pipe_unread_and_a_read_one_whole(
        store: IdentityStore) -> None:
    lazy = store.stored("dev-3")
    assert lazy is not None
    flat = _flat(lazy)
    assert flat is not None and not any(isinstance(v, bytes) for v in flat)  # no PEM in it
    back = _identity(flat)
    assert isinstance(back, StoredIdentity) and not back.loaded
    assert (back.thing_name, back.index, back.certificate_arn, back.key_path) == (
        "dev-3", 3, ARN, lazy.key_path)
    assert back.private_key_pem == store.load("dev-3").private_key_pem
    lazy.private_key_pem  # noqa: B018 - read in the child: handed over as it is
    whole = _identity(_flat(lazy))
    assert whole is not None and whole.certificate_pem == lazy.certificate_pem
