"""Rule actions through small recording doubles of the `lambda` and `logs` service contracts
(the features themselves are written in parallel), the error action's message, and failures
that are logged rather than raised."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest

from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.rules.rule import compile_rule
from fleetsim.localcore.features.rules.runner import ActionRunner
from fleetsim.localcore.features.rules.sql.context import MessageContext
from fleetsim.localcore.scope import Scope

SCOPE = Scope("123456789012", "us-east-1")
ROLE = "arn:aws:iam::123456789012:role/rules"
FN = "arn:aws:lambda:us-east-1:123456789012:function:jitr"


class RecordingLambda:
    def __init__(self, error: str | None = None):
        self.calls: list[tuple[Any, ...]] = []
        self.error = error

    async def invoke_as_service(self, scope: Scope, function_arn: str, payload: bytes, *,
                                principal: str, source_arn: str, source_account: str) -> None:
        self.calls.append((scope, function_arn, json.loads(payload), principal, source_arn,
                           source_account))
        if self.error:
            raise AwsError(self.error, "denied")


class RecordingLogs:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, list[tuple[int, str]]]] = []

    def put_events(self, region: str, group: str, stream: str,
                   events: list[tuple[int, str]]) -> None:
        self.events.append((region, group, stream, list(events)))


class RecordingBroker:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int]] = []

    def publish_internal(self, topic: str, payload: bytes, qos: int = 0,
                         retain: bool = False) -> None:
        self.published.append((topic, payload, qos))


class Services:
    def __init__(self, **services: Any):
        self._s = services

    def get(self, name: str) -> Any:
        if name not in self._s:
            raise LookupError(f"no feature {name!r} is installed")
        return self._s[name]


def rule(sql: str, actions: list[dict[str, Any]], error_action: dict[str, Any] | None = None,
         name: str = "r1") -> Any:
    payload: dict[str, Any] = {"sql": sql, "actions": actions}
    if error_action:
        payload["errorAction"] = error_action
    return compile_rule(name, SCOPE.arn("rule", name), payload)


async def fire(runner: ActionRunner, r: Any, payload: bytes, topic: str = "dev/d1/up") -> None:
    ctx = MessageContext(topic, payload, "d1", "cert1")
    assert r.query.where_matches(ctx)
    out = r.query.output(ctx)
    assert out is not None
    runner.run(r, ctx, out)
    await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)


async def test_lambda_is_invoked_as_iot_with_the_rule_arn_and_account() -> None:
    functions = RecordingLambda()
    runner = ActionRunner(Services(**{"lambda": functions}), RecordingBroker(), SCOPE)
    r = rule("SELECT *, topic(2) AS device FROM 'dev/+/up'", [{"lambda": {"functionArn": FN}}])
    await fire(runner, r, b'{"a": 1}')
    assert functions.calls == [(SCOPE, FN, {"a": 1, "device": "d1"}, "iot.amazonaws.com",
                                "arn:aws:iot:us-east-1:123456789012:rule/r1", "123456789012")]


async def test_lambda_access_denied_is_not_invoked_logged_and_goes_to_the_error_action(
        caplog: pytest.LogCaptureFixture) -> None:
    broker = RecordingBroker()
    runner = ActionRunner(Services(**{"lambda": RecordingLambda("AccessDeniedException")}),
                          broker, SCOPE)
    r = rule("SELECT * FROM 'dev/+/up'", [{"lambda": {"functionArn": FN}}],
             {"republish": {"roleArn": ROLE, "topic": "errors/${topic(2)}"}})
    with caplog.at_level(logging.WARNING, "fleetsim.localcore.rules"):
        await fire(runner, r, b'{"a": 1}')
    assert any("rule r1" in m and "add-permission" in m for m in caplog.messages)
    [(topic, payload, _)] = broker.published
    assert topic == "errors/d1"
    message = json.loads(payload)
    assert message["ruleName"] == "r1" and message["topic"] == "dev/d1/up"
    assert message["clientId"] == "d1"
    assert base64.b64decode(message["base64OriginalPayload"]) == b'{"a": 1}'
    assert set(message) == {"ruleName", "topic", "cloudwatchTraceId", "clientId",
                            "base64OriginalPayload", "failures"}
    [failure] = message["failures"]
    assert failure["failedAction"] == "LambdaAction" and failure["failedResource"] == FN


async def test_binary_output_is_not_handed_to_lambda() -> None:
    functions = RecordingLambda()
    logs = RecordingLogs()
    runner = ActionRunner(Services(**{"lambda": functions, "logs": logs}), RecordingBroker(),
                          SCOPE)
    r = rule("SELECT * FROM 'dev/+/up'", [{"lambda": {"functionArn": FN}}],
             {"cloudwatchLogs": {"roleArn": ROLE, "logGroupName": "rule-errors"}})
    await fire(runner, r, b"\x00\x01")
    assert functions.calls == []
    [(region, group, stream, [(_, text)])] = logs.events
    assert (region, group, stream) == ("us-east-1", "rule-errors", "r1")
    assert json.loads(text)["failures"][0]["failedAction"] == "LambdaAction"


async def test_cloudwatch_logs_one_event_or_a_batch() -> None:
    logs = RecordingLogs()
    runner = ActionRunner(Services(logs=logs), RecordingBroker(), SCOPE)
    single = rule("SELECT a FROM 'dev/+/up'", [{"cloudwatchLogs": {
        "roleArn": ROLE, "logGroupName": "/iot/${topic(2)}"}}])
    await fire(runner, single, b'{"a": "x", "b": 2}')
    batch = rule("SELECT * FROM 'dev/+/up'", [{"cloudwatchLogs": {
        "roleArn": ROLE, "logGroupName": "batch", "batchMode": True}}], name="b")
    await fire(runner, batch, json.dumps([{"timestamp": 1673520691093, "message": "one"},
                                          {"timestamp": 1673520692879, "message": "two"}]
                                         ).encode())
    assert logs.events[0][1:3] == ("/iot/d1", "r1")
    assert json.loads(logs.events[0][3][0][1]) == {"a": "x"}
    assert logs.events[1][3] == [(1673520691093, "one"), (1673520692879, "two")]


async def test_batch_mode_with_a_wrong_shape_fails_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    logs = RecordingLogs()
    runner = ActionRunner(Services(logs=logs), RecordingBroker(), SCOPE)
    r = rule("SELECT * FROM 'dev/+/up'", [{"cloudwatchLogs": {
        "roleArn": ROLE, "logGroupName": "batch", "batchMode": True}}])
    with caplog.at_level(logging.WARNING, "fleetsim.localcore.rules"):
        await fire(runner, r, b'{"not": "a list"}')
    assert logs.events == []
    assert any("rule r1" in m and "batchMode" in m for m in caplog.messages)


async def test_a_missing_feature_is_named_not_an_attribute_error(
        caplog: pytest.LogCaptureFixture) -> None:
    runner = ActionRunner(Services(), RecordingBroker(), SCOPE)
    r = rule("SELECT * FROM 'dev/+/up'", [{"lambda": {"functionArn": FN}}])
    with caplog.at_level(logging.WARNING, "fleetsim.localcore.rules"):
        await fire(runner, r, b"{}")
    assert any("'lambda' feature, which is not installed" in m for m in caplog.messages)


async def test_republish_substitutes_templates_and_qos() -> None:
    broker = RecordingBroker()
    runner = ActionRunner(Services(), broker, SCOPE)
    r = rule("SELECT temp FROM 'dev/+/up' WHERE temp > 20", [{"republish": {
        "roleArn": ROLE, "topic": "alerts/${topic(2)}/${upper(kind)}", "qos": 1}}])
    await fire(runner, r, b'{"temp": 30, "kind": "hot"}')
    assert broker.published == [("alerts/d1/HOT", b'{"temp":30}', 1)]


def test_an_action_must_set_exactly_one_type() -> None:
    with pytest.raises(AwsError) as e:
        rule("SELECT * FROM 'a'", [{"republish": {"roleArn": ROLE, "topic": "x"},
                                    "s3": {"roleArn": ROLE, "bucketName": "b", "key": "k"}}])
    assert e.value.code == "InvalidRequestException"
    with pytest.raises(AwsError) as e:
        rule("SELECT * FROM 'a'", [{"republish": {"roleArn": ROLE, "topic": "${topic(}"}}])
    assert e.value.code == "SqlParseException"
