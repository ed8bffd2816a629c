"""Acknowledged registry writes survive `kill -9` of the local core process."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import start_core
from tests.helpers import ALLOW_ALL, aws_client


def test_registry_survives_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "core"
    core = start_core(state)
    try:
        iot = aws_client(core.api_url)
        for i in range(20):
            iot.create_thing(thingName=f"keep-{i}", attributePayload={"attributes": {"i": str(i)}})
        iot.update_thing(thingName="keep-0", attributePayload={"attributes": {"x": "y"}})
        cert = iot.create_keys_and_certificate(setAsActive=True)
        iot.create_policy(policyName="keep-policy", policyDocument=ALLOW_ALL)
        iot.attach_policy(policyName="keep-policy", target=cert["certificateArn"])
        iot.attach_thing_principal(thingName="keep-1", principal=cert["certificateArn"])
        iot.create_thing_group(thingGroupName="keep-group")
        iot.add_thing_to_thing_group(thingGroupName="keep-group", thingName="keep-2")
        iot.update_event_configurations(eventConfigurations={"THING": {"Enabled": True}})
        code = iot.get_registration_code()["registrationCode"]
    finally:
        core.stop(kill=True)
    assert core.process.returncode == -9

    core = start_core(state)
    try:
        iot = aws_client(core.api_url)
        names = {t["thingName"] for p in iot.get_paginator("list_things").paginate()
                 for t in p["things"]}
        assert names == {f"keep-{i}" for i in range(20)}
        described = iot.describe_thing(thingName="keep-0")
        assert described["attributes"] == {"x": "y"} and described["version"] == 2
        desc = iot.describe_certificate(certificateId=cert["certificateId"])
        assert desc["certificateDescription"]["status"] == "ACTIVE"
        assert desc["certificateDescription"]["certificatePem"] == cert["certificatePem"]
        assert iot.get_policy(policyName="keep-policy")["policyDocument"] == ALLOW_ALL
        assert iot.list_targets_for_policy(policyName="keep-policy")["targets"] == [
            cert["certificateArn"]]
        assert iot.list_principal_things(principal=cert["certificateArn"])["things"] == ["keep-1"]
        assert iot.list_things_in_thing_group(thingGroupName="keep-group")["things"] == ["keep-2"]
        assert iot.describe_event_configurations()["eventConfigurations"]["THING"]["Enabled"]
        assert iot.get_registration_code()["registrationCode"] == code
    finally:
        core.stop()
