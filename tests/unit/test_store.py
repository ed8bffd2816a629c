"""The SQLite registry: data kept consistent, answers for the broker, persistence."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.localcore.store import Store, certificate_record
from fleetsim.pki import CertificateAuthority, generate_key
from tests.helpers import ALLOW_ALL

ACCOUNT, REGION = "123456789012", "us-east-1"
GROUP_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["arn:aws:iot:*:*:topic/g"]}]})


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("test CA")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db", ACCOUNT, REGION)
    yield s
    s.close()


def new_cert(store: Store, ca: CertificateAuthority, status: str = "ACTIVE") -> bytes:
    cert = ca.issue_device(generate_key().public_key(), "dev")
    store.insert_certificate(certificate_record(cert, status))
    return cert.public_bytes(Encoding.DER)


def test_wal_mode_and_schema(store: Store, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"things", "thing_types", "thing_groups", "thing_group_members", "certificates",
            "ca_certificates", "policies", "policy_versions", "policy_targets",
            "thing_principals", "meta"} <= tables


def test_thing_crud_and_versions(store: Store) -> None:
    thing = store.create_thing("t1", None, {"a": "1"})
    assert (thing.version, store.get_thing("t1").attributes) == (1, {"a": "1"})
    updated = store.update_thing(thing, {"b": "2"}, None)
    again = store.get_thing("t1")
    assert updated.version == again.version == 2
    assert again.attributes == {"b": "2"}
    store.delete_thing(again)
    assert store.get_thing("t1") is None


def test_list_things_pages_and_filters(store: Store) -> None:
    for i in range(7):
        store.create_thing(f"t{i}", None, {"color": "red" if i % 2 else "blue", "n": str(i)})
    page, last = store.list_things(0, 3)
    assert [t.name for t in page] == ["t0", "t1", "t2"]
    page2, last2 = store.list_things(last, 3)
    page3, last3 = store.list_things(last2, 3)
    assert [t.name for t in page2 + page3] == ["t3", "t4", "t5", "t6"] and last3 is None
    red, _ = store.list_things(0, 50, "color", "red")
    assert [t.name for t in red] == ["t1", "t3", "t5"]
    prefixed, _ = store.list_things(0, 50, "color", "bl", prefix=True)
    assert len(prefixed) == 4
    # attribute index follows updates
    store.update_thing(store.get_thing("t0"), {"color": "green"}, None)
    assert [t.name for t in store.list_things(0, 50, "color", "green")[0]] == ["t0"]
    assert len(store.list_things(0, 50, "color", "blue")[0]) == 3


def test_unknown_certificate_has_no_principal(store: Store, ca: CertificateAuthority) -> None:
    cert = ca.issue_device(generate_key().public_key())
    assert store.principal_for_certificate(cert.public_bytes(Encoding.DER)) is None


def test_principal_collects_things_and_inherited_group_policies(
        store: Store, ca: CertificateAuthority) -> None:
    der = new_cert(store, ca)
    principal = store.principal_for_certificate(der)
    assert principal is not None and principal.status == "ACTIVE"
    assert principal.things == () and principal.certificate_policies == ()
    cert_arn = principal.certificate_arn
    store.create_policy("direct", ALLOW_ALL)
    store.create_policy("from-root", GROUP_POLICY)
    store.create_thing("dev1", None, {"room": "1"})
    store.create_thing_group("root", None, None, {})
    store.create_thing_group("child", "root", None, {})
    epoch = store.epoch
    store.attach_policy("direct", cert_arn)
    store.attach_policy("from-root", store.arn("thinggroup", "root"))
    store.attach_thing_principal("dev1", cert_arn)
    store.add_thing_to_group("child", "dev1")
    assert store.epoch > epoch
    principal = store.principal_for_certificate(der)
    assert [t.name for t in principal.things] == ["dev1"]
    assert principal.things[0].attributes == {"room": "1"}
    assert principal.things[0].principal_type == "NON_EXCLUSIVE_THING"
    assert [p["PolicyName"] for p in principal.certificate_policies] == ["direct"]
    group_policies = principal.things[0].group_policies
    assert [p["PolicyName"] for p in group_policies] == ["from-root"]
    assert group_policies[0]["Statement"][0]["Action"] == ["iot:Publish"]
    assert [p["PolicyName"] for p in principal.policies_for("dev1")] == ["direct", "from-root"]
    assert [p["PolicyName"] for p in principal.policies_for("other")] == ["direct"]


def test_principal_carries_the_exclusive_thing_association(
        store: Store, ca: CertificateAuthority) -> None:
    der = new_cert(store, ca)
    cert_arn = store.principal_for_certificate(der).certificate_arn
    store.create_thing("solo", None, {})
    store.attach_thing_principal("solo", cert_arn, "EXCLUSIVE_THING")
    principal = store.principal_for_certificate(der)
    assert principal.things[0].principal_type == "EXCLUSIVE_THING"
    assert principal.connection_thing("any-client-id") == principal.things[0]


def test_policy_default_version_change_moves_epoch_and_content(
        store: Store, ca: CertificateAuthority) -> None:
    der = new_cert(store, ca)
    arn = store.principal_for_certificate(der).certificate_arn
    policy = store.create_policy("p", ALLOW_ALL)
    store.attach_policy("p", arn)
    principal = store.principal_for_certificate(der)
    assert principal.certificate_policies[0]["Statement"][0]["Action"] == ["iot:*"]
    epoch = store.epoch
    store.create_policy_version(policy, GROUP_POLICY, set_default=True)
    assert store.epoch > epoch
    statement = store.principal_for_certificate(der).certificate_policies[0]["Statement"][0]
    assert statement["Action"] == ["iot:Publish"]


def test_certificate_status_change_bumps_epoch(store: Store, ca: CertificateAuthority) -> None:
    der = new_cert(store, ca)
    principal = store.principal_for_certificate(der)
    epoch = store.epoch
    store.set_certificate_status(store.get_certificate(principal.certificate_id), "INACTIVE")
    assert store.epoch > epoch
    assert store.principal_for_certificate(der).status == "INACTIVE"


def test_group_hierarchy_queries(store: Store) -> None:
    store.create_thing_group("a", None, None, {})
    store.create_thing_group("b", "a", None, {})
    store.create_thing_group("c", "b", None, {})
    assert store.ancestors("c") == ["b", "a"]
    assert store.descendants("a") == ["b", "c"]
    store.create_thing("t", None, {})
    store.add_thing_to_group("c", "t")
    assert store.things_in_groups(["a", *store.descendants("a")], "", 10) == (["t"], None)
    assert store.add_thing_to_group("c", "t") is None  # already a member


def test_state_survives_reopen(tmp_path: Path, ca: CertificateAuthority) -> None:
    store = Store(tmp_path / "s.db", ACCOUNT, REGION)
    store.create_thing("keep", None, {"k": "v"})
    store.create_policy("p", ALLOW_ALL)
    der = new_cert(store, ca)
    store.update_event_config({"THING": True})
    code = store.registration_code
    store.close()
    reopened = Store(tmp_path / "s.db", ACCOUNT, REGION)
    assert reopened.get_thing("keep").attributes == {"k": "v"}
    assert reopened.get_policy("p").document == ALLOW_ALL
    assert reopened.principal_for_certificate(der) is not None
    assert reopened.event_enabled("THING") and not reopened.event_enabled("JOB")
    assert reopened.registration_code == code and len(code) == 64
    reopened.close()


def test_trust_anchors_are_cas_and_ca_less_certificates(store: Store,
                                                        ca: CertificateAuthority) -> None:
    assert store.trust_anchor_pems() == []
    cert = ca.issue_device(generate_key().public_key())
    store.insert_certificate(certificate_record(cert, "ACTIVE", mode="SNI_ONLY"))
    assert store.trust_anchor_pems() == [certificate_record(cert, "ACTIVE").pem]


def test_issuing_ca_finds_the_registered_signer(store: Store, ca: CertificateAuthority) -> None:
    from fleetsim.localcore.store import CaCertificateRecord
    from fleetsim.pki import certificate_id, certificate_pem

    device = ca.issue_device(generate_key().public_key())
    assert store.issuing_ca(device) is None
    other = CertificateAuthority.create("test CA")  # same subject, different key
    for authority in (other, ca):
        store.insert_ca_certificate(CaCertificateRecord(
            certificate_id(authority.cert.public_bytes(Encoding.DER)),
            certificate_pem(authority.cert).decode(), "ACTIVE", "DISABLE", None, "DEFAULT",
            0.0, 0.0, 1, "g", None, None))
    found = store.issuing_ca(device)
    assert found is not None
    assert found.id == certificate_id(ca.cert.public_bytes(Encoding.DER))


def test_auto_registration_needs_an_active_ca_with_auto_registration(
        store: Store, ca: CertificateAuthority) -> None:
    from fleetsim.localcore.store import CaCertificateRecord
    from fleetsim.pki import certificate_id, certificate_pem

    ca_id = certificate_id(ca.cert.public_bytes(Encoding.DER))
    record = store.insert_ca_certificate(CaCertificateRecord(
        ca_id, certificate_pem(ca.cert).decode(), "ACTIVE", "DISABLE", None, "DEFAULT",
        0.0, 0.0, 1, "g", None, None))
    der = ca.issue_device(generate_key().public_key()).public_bytes(Encoding.DER)
    assert store.auto_register_certificate(der) is None  # auto-registration disabled
    record.auto_registration = "ENABLE"
    store.update_ca_certificate(record)
    registered = store.auto_register_certificate(der)
    assert registered is not None
    cert, issuer = registered
    assert (cert.status, cert.ca_id, issuer.id) == ("PENDING_ACTIVATION", ca_id, ca_id)
    assert store.principal_for_certificate(der).status == "PENDING_ACTIVATION"
    assert store.auto_register_certificate(der) is None  # already registered
