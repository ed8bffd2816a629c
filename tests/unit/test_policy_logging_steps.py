"""The steps of the logging and thing-group policy labs against the fakes: `iot_logging` (role,
options, levels, all put back at clean-up), `filter_log_events` (counts over the run's time
window) and `expect_policy_outcomes` (each device's outcomes against what is stated)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fleetsim.control.cleanup import cleanup
from fleetsim.control.clients import AwsClients
from fleetsim.control.journal import read_entries
from fleetsim.device import DeviceError, Observer
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import StepFailed
from fleetsim.engine.steps import JOURNAL_KINDS, KINDS
from fleetsim.engine.steps.iot_logging import LOGGING_POLICY_ARN, TRUST_POLICY
from fleetsim.errors import ScenarioInvalid
from tests.fakes import FakeIot, FakeSession, connect_fakes, fake_context, journal_kinds

LOGGING = """
    name: t
    steps:
      - iot_logging:
          role: lab-logging
          default_level: WARN
          levels:
            - {target_type: THING_GROUP, target_name: building-one, level: DEBUG}
            - {target_type: CLIENT_ID, target_name: dev-0, level: ERROR}
    """


async def _run_all(ctx: RunContext) -> None:
    for step in ctx.scenario.steps:
        await KINDS[step.kind].run(ctx, step)


async def _clean(ctx: RunContext, iot: FakeIot) -> Any:
    ctx.journal.close()
    clients = AwsClients(iot, iot, iot, logs=iot, iam=iot)
    return await cleanup(clients, read_entries(ctx.journal.run_dir), JOURNAL_KINDS)


async def test_iot_logging_sets_up_the_lab_and_cleanup_puts_back_nothing_configured(
        tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, LOGGING, iot)
    await _run_all(ctx)
    create = dict(next(p for op, p in iot.calls if op == "CreateRole"))
    assert json.loads(create["AssumeRolePolicyDocument"]) == TRUST_POLICY
    assert iot.roles == {"lab-logging": [LOGGING_POLICY_ARN]}
    assert iot.logging_options == {"roleArn": "arn:aws:iam::123456789012:role/lab-logging",
                                   "defaultLogLevel": "WARN", "disableAllLogs": False}
    assert iot.logging_levels == {("THING_GROUP", "building-one"): "DEBUG",
                                  ("CLIENT_ID", "dev-0"): "ERROR"}
    assert journal_kinds(ctx) == ["iam_role", "v2_logging_options", "v2_logging_level",
                                  "v2_logging_level"]
    report = await _clean(ctx, iot)
    assert report.ok, report.failed
    assert iot.roles == {} and iot.logging_levels == {}
    # There is no way to unset the options: never configured before becomes disabled.
    assert iot.logging_options is not None and iot.logging_options["disableAllLogs"] is True


async def test_iot_logging_restores_what_was_there_and_keeps_a_role_it_did_not_make(
        tmp_path: Path) -> None:
    iot = FakeIot()
    before = {"roleArn": "arn:aws:iam::123456789012:role/theirs", "defaultLogLevel": "ERROR",
              "disableAllLogs": False}
    iot.logging_options = dict(before)
    iot.logging_levels[("THING_GROUP", "building-one")] = "INFO"
    iot.roles["lab-logging"] = ["arn:aws:iam::aws:policy/Other"]
    ctx = fake_context(tmp_path, LOGGING, iot)
    await _run_all(ctx)
    assert "AttachRolePolicy" not in iot.ops()  # the existing role is used as it is
    assert journal_kinds(ctx) == ["v2_logging_options", "v2_logging_level", "v2_logging_level"]
    # A second step on the same target journals nothing more: the level before the run wins.
    await _run_all(ctx)
    assert journal_kinds(ctx).count("v2_logging_level") == 2
    report = await _clean(ctx, iot)
    assert report.ok, report.failed
    assert iot.logging_options == before
    assert iot.logging_levels == {("THING_GROUP", "building-one"): "INFO"}
    assert iot.roles == {"lab-logging": ["arn:aws:iam::aws:policy/Other"]}


def test_iot_logging_with_nothing_to_set_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ScenarioInvalid, match="give default_level, disable_all or levels"):
        fake_context(tmp_path, "name: t\nsteps: [{iot_logging: {role: r}}]\n")


def _log(iot: FakeIot, group: str, at: float, **entry: Any) -> None:
    iot.log_events.setdefault(group, []).append(
        {"timestamp": int(at * 1000), "message": json.dumps(entry), "logStreamName": "s"})


def _search_ctx(tmp_path: Path, iot: FakeIot, step: str) -> RunContext:
    return fake_context(tmp_path, f"name: t\nsteps:\n  - filter_log_events: {step}\n", iot)


async def test_filter_log_events_counts_only_the_runs_window(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = _search_ctx(tmp_path, iot, "{pattern: '{$.logLevel = ERROR}', "
                                     "expect: {count: 2, each: {eventType: Publish-In}}, "
                                     "timeout: 0s}")
    _log(iot, "AWSIotLogsV2", ctx.started - 60, logLevel="ERROR", eventType="Publish-In")
    for _ in range(2):
        _log(iot, "AWSIotLogsV2", ctx.started + 1, logLevel="ERROR", eventType="Publish-In")
    _log(iot, "AWSIotLogsV2", ctx.started + 1, logLevel="INFO", eventType="Connect")
    await KINDS["filter_log_events"].run(ctx, ctx.scenario.steps[0])
    (check,) = ctx.metrics.checks
    assert check.passed and check.detail == "2 found"
    call = dict(iot.calls[-1][1])
    assert call["startTime"] == int(ctx.started * 1000)
    assert call["filterPattern"] == "{$.logLevel = ERROR}"


@pytest.mark.parametrize(("expect", "detail"), [
    ("{at_least: 3}", "2 found"),
    ("{at_most: 1}", "2 found"),
    ("{count: 2, each: {eventType: Connect}}", "an entry has eventType='Publish-In'"),
])
async def test_filter_log_events_fails_outside_the_bounds(tmp_path: Path, expect: str,
                                                          detail: str) -> None:
    iot = FakeIot()
    ctx = _search_ctx(tmp_path, iot, f"{{expect: {expect}, timeout: 0s}}")
    for _ in range(2):
        _log(iot, "AWSIotLogsV2", time.time() + 1, logLevel="ERROR", eventType="Publish-In")
    with pytest.raises(StepFailed, match="filter-log-events AWSIotLogsV2"):
        await KINDS["filter_log_events"].run(ctx, ctx.scenario.steps[0])
    (check,) = ctx.metrics.checks
    assert not check.passed and check.detail.startswith(detail)


async def test_filter_log_events_on_a_log_group_not_there_yet(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = _search_ctx(tmp_path, iot, "{expect: {at_most: 0}, timeout: 0s}")
    await KINDS["filter_log_events"].run(ctx, ctx.scenario.steps[0])
    (tmp_path / "2").mkdir()
    ctx = _search_ctx(tmp_path / "2", iot, "{expect: {at_least: 1}, timeout: 0s}")
    with pytest.raises(StepFailed, match="log group AWSIotLogsV2 does not exist"):
        await KINDS["filter_log_events"].run(ctx, ctx.scenario.steps[0])


@pytest.mark.parametrize(("expect", "message"), [
    ("{}", "give count, at_least or at_most"),
    ("{count: 1, at_least: 1}", "count is exact"),
    ("{at_least: 3, at_most: 1}", "at_least 3 is more than at_most 1"),
])
def test_filter_log_events_bounds_are_checked_at_load(tmp_path: Path, expect: str,
                                                      message: str) -> None:
    with pytest.raises(ScenarioInvalid, match=message):
        _search_ctx(tmp_path, FakeIot(), f"{{expect: {expect}}}")


POLICY_FLEET = """
    name: t
    fleets: [{name: f, prefix: dev, count: 3}]
    steps:
      - connect: f
      - observe: {topics: ["t/#"]}
      - expect_policy_outcomes:
          fleet: f
          timeout: 0.2s
          publish:
            allowed: ["t/{client_id}"]
            denied: ["t/{client_id}_foo"]
          subscribe:
            allowed: ["c/{client_id}"]
            denied: ["c/all"]
    """


def _broker(observer: Observer, sessions: list[FakeSession], delivers: bool = True) -> None:
    """What the broker does with the fleet's publishes: those it lets through reach the
    observer; the `_foo` topics and `c/all` are denied (MQTT 3.1.1 and MQTT 5 answers)."""
    for n, session in enumerate(sessions):
        session.refused[f"t/{session.client_id}_foo"] = (
            "disconnected_by_server" if n % 2 == 0 else "puback_not_authorized")
        session.refused["c/all"] = "suback_refused"
        if delivers:
            session.responder = lambda _s, topic, payload: observer.add(topic, payload)


def _policy_ctx(tmp_path: Path, yaml: str = POLICY_FLEET
                ) -> tuple[RunContext, list[FakeSession], Observer]:
    ctx = fake_context(tmp_path, yaml)
    sessions = connect_fakes(ctx, "f")
    observer = Observer(FakeSession("observer"), ["t/#"], ctx.metrics)  # type: ignore[arg-type]
    ctx.observer = observer
    return ctx, sessions, observer


async def test_expect_policy_outcomes_passes_when_every_device_gets_what_is_stated(
        tmp_path: Path) -> None:
    ctx, sessions, observer = _policy_ctx(tmp_path)
    _broker(observer, sessions)
    await KINDS["expect_policy_outcomes"].run(ctx, ctx.scenario.steps[2])
    checks = {c.name: (c.passed, c.detail) for c in ctx.metrics.checks}
    assert checks == {
        "fleet 'f': subscribe c/{client_id}: allowed": (True, "3/3"),
        "fleet 'f': subscribe c/all: denied": (True, "3/3"),
        "fleet 'f': publish t/{client_id}: allowed": (True, "3/3"),
        "fleet 'f': publish t/{client_id}_foo: denied": (True, "3/3"),
    }
    counters = ctx.metrics.counters
    assert counters["policy.publish.allowed"] == 3 and counters["policy.publish.denied"] == 3
    assert counters["policy.subscribe.allowed"] == 3
    assert counters["policy.subscribe.denied"] == 3
    # The MQTT 3.1.1 denials (devices 0 and 2) closed the connection: connected again.
    assert counters["policy.reconnects"] == 2
    assert [s.drops for s in sessions] == [1, 0, 1]
    assert sessions[1].published[0] == ("t/dev-1", {"probe": "test/dev-1/2"}, 1)


async def test_expect_policy_outcomes_names_each_device_that_differs(tmp_path: Path) -> None:
    ctx, sessions, observer = _policy_ctx(tmp_path)
    _broker(observer, sessions)
    del sessions[1].refused["t/dev-1_foo"]  # allowed, and delivered: the policy is too wide
    sessions[2].refused["c/dev-2"] = "suback_refused"
    sessions[0].responder = None  # acknowledged, but nothing reaches the observer
    with pytest.raises(StepFailed, match="3 of 4 policy outcomes differ"):
        await KINDS["expect_policy_outcomes"].run(ctx, ctx.scenario.steps[2])
    checks = {c.name: (c.passed, c.detail) for c in ctx.metrics.checks}
    assert checks["fleet 'f': publish t/{client_id}_foo: denied"] == (False, "dev-1: allowed")
    assert checks["fleet 'f': subscribe c/{client_id}: allowed"] == (False, "dev-2: denied")
    assert checks["fleet 'f': publish t/{client_id}: allowed"] == (
        False, "dev-0: allowed but not delivered")


async def test_expect_policy_outcomes_sees_a_denied_publish_that_was_delivered(
        tmp_path: Path) -> None:
    ctx, sessions, observer = _policy_ctx(tmp_path)
    _broker(observer, sessions)
    # The broker refuses dev-1's publish but (wrongly) delivers it all the same.
    sessions[1].refused.pop("t/dev-1_foo")
    real = sessions[1]._record

    def record(topic: str, payload: Any, qos: int) -> None:
        real(topic, payload, qos)
        if topic.endswith("_foo"):
            raise DeviceError("puback_not_authorized", topic)

    sessions[1]._record = record  # type: ignore[method-assign]
    with pytest.raises(StepFailed, match="1 of 4 policy outcomes differ"):
        await KINDS["expect_policy_outcomes"].run(ctx, ctx.scenario.steps[2])
    checks = {c.name: (c.passed, c.detail) for c in ctx.metrics.checks}
    assert checks["fleet 'f': publish t/{client_id}_foo: denied"] == (
        False, "dev-1: denied but delivered")


def test_expect_policy_outcomes_needs_an_observer_for_publishes(tmp_path: Path) -> None:
    yaml = """
        name: t
        fleets: [{name: f, prefix: dev}]
        steps:
          - connect: f
          - expect_policy_outcomes: {fleet: f, publish: {denied: [x]}}
        """
    with pytest.raises(ScenarioInvalid, match="needs an 'observe' step before"):
        fake_context(tmp_path, yaml)


async def test_expect_policy_outcomes_refuses_a_topic_the_observer_cannot_see(
        tmp_path: Path) -> None:
    ctx, _, observer = _policy_ctx(tmp_path)
    observer.topic_filters = ["other/#"]
    with pytest.raises(Exception, match="the observer does not subscribe to t/dev-"):
        await KINDS["expect_policy_outcomes"].run(ctx, ctx.scenario.steps[2])


async def test_create_thing_group_nests_and_attaches_policies_undone_at_cleanup(
        tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, """
        name: t
        steps:
          - create_thing_group: {group: campus, policies: [base]}
          - create_thing_group: {group: floor, parent: campus, policies: [deny, extra]}
        """, iot)
    await _run_all(ctx)
    create = [p for op, p in iot.calls if op == "CreateThingGroup"]
    assert create[1] == {"thingGroupName": "floor", "parentGroupName": "campus"}
    floor = "arn:aws:iot:us-east-1:123456789012:thinggroup/floor"
    assert [p for op, p in iot.calls if op == "AttachPolicy"][1:] == [
        {"policyName": "deny", "target": floor}, {"policyName": "extra", "target": floor}]
    iot.calls.clear()
    report = await _clean(ctx, iot)
    assert report.ok and report.removed == {"thing_group": 2, "policy_attachment": 3}
    ops = iot.ops()
    assert ops.index("DetachPolicy") < ops.index("DeleteThingGroup")


def test_expect_if_created_needs_a_fleet(tmp_path: Path) -> None:
    yaml = """
        name: t
        fleets: [{name: f, prefix: dev}]
        steps:
          - observe: {topics: ["$aws/events/#"]}
          - expect: {messages: [{topic: "$aws/events/thing/x/created", if_created: true}]}
        """
    with pytest.raises(ScenarioInvalid, match="if_created needs a fleet"):
        fake_context(tmp_path, yaml)
