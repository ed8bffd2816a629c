"""A state directory written by the first release (commit 9f690cb, `meta.schema_version` 1)
is upgraded in place and everything in it stays usable; a newer one is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fleetsim.errors import UserError
from fleetsim.localcore.db import Database
from fleetsim.localcore.db.migrations import migrations
from tests.conftest import start_core
from tests.helpers import ALLOW_ALL, aws_client

FIXTURE = Path(__file__).parent.parent / "fixtures" / "state-db-release-9f690cb.sql"


def load_fixture(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    db = sqlite3.connect(state_dir / "state.db")
    db.executescript(FIXTURE.read_text())
    db.close()


def test_release_1_state_is_upgraded_and_usable(tmp_path: Path) -> None:
    state = tmp_path / "core"
    load_fixture(state)
    core = start_core(state)
    try:
        iot = aws_client(core.api_url)
        assert {t["thingName"] for t in iot.list_things()["things"]} == {"thing-a", "thing-b"}
        a = iot.describe_thing(thingName="thing-a")
        assert (a["thingTypeName"], a["attributes"]) == ("sensor", {"room": "1"})
        assert a["thingArn"] == "arn:aws:iot:us-east-1:123456789012:thing/thing-a"
        b = iot.describe_thing(thingName="thing-b")
        assert (b["attributes"], b["version"]) == ({"color": "blue"}, 2)
        assert iot.list_things(attributeName="room", attributeValue="1")["things"][0][
            "thingName"] == "thing-a"
        assert iot.list_things_in_thing_group(thingGroupName="root-group", recursive=True)[
            "things"] == ["thing-a"]
        child = iot.describe_thing_group(thingGroupName="child-group")
        assert child["thingGroupMetadata"]["parentGroupName"] == "root-group"
        certs = iot.list_certificates()["certificates"]
        assert sorted(c["status"] for c in certs) == ["ACTIVE", "INACTIVE"]
        active = next(c for c in certs if c["status"] == "ACTIVE")
        assert iot.list_principal_things(principal=active["certificateArn"])["things"] == [
            "thing-a"]
        assert [p["policyName"] for p in iot.list_attached_policies(
            target=active["certificateArn"])["policies"]] == ["allow-all"]
        assert len(iot.list_policy_versions(policyName="allow-all")["policyVersions"]) == 2
        effective = iot.get_effective_policies(principal=active["certificateArn"],
                                               thingName="thing-a")["effectivePolicies"]
        assert {p["policyName"] for p in effective} == {"allow-all", "group-policy"}
        assert iot.list_ca_certificates()["certificates"][0]["status"] == "ACTIVE"
        assert iot.get_registration_code()["registrationCode"] == (
            "6d856577c5ea9661b1fbe521b07ed71ed4d335f326bb2e3a2a33644555cee80a")
        config = iot.describe_event_configurations()["eventConfigurations"]
        assert config["THING"]["Enabled"] and config["THING_GROUP"]["Enabled"]
        assert not config["POLICY"]["Enabled"]
        # and it is usable: change, add, remove
        iot.update_certificate(certificateId=active["certificateId"], newStatus="INACTIVE")
        iot.detach_thing_principal(thingName="thing-a", principal=active["certificateArn"])
        iot.detach_policy(policyName="allow-all", target=active["certificateArn"])
        iot.delete_certificate(certificateId=active["certificateId"])
        iot.create_thing(thingName="thing-c")
        iot.create_policy(policyName="new-policy", policyDocument=ALLOW_ALL)
        assert len(iot.list_things()["things"]) == 3
    finally:
        core.stop()
    db = sqlite3.connect(state / "state.db")
    newest = str(migrations()[-1][0])
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == \
        (newest,)


def test_state_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    load_fixture(tmp_path / "core")
    db = sqlite3.connect(tmp_path / "core" / "state.db")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(UserError) as e:
        Database(tmp_path / "core" / "state.db", "us-east-1")
    assert str(tmp_path / "core") in str(e.value) and "newer" in str(e.value)
    with pytest.raises(UserError) as e:  # and local core says so in one sentence
        start_core(tmp_path / "core")
    assert "schema version 99" in str(e.value)
