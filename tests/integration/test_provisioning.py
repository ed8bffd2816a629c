"""Provisioning by template through the real local core process: the workshop's "Single Device
Provisioning" lab with the AWS CLI, template errors that leave nothing behind, override
settings, templates as resources, and fleet provisioning by claim with a stock MQTT client."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import cbor2
import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.pki import build_csr, generate_key, private_key_pem
from tests.awscli import AWS, aws, aws_json
from tests.helpers import ALLOW_ALL, code_of
from tests.unit.test_provisioning_template import WORKSHOP_TEMPLATE

pytestmark = pytest.mark.timeout(120)
ROLE = "arn:aws:iam::123456789012:role/provisioning"
CLAIM_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": [
        "arn:aws:iot:*:*:topic/$aws/certificates/create/*",
        "arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*",
        "arn:aws:iot:*:*:topic/$aws/provisioning-templates/*"]},
    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [
        "arn:aws:iot:*:*:topicfilter/$aws/certificates/create/*",
        "arn:aws:iot:*:*:topicfilter/$aws/certificates/create-from-csr/*",
        "arn:aws:iot:*:*:topicfilter/$aws/provisioning-templates/*"]}]})


def csr_pem(name: str, tmp: Path | None = None) -> str:
    key = generate_key("rsa-2048")
    if tmp is not None:
        path = tmp / f"{name}.key"
        path.write_bytes(private_key_pem(key))
        path.chmod(0o600)
    return build_csr(key, name).decode()


def counts(iot: Any) -> tuple[int, int, int]:
    return (len(iot.list_things()["things"]), len(iot.list_certificates()["certificates"]),
            len(iot.list_policies()["policies"]))


@pytest.mark.interop
@pytest.mark.skipif(not AWS.exists(), reason="AWS CLI not installed (make tools)")
async def test_single_device_provisioning_lab_with_the_aws_cli(
        core: RunningLocalCore, tmp_path: Path) -> None:
    (tmp_path / "templateBody.json").write_text(WORKSHOP_TEMPLATE)
    aws(core, tmp_path, "iot", "create-thing-group", "--thing-group-name", "bulk-group")
    aws(core, tmp_path, "iot", "create-thing-type", "--thing-type-name", "bulk-type")
    thing = "my-second-thing"
    parameters = json.dumps({"ThingName": thing, "SerialNumber": "0042",
                             "CSR": csr_pem(thing, tmp_path)})
    out = aws_json(core, tmp_path, "iot", "register-thing", "--template-body",
                   "file://templateBody.json", "--parameters", parameters)
    assert out["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    arns = out["resourceArns"]
    assert arns["thing"].endswith(f":thing/{thing}")
    assert ":cert/" in arns["certificate"] and ":policy/" in arns["policy"]
    described = aws_json(core, tmp_path, "iot", "describe-thing", "--thing-name", thing)
    assert described["thingTypeName"] == "bulk-type"
    assert described["attributes"] == {"version": "v1", "serialNumber": "0042"}
    groups = aws_json(core, tmp_path, "iot", "list-thing-groups-for-thing", "--thing-name", thing)
    assert [g["groupName"] for g in groups["thingGroups"]] == ["bulk-group"]
    principals = aws_json(core, tmp_path, "iot", "list-thing-principals", "--thing-name", thing)
    assert principals["principals"] == [arns["certificate"]]

    # The device connects with its new certificate and publishes, as the lab does.
    (tmp_path / f"{thing}.crt").write_text(out["certificatePem"])
    ctx = ssl.create_default_context(cafile=str(core.root_ca))
    ctx.load_cert_chain(tmp_path / f"{thing}.crt", tmp_path / f"{thing}.key")
    async with aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier=thing,
                              tls_context=ctx, timeout=10) as client:
        await client.publish("iot/ws", b'{"prov": "second"}', qos=1)


def test_a_missing_thing_group_fails_and_leaves_nothing(iot: Any) -> None:
    iot.create_thing_type(thingTypeName="bulk-type")
    template = json.loads(WORKSHOP_TEMPLATE)
    template["Resources"]["thing"]["Properties"]["ThingGroups"] = ["no-such-group"]
    before = counts(iot)
    with pytest.raises(ClientError) as e:
        iot.register_thing(templateBody=json.dumps(template), parameters={
            "ThingName": "half", "SerialNumber": "1", "CSR": csr_pem("half")})
    assert code_of(e) == "ResourceRegistrationFailureException"
    assert "no-such-group" in e.value.response["Error"]["Message"]
    assert counts(iot) == before


def test_a_broken_template_is_an_invalid_request(iot: Any) -> None:
    before = counts(iot)
    for body in ("{oops", json.dumps({"Resources": {"t": {"Type": "AWS::IoT::Thing",
                                                          "Properties": {"ThingName": {
                                                              "Ref": "Nope"}}}}})):
        with pytest.raises(ClientError) as e:
            iot.register_thing(templateBody=body)
        assert code_of(e) == "InvalidRequestException"
    assert counts(iot) == before


def test_override_settings_on_an_existing_thing(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="g1")
    iot.create_thing_group(thingGroupName="g2")
    iot.create_thing(thingName="known", attributePayload={"attributes": {"old": "1"}})
    iot.add_thing_to_thing_group(thingGroupName="g1", thingName="known")

    def register(overrides: dict[str, str]) -> Any:
        return iot.register_thing(templateBody=json.dumps({"Resources": {"thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": "known", "AttributePayload": {"new": "2"},
                           "ThingGroups": ["g2"]},
            "OverrideSettings": overrides}}}))

    register({"AttributePayload": "DO_NOTHING", "ThingGroups": "DO_NOTHING"})
    assert iot.describe_thing(thingName="known")["attributes"] == {"old": "1"}
    register({"AttributePayload": "MERGE", "ThingGroups": "MERGE"})
    assert iot.describe_thing(thingName="known")["attributes"] == {"old": "1", "new": "2"}
    groups = iot.list_thing_groups_for_thing(thingName="known")["thingGroups"]
    assert sorted(g["groupName"] for g in groups) == ["g1", "g2"]
    register({"AttributePayload": "REPLACE", "ThingGroups": "REPLACE"})
    assert iot.describe_thing(thingName="known")["attributes"] == {"new": "2"}
    groups = iot.list_thing_groups_for_thing(thingName="known")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["g2"]
    iot.update_thing(thingName="known", attributePayload={"attributes": {"other": "3"}})
    with pytest.raises(ClientError) as e:
        register({"AttributePayload": "FAIL"})
    assert code_of(e) == "ResourceConflictsException"
    assert iot.describe_thing(thingName="known")["attributes"] == {"other": "3"}


def test_templates_and_versions_as_resources(iot: Any) -> None:
    body = json.dumps({"Parameters": {"SerialNumber": {"Type": "String"}},
                       "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
                           "ThingName": {"Ref": "SerialNumber"}}}}})
    created = iot.create_provisioning_template(templateName="t1", templateBody=body,
                                               provisioningRoleArn=ROLE, enabled=True,
                                               type="FLEET_PROVISIONING")
    assert created["defaultVersionId"] == 1 and created["templateArn"].endswith(
        ":provisioningtemplate/t1")
    with pytest.raises(ClientError) as e:
        iot.create_provisioning_template(templateName="t1", templateBody=body,
                                         provisioningRoleArn=ROLE)
    assert code_of(e) == "ResourceAlreadyExistsException"
    v2 = iot.create_provisioning_template_version(templateName="t1", templateBody=body,
                                                  setAsDefault=True)
    assert (v2["versionId"], v2["isDefaultVersion"]) == (2, True)
    described = iot.describe_provisioning_template(templateName="t1")
    assert (described["defaultVersionId"], described["enabled"], described["type"]) == \
        (2, True, "FLEET_PROVISIONING")
    versions = iot.list_provisioning_template_versions(templateName="t1")["versions"]
    assert [(v["versionId"], v["isDefaultVersion"]) for v in versions] == [(1, False),
                                                                           (2, True)]
    with pytest.raises(ClientError) as e:
        iot.delete_provisioning_template_version(templateName="t1", versionId=2)
    assert code_of(e) == "DeleteConflictException"
    iot.update_provisioning_template(templateName="t1", defaultVersionId=1,
                                     description="first")
    iot.delete_provisioning_template_version(templateName="t1", versionId=2)
    assert iot.describe_provisioning_template_version(
        templateName="t1", versionId=1)["isDefaultVersion"] is True
    listed = [t for t in iot.list_provisioning_templates()["templates"]  # and the module's
              if t["templateName"] == "t1"]                                 # other tests'
    assert [(t["description"], t["enabled"]) for t in listed] == [("first", True)]
    with pytest.raises(ClientError) as e:
        iot.create_provisioning_template(
            templateName="jitp", templateBody=body, provisioningRoleArn=ROLE, type="JITP",
            preProvisioningHook={"targetArn": "arn:aws:lambda:us-east-1:1:function:f"})
    assert code_of(e) == "InvalidRequestException"
    iot.delete_provisioning_template(templateName="t1")
    with pytest.raises(ClientError) as e:
        iot.describe_provisioning_template(templateName="t1")
    assert code_of(e) == "ResourceNotFoundException"


# --- fleet provisioning by claim --------------------------------------------------------------

FLEET_TEMPLATE = json.dumps({
    "Parameters": {"SerialNumber": {"Type": "String"},
                   "AWS::IoT::Certificate::Id": {"Type": "String"}},
    "Mappings": {"Models": {"lamp": {"Group": "claimed"}}},
    "DeviceConfiguration": {"Fallback": {"Fn::FindInMap": ["Models", "lamp", "Group"]}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Fn::Join": ["-", ["lamp", {"Ref": "SerialNumber"}]]},
            "ThingGroups": [{"Fn::FindInMap": ["Models", "lamp", "Group"]}]}},
        "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
            "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": ALLOW_ALL}}}})


class Claimant:
    """A stock aiomqtt client holding the claim certificate, and what it received."""

    def __init__(self, client: aiomqtt.Client):
        self.client = client
        self.received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            await self.received.put((message.topic.value, message.payload))

    async def request(self, topic: str, doc: dict[str, Any], fmt: str = "json"
                      ) -> tuple[str, dict[str, Any]]:
        payload = cbor2.dumps(doc) if fmt == "cbor" else json.dumps(doc).encode()
        await self.client.publish(topic, payload, qos=1)
        reply_topic, raw = await asyncio.wait_for(self.received.get(), 10)
        return reply_topic, (cbor2.loads(raw) if fmt == "cbor" else json.loads(raw))


@pytest.fixture
async def claimant(iot: Any, core: RunningLocalCore, tmp_path: Path
                   ) -> AsyncIterator[Claimant]:
    keys = iot.create_keys_and_certificate(setAsActive=True)
    (tmp_path / "claim.crt").write_text(keys["certificatePem"])
    (tmp_path / "claim.key").write_text(keys["keyPair"]["PrivateKey"])
    if iot.list_policies()["policies"] == [] or "claim" not in [
            p["policyName"] for p in iot.list_policies()["policies"]]:
        iot.create_policy(policyName="claim", policyDocument=CLAIM_POLICY)
    iot.attach_policy(policyName="claim", target=keys["certificateArn"])
    if "claimed" not in [g["groupName"] for g in iot.list_thing_groups()["thingGroups"]]:
        iot.create_thing_group(thingGroupName="claimed")
    ctx = ssl.create_default_context(cafile=str(core.root_ca))
    ctx.load_cert_chain(tmp_path / "claim.crt", tmp_path / "claim.key")
    async with aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier=f"claim-{tmp_path.name}",
                              tls_context=ctx, timeout=10) as client:
        claim = Claimant(client)
        yield claim
        claim._reader.cancel()


async def test_fleet_provisioning_by_claim_by_hand(iot: Any, core: RunningLocalCore,
                                                   claimant: Claimant, tmp_path: Path) -> None:
    iot.create_provisioning_template(templateName="lamps", templateBody=FLEET_TEMPLATE,
                                     provisioningRoleArn=ROLE, enabled=True)
    create = "$aws/certificates/create/json"
    # Replies carry a private key: without a subscription to them, none arrives. (A client's
    # requests are answered in order: the CSR request's reply comes after the first one's.)
    from_csr = "$aws/certificates/create-from-csr/json"
    await claimant.client.subscribe(f"{from_csr}/+", qos=1)
    await claimant.client.publish(create, b"{}", qos=1)
    topic, _ = await claimant.request(from_csr, {"certificateSigningRequest": csr_pem("c")})
    assert topic == f"{from_csr}/accepted" and claimant.received.empty()
    await claimant.client.subscribe(f"{create}/accepted", qos=1)
    await claimant.client.subscribe(f"{create}/rejected", qos=1)
    topic, created = await claimant.request(create, {})
    assert topic == f"{create}/accepted"
    assert set(created) == {"certificateId", "certificatePem", "privateKey",
                            "certificateOwnershipToken"}
    assert iot.describe_certificate(certificateId=created["certificateId"])[
        "certificateDescription"]["status"] == "PENDING_ACTIVATION"

    provision = "$aws/provisioning-templates/lamps/provision/json"
    await claimant.client.subscribe(f"{provision}/+", qos=1)
    topic, registered = await claimant.request(provision, {
        "certificateOwnershipToken": created["certificateOwnershipToken"],
        "parameters": {"SerialNumber": "007"}})
    assert topic == f"{provision}/accepted"
    assert registered == {"thingName": "lamp-007", "deviceConfiguration": {"Fallback": "claimed"}}
    assert iot.describe_certificate(certificateId=created["certificateId"])[
        "certificateDescription"]["status"] == "ACTIVE"
    groups = iot.list_thing_groups_for_thing(thingName="lamp-007")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["claimed"]

    # The token is spent; the device reconnects with its new identity and publishes.
    topic, rejected = await claimant.request(provision, {
        "certificateOwnershipToken": created["certificateOwnershipToken"],
        "parameters": {"SerialNumber": "008"}})
    assert topic == f"{provision}/rejected" and rejected["statusCode"] == 400
    (tmp_path / "new.crt").write_text(created["certificatePem"])
    (tmp_path / "new.key").write_text(created["privateKey"])
    ctx = ssl.create_default_context(cafile=str(core.root_ca))
    ctx.load_cert_chain(tmp_path / "new.crt", tmp_path / "new.key")
    async with aiomqtt.Client(core.mqtt_host, core.mqtt_port, identifier="lamp-007",
                              tls_context=ctx, timeout=10) as device:
        await device.publish("iot/ws", b"{}", qos=1)


async def test_claim_from_csr_over_cbor(iot: Any, claimant: Claimant) -> None:
    iot.create_provisioning_template(templateName="lamps-cbor", templateBody=FLEET_TEMPLATE,
                                     provisioningRoleArn=ROLE, enabled=True)
    create = "$aws/certificates/create-from-csr/cbor"
    await claimant.client.subscribe(f"{create}/+", qos=1)
    topic, created = await claimant.request(
        create, {"certificateSigningRequest": csr_pem("lamp-cbor")}, "cbor")
    assert topic == f"{create}/accepted" and "privateKey" not in created
    provision = "$aws/provisioning-templates/lamps-cbor/provision/cbor"
    await claimant.client.subscribe(f"{provision}/+", qos=1)
    topic, registered = await claimant.request(provision, {
        "certificateOwnershipToken": created["certificateOwnershipToken"],
        "parameters": {"SerialNumber": "cbor"}}, "cbor")
    assert topic == f"{provision}/accepted" and registered["thingName"] == "lamp-cbor"


async def test_claims_the_template_rejects(iot: Any, claimant: Claimant) -> None:
    iot.create_provisioning_template(templateName="off", templateBody=FLEET_TEMPLATE,
                                     provisioningRoleArn=ROLE, enabled=False)
    iot.create_provisioning_template(
        templateName="hooked", templateBody=FLEET_TEMPLATE, provisioningRoleArn=ROLE,
        enabled=True,
        preProvisioningHook={"targetArn": "arn:aws:lambda:us-east-1:123456789012:function:v"})
    create = "$aws/certificates/create/json"
    await claimant.client.subscribe(f"{create}/+", qos=1)
    _, created = await claimant.request(create, {})
    token = created["certificateOwnershipToken"]
    for name, status, code, words in [
            ("off", 400, "InvalidRequest", "disabled"),
            ("hooked", 403, "AccessDenied", "no Lambda feature"),
            ("missing", 404, "ResourceNotFound", "not found")]:
        provision = f"$aws/provisioning-templates/{name}/provision/json"
        await claimant.client.subscribe(f"{provision}/+", qos=1)
        topic, rejected = await claimant.request(provision, {
            "certificateOwnershipToken": token, "parameters": {"SerialNumber": name}})
        assert topic == f"{provision}/rejected"
        assert (rejected["statusCode"], rejected["errorCode"]) == (status, code)
        assert words in rejected["errorMessage"]
    # A parameter the template needs is missing: rejected, nothing created.
    provision = "$aws/provisioning-templates/lamps-param/provision/json"
    iot.create_provisioning_template(templateName="lamps-param", templateBody=FLEET_TEMPLATE,
                                     provisioningRoleArn=ROLE, enabled=True)
    await claimant.client.subscribe(f"{provision}/+", qos=1)
    topic, rejected = await claimant.request(provision, {"certificateOwnershipToken": token})
    assert topic == f"{provision}/rejected" and "SerialNumber" in rejected["errorMessage"]
    assert iot.describe_certificate(certificateId=created["certificateId"])[
        "certificateDescription"]["status"] == "PENDING_ACTIVATION"
