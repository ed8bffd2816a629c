"""Start-up re-using persistent identities (issue 9): the cheaper paths give what the slower
ones gave. Standing attachments counted equal those `journal.settle` keeps; ListCertificates
pages read by the bare hook give the statuses botocore's parse gives, and only while asked;
`IdentityStore.load_if_stored` says what `exists` + `load` said, with one read per file;
`Ledger.reuse_many` tallies as `reuse` one by one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.control.journal import VOID, Entry, settle
from fleetsim.device.identity import (
    DeviceIdentity,
    IdentityDamaged,
    IdentityStore,
    _read,
)
from fleetsim.engine import stored
from fleetsim.engine.reconcile import Ledger
from fleetsim.engine.stored import THING_PRINCIPAL, bare_statuses, standing_attachments
from fleetsim.pki import CertificateAuthority, certificate_pem, generate_key, private_key_pem

THINGS = st.sampled_from(["a", "b"])
PRINCIPALS = st.sampled_from(["arn:1", "arn:2"])


@st.composite
def journal_entries(draw: st.DrawFn) -> list[Entry]:
    out = []
    for _ in range(draw(st.integers(0, 12))):
        data = {"thing": draw(THINGS), "principal": draw(PRINCIPALS)}
        kind = draw(st.sampled_from([THING_PRINCIPAL, VOID, "thing"]))
        if kind == VOID:
            out.append(Entry(VOID, {"of": draw(st.sampled_from([THING_PRINCIPAL, "thing"])),
                                    **data}))
        elif kind == "thing":
            out.append(Entry("thing", {"name": data["thing"]}))
        else:
            out.append(Entry(kind, data))
    return out


@given(journal_entries())
def test_standing_attachments_are_what_settle_keeps(entries: list[Entry]) -> None:
    settled = {(e.data["thing"], e.data["principal"]) for e in settle(entries)
               if e.kind == THING_PRINCIPAL}
    assert standing_attachments(entries) == settled


def test_an_attachment_with_other_data_is_not_voided_by_a_void_without_it() -> None:
    entries = [Entry(THING_PRINCIPAL, {"thing": "a", "principal": "p", "extra": [1]}),
               Entry(VOID, {"of": THING_PRINCIPAL, "thing": "a", "principal": "p"})]
    assert standing_attachments(entries) == {("a", "p")}


PAGE = {"certificates": [
    {"certificateArn": "arn:aws:iot:r:1:cert/c1", "certificateId": "c1", "status": "ACTIVE",
     "certificateMode": "DEFAULT", "creationDate": 1700000000.5},
    {"certificateArn": "arn:aws:iot:r:1:cert/c2", "certificateId": "c2", "status": "REVOKED",
     "certificateMode": "DEFAULT", "creationDate": 1700000001}], "nextMarker": "m2"}


def test_bare_statuses_reads_a_page_only_while_asked() -> None:
    body = json.dumps(PAGE).encode()
    response = {"status_code": 200, "body": body, "headers": {}}
    custom: dict[str, object] = {}
    bare_statuses(response_dict=response, customized_response_dict=custom)
    assert custom == {} and response["body"] == body  # not asked: botocore parses it
    token = stored._BARE.set(True)
    try:
        bare_statuses(response_dict=response, customized_response_dict=custom)
        assert custom == {"statuses": {"c1": "ACTIVE", "c2": "REVOKED"}, "nextMarker": "m2"}
        assert response["body"] == b"{}"
        error = {"status_code": 400, "body": b'{"message": "no"}', "headers": {}}
        bare_statuses(response_dict=error, customized_response_dict=(other := {}))
        assert other == {} and error["body"] == b'{"message": "no"}'
    finally:
        stored._BARE.reset(token)


def _identity(store: IdentityStore, name: str, with_cert: bool = True) -> DeviceIdentity:
    key = private_key_pem(generate_key("ec-p256"))
    identity = DeviceIdentity(store.fleet, 0, name, "ec-p256", key)
    if with_cert:
        identity = DeviceIdentity(store.fleet, 0, name, "ec-p256", key, _certificate(),
                                  "ab" * 32, "arn:aws:iot:r:1:cert/" + "ab" * 32)
    return store.save(identity)


def _certificate() -> bytes:
    ca = CertificateAuthority.create("test CA")
    return certificate_pem(ca.cert)


@pytest.mark.parametrize("missing", [".json", ".key", ".json.key"])
def test_load_if_stored_is_none_where_exists_is_false(tmp_path: Path, missing: str) -> None:
    store = IdentityStore(tmp_path, "f")
    _identity(store, "d-1")
    for suffix in (".json", ".key"):
        if suffix in missing:
            (store.directory / f"d-1{suffix}").unlink()
    assert not store.exists("d-1")
    assert store.load_if_stored("d-1") is None


def test_load_if_stored_loads_what_load_loads(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path, "f")
    saved = _identity(store, "d-1")
    loaded = store.load_if_stored("d-1")
    assert loaded is not None
    assert (loaded.private_key_pem, loaded.certificate_pem, loaded.certificate_id,
            loaded.certificate_arn) == (saved.private_key_pem, saved.certificate_pem,
                                        saved.certificate_id, saved.certificate_arn)
    assert loaded.key_path == saved.key_path == store.directory / "d-1.key"
    assert loaded.cert_path == saved.cert_path == store.directory / "d-1.crt"
    without = _identity(store, "d-2", with_cert=False)
    again = store.load_if_stored("d-2")
    assert again is not None and again.certificate_pem is None and again.cert_path is None
    assert without.cert_path is None


@pytest.mark.parametrize("damage", ["truncated key", "key padding", "certificate",
                                    "certificate missing", "json"])
def test_load_if_stored_names_a_damaged_file_where_it_is_read(tmp_path: Path,
                                                              damage: str) -> None:
    """The `.json` at once; the key and certificate where they are used (a connect), never
    kept in memory."""
    store = IdentityStore(tmp_path, "f")
    saved = _identity(store, "d-1")
    assert saved.key_path is not None and saved.cert_path is not None
    key = saved.key_path.read_bytes()
    target = {"truncated key": saved.key_path, "key padding": saved.key_path,
              "certificate": saved.cert_path, "certificate missing": saved.cert_path,
              "json": store.directory / "d-1.json"}[damage]
    if damage == "certificate missing":
        target.unlink()
    else:
        target.write_bytes({"truncated key": key[:60],
                            "key padding": key.replace(b"\n-----END", b"A\n-----END"),
                            "certificate": saved.cert_path.read_bytes()[:100],
                            "json": b"{"}[damage])
    with pytest.raises(IdentityDamaged) as caught:
        loaded = store.load_if_stored("d-1")
        assert damage != "json" and loaded is not None
        assert loaded.in_memory() == (None, None)
        loaded.check_files()
    assert str(target) in str(caught.value)
    with pytest.raises(IdentityDamaged):
        store.load("d-1")  # `load` reads and checks every file at once


def test_a_stored_identity_reads_its_files_at_each_use(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path, "f")
    saved = _identity(store, "d-1")
    assert None not in saved.in_memory()  # saved: its own, whatever the files become
    loaded = store.load_if_stored("d-1")
    assert loaded is not None and loaded.in_memory() == (None, None)
    assert loaded.private_key_pem == saved.private_key_pem
    assert "PRIVATE KEY" not in repr(loaded)
    other = private_key_pem(generate_key("ec-p256"))
    assert saved.key_path is not None
    saved.key_path.write_bytes(other)
    assert loaded.private_key_pem == other  # not kept
    assert saved.private_key_pem != other
    held = DeviceIdentity(store.fleet, 0, "d-2", "ec-p256", other)
    assert held.in_memory() == (other, None) and held.certificate_pem is None
    with pytest.raises(ValueError, match="neither a key nor a key file"):
        _ = DeviceIdentity(store.fleet, 0, "d-3", "ec-p256", None).private_key_pem


def test_read_reads_a_file_larger_than_one_read(tmp_path: Path) -> None:
    path = tmp_path / "big"
    data = os.urandom(200_000)
    path.write_bytes(data)
    assert _read(str(path)) == data


def test_reuse_many_tallies_as_reuse_one_by_one() -> None:
    one, many = Ledger(), Ledger()
    names = [f"t{i}" for i in range(7)]
    one.reuse("thing", "t-first")
    many.reuse("thing", "t-first")
    for name in names:
        one.reuse("thing", name)
    many.reuse_many("thing", names)
    many.reuse_many("thing", [])
    assert one.reused == many.reused and one.reused_things == many.reused_things


def test_stored_identities_share_their_folder_and_names(tmp_path: Path) -> None:
    """What a 10,000-device start-up holds per identity: its own certificate id and ARN, not
    a dict, two file paths and copies of its fleet, key type and thing name."""
    store = IdentityStore(tmp_path, "f")
    for name in ("d-1", "d-2"):
        _identity(store, name)
    name = "".join(["d-", "1"])  # an equal string that is another object
    one, two = store.load_if_stored(name), store.load_if_stored("d-2")
    assert one is not None and two is not None
    assert not hasattr(one, "__dict__")
    assert one.folder is two.folder and one.fleet is two.fleet is store.fleet
    assert one.thing_name is name and one.key_type is two.key_type
    assert one.stored_file(".crt") == str(store.directory / "d-1.crt")


def test_a_stored_identity_costs_under_600_bytes_besides_its_name(tmp_path: Path) -> None:
    """tracemalloc of loading 500 stored identities: ~490 bytes each (the object, its
    certificate id and ARN, its index, the list) where a dict, two paths and copies of three
    names made ~950."""
    import tracemalloc

    store = IdentityStore(tmp_path, "f")
    key = private_key_pem(generate_key("ec-p256"))
    cert = _certificate()
    names = [f"d-{i}" for i in range(500)]
    for i, name in enumerate(names):
        store.save(DeviceIdentity("f", i, name, "ec-p256", key, cert, f"{i:064x}",
                                  f"arn:aws:iot:us-east-1:123456789012:cert/{i:064x}"))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        loaded = [store.load_if_stored(name) for name in names]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(i is not None and i.in_memory() == (None, None) for i in loaded)
    assert held / len(names) < 600, f"{held / len(names):.0f} bytes per identity"
