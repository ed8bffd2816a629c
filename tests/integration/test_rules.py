"""The rules engine end to end against local core: a device publishes over mutual TLS, a rule
republishes with substituted values to a subscriber, presence events fire rules, the S3 action
writes an object the S3 API reads, a disabled rule does not fire, and a SQL syntax error is
refused as AWS refuses it, with boto3 and with the AWS CLI (the workshop's JITR rule file)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from botocore.exceptions import ClientError

from fleetsim.control.cleanup import cleanup
from fleetsim.control.clients import aws_clients
from fleetsim.control.journal import Entry
from fleetsim.engine.steps.create_topic_rule import TOPIC_RULE
from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.target import Target
from tests.awscli import AWS, aws, aws_json
from tests.helpers import aws_client
from tests.integration.test_api_events import connected

ROLE = "arn:aws:iam::123456789012:role/rules"
JITR_RULE = Path("/work/shared/reference/workshop/jitr-topic-rule.json")


def republish(sql: str, topic: str, **extra: Any) -> dict[str, Any]:
    return {"sql": sql, "actions": [{"republish": {"roleArn": ROLE, "topic": topic}}], **extra}


async def next_message(client: aiomqtt.Client, timeout: float = 5.0) -> aiomqtt.Message:
    async def take() -> aiomqtt.Message:
        async for message in client.messages:
            return message
        raise AssertionError("no message")
    return await asyncio.wait_for(take(), timeout)


async def test_device_publish_is_republished_with_substituted_values(
        iot: Any, core: RunningLocalCore, tmp_path: Path) -> None:
    iot.create_topic_rule(ruleName="hot", topicRulePayload=republish(
        "SELECT temp, topic(2) AS device, clientid() AS cid FROM 'sensors/+/data' "
        "WHERE temp > 30 AND unit = \"C\"", "alerts/${topic(2)}/${unit}"))
    async with connected(iot, core, tmp_path, "watcher-r") as (watcher, _), \
            connected(iot, core, tmp_path, "dev-r") as (device, _):
        await watcher.subscribe("alerts/#", qos=1)
        await device.publish("sensors/dev-r/data", json.dumps({"temp": 20, "unit": "C"}), qos=1)
        await device.publish("sensors/dev-r/data", json.dumps({"temp": 35}), qos=1)  # no unit
        await device.publish("sensors/dev-r/data", json.dumps({"temp": 41, "unit": "C"}), qos=1)
        message = await next_message(watcher)
    assert str(message.topic) == "alerts/dev-r/C"
    assert json.loads(message.payload) == {"temp": 41, "device": "dev-r", "cid": "dev-r"}


async def test_a_rule_on_presence_events_fires_and_a_disabled_rule_does_not(
        iot: Any, core: RunningLocalCore, tmp_path: Path) -> None:
    iot.create_topic_rule(ruleName="presence", topicRulePayload=republish(
        "SELECT clientId, eventType FROM '$aws/events/presence/connected/+'",
        "seen/${clientId}"))
    iot.create_topic_rule(ruleName="presence_off", topicRulePayload=republish(
        "SELECT * FROM '$aws/events/presence/connected/+'", "never/${clientId}",
        ruleDisabled=True))
    async with connected(iot, core, tmp_path, "watcher-p") as (watcher, _):
        await watcher.subscribe("seen/#", qos=1)
        await watcher.subscribe("never/#", qos=1)
        async with connected(iot, core, tmp_path, "arriving"):
            message = await next_message(watcher)
            assert str(message.topic) == "seen/arriving"
            assert json.loads(message.payload) == {"clientId": "arriving",
                                                    "eventType": "connected"}
            with pytest.raises(asyncio.TimeoutError):
                await next_message(watcher, timeout=1.0)  # nothing from the disabled rule
    iot.enable_topic_rule(ruleName="presence_off")
    assert iot.get_topic_rule(ruleName="presence_off")["rule"]["ruleDisabled"] is False
    iot.delete_topic_rule(ruleName="presence")
    iot.delete_topic_rule(ruleName="presence_off")


async def test_s3_action_writes_an_object_readable_through_the_s3_api(
        iot: Any, core: RunningLocalCore, tmp_path: Path) -> None:
    s3 = aws_client(core.api_url, "s3")
    s3.create_bucket(Bucket="rule-archive")
    iot.create_topic_rule(ruleName="archive", topicRulePayload={
        "sql": "SELECT * FROM 'archive/+'", "awsIotSqlVersion": "2016-03-23",
        "actions": [{"s3": {"roleArn": ROLE, "bucketName": "rule-archive",
                            "key": "${topic(2)}/${seq}.json"}}]})
    async with connected(iot, core, tmp_path, "archiver") as (device, _):
        await device.publish("archive/archiver", json.dumps({"seq": 7, "v": "x"}), qos=1)
        body = None
        for _ in range(50):
            try:
                body = s3.get_object(Bucket="rule-archive", Key="archiver/7.json")["Body"].read()
                break
            except ClientError:
                await asyncio.sleep(0.1)
    assert body is not None and json.loads(body) == {"seq": 7, "v": "x"}


def test_topic_rule_resources_as_get_topic_rule_returns_them(iot: Any) -> None:
    iot.create_topic_rule(ruleName="shape", topicRulePayload={
        "sql": "SELECT * FROM 'shape/#'", "description": "d",
        "actions": [{"sqs": {"roleArn": ROLE, "queueUrl": "https://sqs/q"}}],
        "errorAction": {"republish": {"roleArn": ROLE, "topic": "err"}}})
    got = iot.get_topic_rule(ruleName="shape")
    assert got["ruleArn"] == "arn:aws:iot:us-east-1:123456789012:rule/shape"
    rule = got["rule"]
    assert rule["awsIotSqlVersion"] == "2015-10-08" and rule["ruleDisabled"] is False
    assert rule["description"] == "d" and rule["createdAt"] is not None
    assert rule["actions"] == [{"sqs": {"roleArn": ROLE, "queueUrl": "https://sqs/q"}}]
    with pytest.raises(ClientError) as e:
        iot.create_topic_rule(ruleName="shape", topicRulePayload={
            "sql": "SELECT * FROM 'x'", "actions": []})
    assert e.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        iot.create_topic_rule(ruleName="bad_sql", topicRulePayload={
            "sql": "SELECT * FROM 'x' WHERE", "actions": []})
    assert e.value.response["Error"]["Code"] == "SqlParseException"
    with pytest.raises(ClientError) as e:
        iot.get_topic_rule(ruleName="absent")
    assert e.value.response["Error"]["Code"] == "UnauthorizedException"
    with pytest.raises(ClientError) as e:
        iot.create_topic_rule(ruleName="bad-name", topicRulePayload={
            "sql": "SELECT * FROM 'x'", "actions": []})
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"
    listed = iot.list_topic_rules(topic="shape/#")["rules"]
    assert [r["ruleName"] for r in listed] == ["shape"]
    # a second rule of its own, so that a page of one has a next (whatever ran before)
    iot.create_topic_rule(ruleName="shape_two", topicRulePayload={
        "sql": "SELECT * FROM 'shape2/#'", "actions": []})
    first = iot.list_topic_rules(maxResults=1)
    assert len(first["rules"]) == 1 and "nextToken" in first
    iot.delete_topic_rule(ruleName="shape")
    iot.delete_topic_rule(ruleName="shape_two")


async def test_cleanup_of_a_rule_already_gone_counts_it_absent(core: RunningLocalCore,
                                                               iot: Any) -> None:
    # DeleteTopicRule of a missing rule is UnauthorizedException, as GetTopicRule's: a
    # clean-up run again (a run left pending) finds it gone, not a failure
    iot.create_topic_rule(ruleName="twice", topicRulePayload={
        "sql": "SELECT * FROM 'twice'", "actions": []})
    target = Target.local(core.api_url, core.mqtt_host, core.mqtt_port, core.root_ca)
    entries = [Entry("topic_rule", {"name": "twice"})]
    async with aws_clients(target) as clients:
        first = await cleanup(clients, entries, [TOPIC_RULE])
        second = await cleanup(clients, entries, [TOPIC_RULE])
    assert first.removed == {"topic_rule": 1} and first.failed == []
    assert second.absent == {"topic_rule": 1} and second.failed == []



@pytest.mark.interop
@pytest.mark.skipif(not AWS.exists(), reason="AWS CLI not installed (make tools)")
def test_workshop_jitr_rule_with_the_aws_cli(core: RunningLocalCore, tmp_path: Path) -> None:
    rule = json.loads(JITR_RULE.read_text()) if JITR_RULE.exists() else {
        "sql": "SELECT * FROM '$aws/events/certificates/registered/#' "
               "WHERE certificateStatus = \"PENDING_ACTIVATION\"",
        "description": "Rule for JITR", "actions": [{"lambda": {"functionArn": "${ARN_LAMBDA}"}}]}
    rule["actions"][0]["lambda"]["functionArn"] = \
        "arn:aws:lambda:us-east-1:123456789012:function:jitr"
    (tmp_path / "rule.json").write_text(json.dumps(rule))
    aws(core, tmp_path, "iot", "create-topic-rule", "--rule-name", "JITRRule",
        "--topic-rule-payload", "file://rule.json")
    got = aws_json(core, tmp_path, "iot", "get-topic-rule", "--rule-name", "JITRRule")
    assert got["rule"]["sql"] == rule["sql"]
    listed = aws_json(core, tmp_path, "iot", "list-topic-rules")["rules"]
    assert "JITRRule" in [r["ruleName"] for r in listed]
    rule["sql"] = rule["sql"].replace("SELECT *", "SELECT certificateId")
    (tmp_path / "rule.json").write_text(json.dumps(rule))
    aws(core, tmp_path, "iot", "replace-topic-rule", "--rule-name", "JITRRule",
        "--topic-rule-payload", "file://rule.json")
    got = aws_json(core, tmp_path, "iot", "get-topic-rule", "--rule-name", "JITRRule")
    assert got["rule"]["sql"].startswith("SELECT certificateId")
    rule["sql"] = "SELECT * FORM '$aws/events/#'"
    (tmp_path / "bad.json").write_text(json.dumps(rule))
    refused = aws(core, tmp_path, "iot", "create-topic-rule", "--rule-name", "Broken",
                  "--topic-rule-payload", "file://bad.json", check=False)
    assert refused.returncode != 0 and "SqlParseException" in refused.stderr
    aws(core, tmp_path, "iot", "delete-topic-rule", "--rule-name", "JITRRule")
    listed = aws_json(core, tmp_path, "iot", "list-topic-rules")["rules"]
    assert "JITRRule" not in [r["ruleName"] for r in listed]
