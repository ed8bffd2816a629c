"""The lambda feature's pure parts: function identifiers, resource-policy statements and their
evaluation, the log lines of an invocation, the asynchronous queue's retries."""

from __future__ import annotations

import asyncio
import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.features.functions import names, permissions
from fleetsim.localcore.features.functions.async_queue import Event, EventQueue
from fleetsim.localcore.features.functions.logs import LogSink, invocation_lines, tail
from fleetsim.localcore.features.functions.runner import Outcome, exit_reason
from fleetsim.localcore.scope import Scope

SCOPE = Scope("123456789012", "us-east-1")
NAME = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True)


@given(NAME, st.sampled_from([None, "$LATEST", "prod", "7"]))
def test_every_identifier_form_names_the_function(name: str, qualifier: str | None) -> None:
    tail_ = f":{qualifier}" if qualifier else ""
    for form in (name, f"123456789012:function:{name}", names.function_arn(SCOPE, name)):
        fid = names.parse(form + tail_)
        assert fid is not None and fid.name == name and fid.qualifier == qualifier


@given(st.text(max_size=80))
def test_parse_never_raises(text: str) -> None:
    fid = names.parse(text)
    assert fid is None or 1 <= len(fid.name) <= 64


def test_statements_are_written_as_add_permission_writes_them() -> None:
    s = permissions.statement("a", "lambda:InvokeFunction", "123456789012", "arn:f")
    assert s["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert "Condition" not in s
    assert permissions.statement("b", "lambda:*", "*", "arn:f")["Principal"] == "*"
    doc = json.loads(permissions.policy_document([s]))
    assert doc["Version"] == "2012-10-17" and doc["Id"] == "default"


def test_policy_evaluation() -> None:
    rule = "arn:aws:iot:us-east-1:123456789012:rule/R"
    s = [permissions.statement("iot", "lambda:InvokeFunction", "iot.amazonaws.com", "arn:f",
                               "arn:aws:iot:us-east-1:123456789012:rule/*", "123456789012")]
    assert permissions.allows(s, "iot.amazonaws.com", rule, "123456789012")
    assert not permissions.allows(s, "iot.amazonaws.com", rule, "999999999999")
    assert not permissions.allows(s, "iot.amazonaws.com",
                                  "arn:aws:iot:us-east-2:123456789012:rule/R", "123456789012")
    assert not permissions.allows(s, "events.amazonaws.com", rule, "123456789012")
    other_action = [permissions.statement("x", "lambda:GetFunction", "iot.amazonaws.com", "f")]
    assert not permissions.allows(other_action, "iot.amazonaws.com", rule, "123456789012")
    anyone = [permissions.statement("x", "lambda:*", "*", "f")]
    assert permissions.allows(anyone, "iot.amazonaws.com", rule, "123456789012")
    assert not permissions.allows([], "iot.amazonaws.com", rule, "123456789012")


def test_an_invocations_log_lines() -> None:
    outcome = Outcome(True, b"null", [(1000, "hello")], 12.345, 40)
    lines = invocation_lines("rid", 1000, outcome, 128, 250.5, [(900, "init")])
    texts = [t for _, t in lines]
    assert texts == ["init", "START RequestId: rid Version: $LATEST", "hello",
                     "END RequestId: rid",
                     "REPORT RequestId: rid\tDuration: 12.35 ms\tBilled Duration: 13 ms\t"
                     "Memory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 250.50 ms\t"]
    timed_out = Outcome(False, b"{}", [], 1000.0, 0, "Task timed out after 1.00 seconds")
    texts = [t for _, t in invocation_lines("rid", 0, timed_out, 128, None)]
    assert texts[-3] == "1970-01-01T00:00:01.000Z rid Task timed out after 1.00 seconds"
    assert base64.b64decode(tail(lines)).decode().endswith("250.50 ms\t\n")
    long = [(0, "x" * 5000)]
    assert len(base64.b64decode(tail(long))) == 4096


def test_exit_reasons_as_lambda_words_them() -> None:
    assert exit_reason(3) == "exit status 3"
    assert exit_reason(-11) == "signal: segmentation fault"


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, list[tuple[int, str]]]] = []

    def put_events(self, region: str, group: str, stream: str,
                   events: list[tuple[int, str]]) -> None:
        self.calls.append((region, group, stream, events))


def test_the_sink_hands_lines_to_the_logs_feature_or_warns_once(caplog: object) -> None:
    logs = Recording()
    LogSink(lambda: logs).deliver("us-east-1", "/aws/lambda/f", "s", [(1, "a")])
    assert logs.calls == [("us-east-1", "/aws/lambda/f", "s", [(1, "a")])]

    def missing() -> None:
        raise LookupError("no feature 'logs' is installed")
    sink = LogSink(missing)
    import logging
    with_records = caplog  # pytest's LogCaptureFixture
    for _ in range(3):
        sink.deliver("us-east-1", "/aws/lambda/f", "s", [(1, "a")])
    warnings = [r for r in with_records.records  # type: ignore[attr-defined]
                if r.levelno == logging.WARNING]
    assert len(warnings) == 1


async def test_async_events_are_retried_twice_on_function_errors() -> None:
    attempts: list[int] = []

    async def failing(event: Event) -> bool:
        attempts.append(event.attempt)
        return False
    queue = EventQueue(failing, retry_delays=(0.01, 0.02))
    queue.put(Event(SCOPE, "f", b"{}"))
    for _ in range(200):
        if len(attempts) == 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert attempts == [0, 1, 2]
    queue.close()


async def test_an_event_for_a_deleted_function_is_dropped() -> None:
    attempts: list[int] = []

    async def gone(event: Event) -> bool:
        attempts.append(event.attempt)
        raise LookupError(event.name)
    queue = EventQueue(gone, retry_delays=(0.01,))
    queue.put(Event(SCOPE, "f", b"{}"))
    await queue.join()
    await asyncio.sleep(0.05)
    assert attempts == [0]
    queue.close()
