"""`expect`: registry state, observed messages and shadow documents, each reported as a
check; a failed check fails the run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from fleetsim.control.errors import ApiError
from fleetsim.device import DeviceError
from fleetsim.device.behaviours.shadow import contains
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import StepFailed, api_call
from fleetsim.engine.steps.base import StepKind
from fleetsim.engine.steps.shadow import SHADOW_NAME
from fleetsim.scenario.model import Duration, StepBase, Strict, parse_duration
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate, Template

SHADOW_POLL_S = 0.5  # how often shadow documents not yet as expected are read again


class ThingExpectation(Strict):
    fleet: str
    attributes: dict[str, str] = Field(default_factory=dict)


class MessageExpectation(Strict):
    topic: str  # an MQTT topic filter; may use {thing_name} with `fleet` (one check per device)
    fleet: str | None = None
    count: int = Field(default=1, ge=1)  # at least this many, per device when `fleet` is set


class ShadowExpectation(Strict):
    """Every device's shadow document (GetThingShadow), until it holds or the timeout."""

    fleet: str
    named: str | None = Field(default=None, pattern=SHADOW_NAME)
    converged: bool = True  # no delta left: reported holds every desired value
    reported: dict[str, Any] = Field(default_factory=dict)  # values state.reported holds
    desired: dict[str, Any] = Field(default_factory=dict)  # values state.desired holds


class ExpectStep(StepBase):
    """Checks, reported in the summary; a failed check fails the run."""

    kind: Literal["expect"]
    timeout: Duration = 10.0
    things: list[ThingExpectation] = Field(default_factory=list)
    messages: list[MessageExpectation] = Field(default_factory=list)
    shadows: list[ShadowExpectation] = Field(default_factory=list)

    _duration = field_validator("timeout", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        problems: list[Problem] = []
        for k, exp in enumerate(self.messages):
            loc = (*at, "messages", k)
            if not scope.observing:
                problems.append((loc, "expecting messages needs an 'observe' step before"))
            if exp.fleet is not None and exp.fleet not in scope.fleets:
                problems.append(((*loc, "fleet"), f"no fleet named {exp.fleet!r}"))
            names = DEVICE_NAMES if exp.fleet else set()
            problems += template_problems((*loc, "topic"), exp.topic, names)
        for k, thing in enumerate(self.things):
            if thing.fleet not in scope.fleets:
                problems.append(((*at, "things", k, "fleet"), f"no fleet named {thing.fleet!r}"))
        for k, shadow in enumerate(self.shadows):
            loc = (*at, "shadows", k)
            problems += scope.unknown_fleet(shadow.fleet, (*loc, "fleet"))
            problems += template_problems((*loc, "reported"), shadow.reported, DEVICE_NAMES)
            problems += template_problems((*loc, "desired"), shadow.desired, DEVICE_NAMES)
        return problems


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


async def _check_things(ctx: RunContext, exp: ThingExpectation) -> CheckResult:
    devices = ctx.devices[exp.fleet]
    missing, wrong = [], []
    for d in devices:
        try:
            thing = await api_call(ctx, "DescribeThing", d.thing_name, thingName=d.thing_name)
        except ApiError as e:
            missing.append(f"{d.thing_name} ({e.code})")
            continue
        attrs = thing.get("attributes", {})
        diff = {k: attrs.get(k) for k, v in exp.attributes.items() if attrs.get(k) != v}
        if diff:
            wrong.append(f"{d.thing_name} has {diff}")
    want = f" with attributes {exp.attributes}" if exp.attributes else ""
    name = f"things of fleet {exp.fleet!r} exist{want}"
    problems = (missing and [f"missing: {', '.join(missing[:5])}"]) or []
    problems += wrong[:5]
    ok_count = len(devices) - len(missing) - len(wrong)
    return CheckResult(name, not problems, "; ".join(problems) or f"{ok_count}/{len(devices)}")


async def _check_messages(ctx: RunContext, exp: MessageExpectation,
                          deadline: float) -> list[CheckResult]:
    if exp.fleet is None:
        topics = [exp.topic]
    else:
        t = Template(exp.topic, DEVICE_NAMES)
        topics = [t.render(d.names) for d in ctx.devices[exp.fleet]]
    observer = ctx.observer
    if observer is None:
        raise StepFailed("expecting messages needs an 'observe' step before")
    results = []
    for topic in topics:
        remaining = max(0.0, deadline - time.monotonic())
        with contextlib.suppress(TimeoutError, DeviceError):
            await observer.wait_for_count(topic, exp.count, timeout=remaining)
        seen = len(observer.matching(topic))
        results.append(CheckResult(f"at least {exp.count} message(s) on {topic}",
                                   seen >= exp.count, f"{seen} received"))
    return results


async def _read_payload(out: dict[str, Any]) -> Any:
    payload: Any = out.get("payload")
    if hasattr(payload, "read"):  # botocore's streaming body
        payload = await payload.read()
    return json.loads(payload) if payload else {}


async def _shadow_problem(ctx: RunContext, exp: ShadowExpectation, d: Device,
                          reported_t: StructTemplate, desired_t: StructTemplate) -> str | None:
    """Why the device's shadow document is not as expected (None: it is)."""
    params = {"shadowName": exp.named} if exp.named else {}
    try:
        out = await api_call(ctx, "GetThingShadow", d.thing_name, client=ctx.iot_data,
                             thingName=d.thing_name, **params)
    except ApiError as e:
        return f"{d.thing_name} ({e.code})"
    state = (await _read_payload(out)).get("state", {})
    reported, desired = state.get("reported", {}), state.get("desired", {})
    if exp.converged and (state.get("delta") or not contains(reported, desired)):
        return f"{d.thing_name} has delta {state.get('delta') or desired}"
    want = reported_t.render(d.names)
    if not contains(reported, want):
        return f"{d.thing_name} reports {reported}"
    want = desired_t.render(d.names)
    if not contains(desired, want):
        return f"{d.thing_name} desires {desired}"
    return None


async def _check_shadows(ctx: RunContext, exp: ShadowExpectation,
                         deadline: float) -> CheckResult:
    reported_t = StructTemplate(exp.reported, DEVICE_NAMES)
    desired_t = StructTemplate(exp.desired, DEVICE_NAMES)
    devices = ctx.devices[exp.fleet]
    todo = list(devices)
    problems: dict[str, str] = {}
    while True:
        problems.clear()
        for d in todo:
            problem = await _shadow_problem(ctx, exp, d, reported_t, desired_t)
            if problem is not None:
                problems[d.thing_name] = problem
        todo = [d for d in todo if d.thing_name in problems]
        if not todo or time.monotonic() + SHADOW_POLL_S > deadline:
            break
        await asyncio.sleep(SHADOW_POLL_S)
    wants = ["converged"] if exp.converged else []
    wants += [f"reported {exp.reported}"] if exp.reported else []
    wants += [f"desired {exp.desired}"] if exp.desired else []
    which = f" {exp.named!r}" if exp.named else ""
    name = f"shadows{which} of fleet {exp.fleet!r}: {', '.join(wants) or 'exist'}"
    detail = "; ".join(list(problems.values())[:5]) or f"{len(devices)}/{len(devices)}"
    return CheckResult(name, not problems, detail)


async def run(ctx: RunContext, step: ExpectStep) -> None:
    deadline = time.monotonic() + step.timeout
    results: list[CheckResult] = []
    for thing_exp in step.things:
        results.append(await _check_things(ctx, thing_exp))
    message_results = await asyncio.gather(
        *(_check_messages(ctx, exp, deadline) for exp in step.messages))
    for group in message_results:
        results.extend(group)
    results += await asyncio.gather(*(_check_shadows(ctx, exp, deadline)
                                      for exp in step.shadows))
    for r in results:
        ctx.metrics.check(r.name, r.passed, r.detail)
    failed = [r for r in results if not r.passed]
    if failed:
        raise StepFailed(f"{len(failed)} of {len(results)} checks failed: "
                         + "; ".join(f"{r.name} ({r.detail})" for r in failed[:3]))


KIND = StepKind(ExpectStep, run)
