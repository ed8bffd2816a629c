"""`expect_policy_outcomes`: every device of a fleet tries publishes and subscribes whose
outcome is stated beforehand, allowed or denied, and the run checks each device got exactly
that: a policy design (certificate policies, thing-group policies inherited down nested
groups, explicit denies) checked at fleet scale, on local core or on AWS alike.

How AWS IoT answers (developer guide, "AWS IoT Core policies" and "MQTT"):
- a publish not allowed: on MQTT 3.1.1 the server closes the connection; on MQTT 5 a PUBACK
  with reason code 0x87 (Not authorized). Probes are QoS 1, so both are seen by the publish.
- a subscribe not allowed: a SUBACK failure (0x80; MQTT 5: 0x87).
- an allowed publish must also arrive at the observer (an `observe` step before, whose topic
  filters cover the topics), and a denied one must not.
A device that a denial disconnected is connected again before its next attempt (its session's
reconnect policy, or a new session with the same client id); the step's summary counts both
outcomes (`policy.publish.allowed`, `policy.publish.denied`, ...) and the reconnects.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from paho.mqtt.client import topic_matches_sub
from pydantic import Field, field_validator

from fleetsim.device import DeviceError
from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import StepFailed, for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.scenario.model import Duration, FleetStep, Strict, parse_duration
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import Template

Outcome = Literal["allowed", "denied"]
# Error kinds that are AWS IoT's answer to an action its policies do not allow.
DENIED_PUBLISH = {"disconnected_by_server", "puback_not_authorized"}
SETTLE_S = 1.0  # how long a denied publish is given to (wrongly) arrive after the allowed ones


class Outcomes(Strict):
    allowed: list[str] = Field(default_factory=list)  # topics (publish) or filters (subscribe)
    denied: list[str] = Field(default_factory=list)


class ExpectPolicyOutcomesStep(FleetStep):
    kind: Literal["expect_policy_outcomes"]
    publish: Outcomes = Field(default_factory=Outcomes)
    subscribe: Outcomes = Field(default_factory=Outcomes)
    timeout: Duration = 10.0  # for an allowed publish to arrive at the observer

    needs_connection: ClassVar[bool] = True
    _duration = field_validator("timeout", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        problems: list[Problem] = []
        for action, outcomes in (("publish", self.publish), ("subscribe", self.subscribe)):
            for outcome in ("allowed", "denied"):
                for k, topic in enumerate(getattr(outcomes, outcome)):
                    problems += template_problems((*at, action, outcome, k), topic,
                                                  DEVICE_NAMES)
        if not any((self.publish.allowed, self.publish.denied, self.subscribe.allowed,
                    self.subscribe.denied)):
            problems.append((at, "state at least one publish or subscribe outcome"))
        if (self.publish.allowed or self.publish.denied) and not scope.observing:
            problems.append(((*at, "publish"), "checking where publishes arrive needs an "
                                               "'observe' step before"))
        return problems


@dataclass
class Attempt:
    action: Literal["publish", "subscribe"]
    template: str
    expected: Outcome
    got: dict[str, str] = field(default_factory=dict)  # thing -> allowed | denied | error...

    @property
    def name(self) -> str:
        return f"{self.action} {self.template}: {self.expected}"


async def _reconnect(ctx: RunContext, d: Device) -> None:
    """Connected again after a denial closed the connection."""
    session = d.session
    assert session is not None
    if session.policy is not None and await session.wait_connected():
        ctx.metrics.incr("policy.reconnects")
        return
    handlers, d.handlers = d.handlers or [], None
    with_policy = session.policy is not None
    d.session = await dev.connect(ctx, d, session.client_id, session.timeout, with_policy)
    for handler in handlers:  # what listened to the old session listens to the new one
        dev.listen(d, handler)
    ctx.metrics.incr("policy.reconnects")


async def _publish(ctx: RunContext, d: Device, topic: str, probe: str) -> str:
    assert d.session is not None
    try:
        await d.session.publish(topic, json.dumps({"probe": probe}).encode(), qos=1)
    except DeviceError as e:
        if e.kind in DENIED_PUBLISH:
            if e.kind == "disconnected_by_server":
                await _reconnect(ctx, d)
            return "denied"
        return f"error ({e.kind})"
    return "allowed"


async def _subscribe(d: Device, topic_filter: str) -> str:
    assert d.session is not None
    try:
        await d.session.subscribe(topic_filter, 1)
    except DeviceError as e:
        return "denied" if e.kind.startswith("suback_") else f"error ({e.kind})"
    return "allowed"


def _attempts(step: ExpectPolicyOutcomesStep) -> list[Attempt]:
    out = []
    # Subscribes first, then allowed publishes, then those that may cost a reconnect.
    for action, outcomes in (("subscribe", step.subscribe), ("publish", step.publish)):
        for expected in ("allowed", "denied"):
            out += [Attempt(action, t, expected)  # type: ignore[arg-type]
                    for t in getattr(outcomes, expected)]
    return out


async def run(ctx: RunContext, step: ExpectPolicyOutcomesStep) -> None:
    attempts = _attempts(step)
    templates = {a.template: Template(a.template, DEVICE_NAMES) for a in attempts}
    observer = ctx.observer
    sent: dict[str, tuple[Attempt, str, str]] = {}  # probe -> (attempt, thing, topic)
    uncovered: set[str] = set()

    async def try_all(d: Device) -> None:
        assert d.session is not None
        names = {**d.names, "client_id": d.session.client_id}
        for n, a in enumerate(attempts):
            topic = templates[a.template].render(names)
            if a.action == "subscribe":
                got = await _subscribe(d, topic)
            else:
                probe = f"{ctx.run_id}/{d.thing_name}/{n}"
                got = await _publish(ctx, d, topic, probe)
                sent[probe] = (a, d.thing_name, topic)
                if observer is not None and not any(
                        topic_matches_sub(f, topic) for f in observer.topic_filters):
                    uncovered.add(topic)
            a.got[d.thing_name] = got
            if got in ("allowed", "denied"):
                ctx.metrics.incr(f"policy.{a.action}.{got}")

    devices = [d for d in ctx.fleet_devices(step.fleet) if d.session]
    await for_each_device(ctx, devices, try_all, step.pacing)
    if uncovered:
        raise UserError(f"the observer does not subscribe to {sorted(uncovered)[0]}: add a "
                        "topic filter that covers it to the 'observe' step")
    await _check_arrivals(ctx, step, sent)
    _report(ctx, step, attempts, [d for d in devices if d.failed is None])


async def _check_arrivals(ctx: RunContext, step: ExpectPolicyOutcomesStep,
                          sent: dict[str, tuple[Attempt, str, str]]) -> None:
    """An allowed publish that did not arrive, or a denied one that did, is marked so."""
    observer = ctx.observer
    if observer is None or not sent:
        return

    def arrived() -> set[str]:
        return {m.data["probe"] for m in observer.received
                if isinstance(m.data, dict) and m.data.get("probe") in sent}

    awaited = {p for p, (a, thing, _) in sent.items() if a.got.get(thing) == "allowed"}
    deadline = time.monotonic() + step.timeout
    while awaited - arrived() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if any(a.expected == "denied" for a, _, _ in sent.values()):
        await asyncio.sleep(min(SETTLE_S, step.timeout))
    seen = arrived()
    for probe, (a, thing, _) in sent.items():
        got = a.got.get(thing)
        if got == "allowed" and probe not in seen:
            a.got[thing] = "allowed but not delivered"
        elif got == "denied" and probe in seen:
            a.got[thing] = "denied but delivered"


def _report(ctx: RunContext, step: ExpectPolicyOutcomesStep, attempts: list[Attempt],
            devices: list[Device]) -> None:
    failed = []
    for a in attempts:
        wrong = {t: g for t, g in a.got.items() if g != a.expected}
        missing = [d.thing_name for d in devices if d.thing_name not in a.got]
        ok = len(a.got) - len(wrong)
        detail = "; ".join([f"{t}: {g}" for t, g in list(wrong.items())[:5]]
                           + ([f"not tried: {', '.join(missing[:5])}"] if missing else []))
        passed = not wrong and not missing and bool(a.got)
        name = f"fleet {step.fleet!r}: {a.name}"
        ctx.metrics.check(name, passed, detail or f"{ok}/{len(a.got)}")
        if not passed:
            failed.append(f"{name} ({detail or 'no device tried it'})")
    if failed:
        raise StepFailed(f"{len(failed)} of {len(attempts)} policy outcomes differ: "
                         + "; ".join(failed[:3]))


KIND = StepKind(ExpectPolicyOutcomesStep, run)
