"""The registry's services over SQLite: data kept consistent, answers for the broker (the
authority read model), persistence, the epoch moved by the database layer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.localcore.core import LocalCore, LocalCoreConfig
from fleetsim.localcore.db.migrations import migrations
from fleetsim.localcore.features.certificates.records import (
    CaCertificateRecord,
    certificate_record,
)
from fleetsim.localcore.scope import Scope
from fleetsim.pki import CertificateAuthority, certificate_id, certificate_pem, generate_key
from tests.helpers import ALLOW_ALL

SCOPE = Scope("123456789012", "us-east-1")
GROUP_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iot:Publish"], "Resource": ["arn:aws:iot:*:*:topic/g"]}]})


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("test CA")


def open_core(state_dir: Path) -> LocalCore:
    return LocalCore(LocalCoreConfig(state_dir=state_dir, api_port=0, mqtt_port=0))


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LocalCore]:
    c = open_core(tmp_path)
    yield c
    await c.bus.close()
    c.db.close()


def new_cert(core: LocalCore, ca: CertificateAuthority, status: str = "ACTIVE",
             mode: str = "DEFAULT") -> bytes:
    cert = ca.issue_device(generate_key().public_key(), "dev")
    core.services.get("certificates")._add(SCOPE, certificate_record(cert, status, mode=mode))
    return cert.public_bytes(Encoding.DER)


async def test_wal_mode_and_schema(core: LocalCore, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"things", "thing_types", "thing_groups", "thing_group_members", "certificates",
            "ca_certificates", "policies", "policy_versions", "policy_targets",
            "thing_principals", "meta", "registration_codes", "event_configurations"} <= tables
    newest = str(migrations()[-1][0])
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == \
        (newest,)


async def test_thing_crud_and_versions(core: LocalCore) -> None:
    registry = core.services.get("registry")
    thing = registry.create_thing(SCOPE, "t1", None, {"a": "1"})
    assert (thing.version, registry.get_thing(SCOPE, "t1").attributes) == (1, {"a": "1"})
    updated = registry.update_thing(SCOPE, "t1", attribute_payload={"attributes": {"b": "2"}})
    again = registry.get_thing(SCOPE, "t1")
    assert updated.version == again.version == 2
    assert again.attributes == {"b": "2"}
    registry.delete_thing(SCOPE, "t1")
    assert registry.get_thing(SCOPE, "t1") is None


async def test_list_things_pages_and_filters(core: LocalCore) -> None:
    registry = core.services.get("registry")
    for i in range(7):
        registry.create_thing(SCOPE, f"t{i}", None,
                              {"color": "red" if i % 2 else "blue", "n": str(i)})
    page, last = registry.list_things(SCOPE, 0, 3)
    assert [t.name for t in page] == ["t0", "t1", "t2"]
    page2, last2 = registry.list_things(SCOPE, last, 3)
    page3, last3 = registry.list_things(SCOPE, last2, 3)
    assert [t.name for t in page2 + page3] == ["t3", "t4", "t5", "t6"] and last3 is None
    red, _ = registry.list_things(SCOPE, 0, 50, "color", "red")
    assert [t.name for t in red] == ["t1", "t3", "t5"]
    prefixed, _ = registry.list_things(SCOPE, 0, 50, "color", "bl", prefix=True)
    assert len(prefixed) == 4
    # attribute index follows updates
    registry.update_thing(SCOPE, "t0", attribute_payload={"attributes": {"color": "green"}})
    assert [t.name for t in registry.list_things(SCOPE, 0, 50, "color", "green")[0]] == ["t0"]
    assert len(registry.list_things(SCOPE, 0, 50, "color", "blue")[0]) == 3


async def test_unknown_certificate_has_no_principal(core: LocalCore,
                                                    ca: CertificateAuthority) -> None:
    cert = ca.issue_device(generate_key().public_key())
    assert core.authority.principal_for_certificate(cert.public_bytes(Encoding.DER)) is None


async def test_principal_collects_things_and_inherited_group_policies(
        core: LocalCore, ca: CertificateAuthority) -> None:
    registry, policies = core.services.get("registry"), core.services.get("policies")
    der = new_cert(core, ca)
    principal = core.authority.principal_for_certificate(der)
    assert principal is not None and principal.status == "ACTIVE"
    assert principal.things == () and principal.certificate_policies == ()
    cert_arn = principal.certificate_arn
    policies.create_policy(SCOPE, "direct", ALLOW_ALL)
    policies.create_policy(SCOPE, "from-root", GROUP_POLICY)
    registry.create_thing(SCOPE, "dev1", None, {"room": "1"})
    registry.create_thing_group(SCOPE, "root", None, None, {})
    registry.create_thing_group(SCOPE, "child", "root", None, {})
    epoch = core.authority.epoch
    policies.attach_policy(SCOPE, "direct", cert_arn)
    policies.attach_policy(SCOPE, "from-root", SCOPE.arn("thinggroup", "root"))
    registry.attach_thing_principal(SCOPE, "dev1", cert_arn)
    registry.add_thing_to_group(SCOPE, registry.require_group(SCOPE, "child"),
                                registry.require_thing(SCOPE, "dev1"))
    assert core.authority.epoch > epoch
    principal = core.authority.principal_for_certificate(der)
    assert [t.name for t in principal.things] == ["dev1"]
    assert principal.things[0].attributes == {"room": "1"}
    assert principal.things[0].principal_type == "NON_EXCLUSIVE_THING"
    assert [p["PolicyName"] for p in principal.certificate_policies] == ["direct"]
    group_policies = principal.things[0].group_policies
    assert [p["PolicyName"] for p in group_policies] == ["from-root"]
    assert group_policies[0]["Statement"][0]["Action"] == ["iot:Publish"]
    assert [p["PolicyName"] for p in principal.policies_for("dev1")] == ["direct", "from-root"]
    assert [p["PolicyName"] for p in principal.policies_for("other")] == ["direct"]


async def test_principal_carries_the_exclusive_thing_association(
        core: LocalCore, ca: CertificateAuthority) -> None:
    registry = core.services.get("registry")
    der = new_cert(core, ca)
    cert_arn = core.authority.principal_for_certificate(der).certificate_arn
    registry.create_thing(SCOPE, "solo", None, {})
    registry.attach_thing_principal(SCOPE, "solo", cert_arn, "EXCLUSIVE_THING")
    principal = core.authority.principal_for_certificate(der)
    assert principal.things[0].principal_type == "EXCLUSIVE_THING"
    assert principal.connection_thing("any-client-id") == principal.things[0]


async def test_policy_default_version_change_moves_epoch_and_content(
        core: LocalCore, ca: CertificateAuthority) -> None:
    policies = core.services.get("policies")
    der = new_cert(core, ca)
    arn = core.authority.principal_for_certificate(der).certificate_arn
    policies.create_policy(SCOPE, "p", ALLOW_ALL)
    policies.attach_policy(SCOPE, "p", arn)
    principal = core.authority.principal_for_certificate(der)
    assert principal.certificate_policies[0]["Statement"][0]["Action"] == ["iot:*"]
    epoch = core.authority.epoch
    policies.create_policy_version(SCOPE, "p", GROUP_POLICY, set_default=True)
    assert core.authority.epoch > epoch
    statement = core.authority.principal_for_certificate(der).certificate_policies[0][
        "Statement"][0]
    assert statement["Action"] == ["iot:Publish"]


async def test_a_principal_is_resolved_once_until_the_epoch_moves(
        core: LocalCore, ca: CertificateAuthority) -> None:
    der = new_cert(core, ca)
    first = core.authority.principal_for_certificate(der)
    assert core.authority.principal_for_certificate(der) is first  # no second look-up
    core.services.get("registry").create_thing(SCOPE, "dev1", None, {})
    core.services.get("registry").attach_thing_principal(SCOPE, "dev1", first.certificate_arn)
    again = core.authority.principal_for_certificate(der)
    assert again is not first and [t.name for t in again.things] == ["dev1"]


async def test_a_principal_read_inside_an_open_transaction_is_not_kept(
        core: LocalCore, ca: CertificateAuthority) -> None:
    der = new_cert(core, ca)
    certificates = core.services.get("certificates")
    cert_id = certificate_id(der)
    try:
        with core.db.transaction():
            certificates.update_certificate(SCOPE, cert_id, "INACTIVE")
            assert core.authority.principal_for_certificate(der).status == "INACTIVE"
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert core.authority.principal_for_certificate(der).status == "ACTIVE"


async def test_certificate_status_change_bumps_epoch(core: LocalCore,
                                                     ca: CertificateAuthority) -> None:
    der = new_cert(core, ca)
    principal = core.authority.principal_for_certificate(der)
    epoch = core.authority.epoch
    core.services.get("certificates").update_certificate(SCOPE, principal.certificate_id,
                                                         "INACTIVE")
    assert core.authority.epoch > epoch
    assert core.authority.principal_for_certificate(der).status == "INACTIVE"


async def test_reads_and_writes_elsewhere_leave_the_epoch(core: LocalCore) -> None:
    epoch = core.authority.epoch
    core.services.get("registry").create_thing_type(SCOPE, "type", None, [])
    core.services.get("events").update(SCOPE, {"THING": True})
    core.services.get("registry").list_things(SCOPE, 0, 10)
    assert core.authority.epoch == epoch


async def test_group_hierarchy_queries(core: LocalCore) -> None:
    registry = core.services.get("registry")
    registry.create_thing_group(SCOPE, "a", None, None, {})
    registry.create_thing_group(SCOPE, "b", "a", None, {})
    registry.create_thing_group(SCOPE, "c", "b", None, {})
    assert registry.ancestors(SCOPE, "c") == ["b", "a"]
    assert registry.descendants(SCOPE, "a") == ["b", "c"]
    registry.create_thing(SCOPE, "t", None, {})
    group, thing = registry.require_group(SCOPE, "c"), registry.require_thing(SCOPE, "t")
    registry.add_thing_to_group(SCOPE, group, thing)
    assert registry.things_in_group(SCOPE, "a", True, "", 10) == (["t"], None)
    epoch = core.authority.epoch
    registry.add_thing_to_group(SCOPE, group, thing)  # already a member: nothing written
    assert registry.groups_of_thing(SCOPE, "t") == ["c"] and core.authority.epoch == epoch


async def test_state_survives_reopen(tmp_path: Path, ca: CertificateAuthority) -> None:
    core = open_core(tmp_path)
    core.services.get("registry").create_thing(SCOPE, "keep", None, {"k": "v"})
    core.services.get("policies").create_policy(SCOPE, "p", ALLOW_ALL)
    der = new_cert(core, ca)
    core.services.get("events").update(SCOPE, {"THING": True})
    code = core.services.get("certificates").registration_code(SCOPE)
    await core.bus.close()
    core.db.close()
    reopened = open_core(tmp_path)
    assert reopened.services.get("registry").get_thing(SCOPE, "keep").attributes == {"k": "v"}
    assert reopened.services.get("policies").get_policy(SCOPE, "p").document == ALLOW_ALL
    assert reopened.authority.principal_for_certificate(der) is not None
    events = reopened.services.get("events")
    assert events.enabled(SCOPE, "THING") and not events.enabled(SCOPE, "JOB")
    assert reopened.services.get("certificates").registration_code(SCOPE) == code
    assert len(code) == 64
    await reopened.bus.close()
    reopened.db.close()


async def test_trust_anchors_are_cas_and_ca_less_certificates(core: LocalCore,
                                                        ca: CertificateAuthority) -> None:
    certificates = core.services.get("certificates")
    assert certificates.trust_anchor_pems() == []
    der = new_cert(core, ca, mode="SNI_ONLY")
    assert certificates.trust_anchor_pems() == [
        certificates.get_certificate(SCOPE, certificate_id(der)).pem]


def _ca_record(authority: CertificateAuthority, auto: str = "DISABLE") -> CaCertificateRecord:
    return CaCertificateRecord(
        certificate_id(authority.cert.public_bytes(Encoding.DER)),
        certificate_pem(authority.cert).decode(), "ACTIVE", auto, None, "DEFAULT",
        0.0, 0.0, 1, "g", None, None)


async def test_issuing_ca_finds_the_registered_signer(core: LocalCore,
                                                ca: CertificateAuthority) -> None:
    certificates = core.services.get("certificates")
    device = ca.issue_device(generate_key().public_key())
    assert certificates.issuing_ca(SCOPE, device) is None
    other = CertificateAuthority.create("test CA")  # same subject, different key
    for authority in (other, ca):
        certificates.add_ca_certificate(SCOPE, _ca_record(authority))
    found = certificates.issuing_ca(SCOPE, device)
    assert found is not None
    assert found.id == certificate_id(ca.cert.public_bytes(Encoding.DER))


async def test_auto_registration_needs_an_active_ca_with_auto_registration(
        core: LocalCore, ca: CertificateAuthority) -> None:
    certificates = core.services.get("certificates")
    record = certificates.add_ca_certificate(SCOPE, _ca_record(ca))
    der = ca.issue_device(generate_key().public_key()).public_bytes(Encoding.DER)
    assert certificates.auto_register_certificate(SCOPE, der) is None  # disabled
    certificates.update_ca_certificate(SCOPE, record.id, auto_registration="ENABLE")
    registered = certificates.auto_register_certificate(SCOPE, der)
    assert registered is not None
    cert, issuer = registered
    assert (cert.status, cert.ca_id, issuer.id) == ("PENDING_ACTIVATION", record.id, record.id)
    assert core.authority.principal_for_certificate(der).status == "PENDING_ACTIVATION"
    assert certificates.auto_register_certificate(SCOPE, der) is None  # already registered
