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

THING_NAMES = DEVICE_NAMES | {"certificate_id"}
SHADOW_POLL_S = 0.5  # how often shadow documents not yet as expected are read again


class ThingExpectation(Strict):
    fleet: str
    # Each device's thing, by name: a template (JITR's function names it after the
    # certificate: "jitr-{certificate_id}").
    thing: str = "{thing_name}"
    attributes: dict[str, str] = Field(default_factory=dict)  # templates per device
    thing_type: str | None = None
    groups: list[str] = Field(default_factory=list)  # static groups it belongs to (at least)
    # An ACTIVE certificate attached to it, with at least one policy attached to that.
    certificate_with_policy: bool = False


class MessageExpectation(Strict):
    topic: str  # an MQTT topic filter; may use {thing_name} with `fleet` (one check per device)
    fleet: str | None = None
    count: int = Field(default=1, ge=1)  # at least this many, per device when `fleet` is set
    # Only for the fleet's things this run created: registry events (`created`, `updated`)
    # come from a create, and a re-run that reuses the thing makes none.
    if_created: bool = False


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
            if exp.if_created and exp.fleet is None:
                problems.append(((*loc, "if_created"), "if_created needs a fleet: it keeps "
                                 "the checks of the fleet's things this run created"))
            names = DEVICE_NAMES if exp.fleet else set()
            problems += template_problems((*loc, "topic"), exp.topic, names)
        for k, thing in enumerate(self.things):
            if thing.fleet not in scope.fleets:
                problems.append(((*at, "things", k, "fleet"), f"no fleet named {thing.fleet!r}"))
            problems += template_problems((*at, "things", k, "attributes"), thing.attributes,
                                          DEVICE_NAMES)
            problems += template_problems((*at, "things", k, "thing"), thing.thing,
                                          THING_NAMES)
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


async def _registry_problem(ctx: RunContext, exp: ThingExpectation, name: str,
                            attributes: dict[str, str], thing: dict[str, Any]) -> str | None:
    """How the thing differs from what is expected of it (None: it does not)."""
    attrs = thing.get("attributes", {})
    diff = {k: attrs.get(k) for k, v in attributes.items() if attrs.get(k) != v}
    if diff:
        return f"{name} has {diff}"
    if exp.thing_type is not None and thing.get("thingTypeName") != exp.thing_type:
        return f"{name} has thing type {thing.get('thingTypeName')}"
    if exp.groups:
        out = await api_call(ctx, "ListThingGroupsForThing", name,
                             thingName=name)
        groups = {g["groupName"] for g in out.get("thingGroups", [])}
        if not set(exp.groups) <= groups:
            return f"{name} is in groups {sorted(groups)}"
    if exp.certificate_with_policy and not await _certified(ctx, name):
        return f"{name} has no ACTIVE certificate with a policy attached"
    return None


async def _certified(ctx: RunContext, name: str) -> bool:
    out = await api_call(ctx, "ListThingPrincipals", name, thingName=name)
    for principal in out.get("principals", []):
        if ":cert/" not in principal:
            continue
        cert = await api_call(ctx, "DescribeCertificate", name,
                              certificateId=principal.rsplit("/", 1)[-1])
        policies = await api_call(ctx, "ListAttachedPolicies", name, target=principal)
        if cert["certificateDescription"]["status"] == "ACTIVE" and policies["policies"]:
            return True
    return False


async def _check_things(ctx: RunContext, exp: ThingExpectation) -> CheckResult:
    devices = ctx.devices[exp.fleet]
    attributes_t = StructTemplate(exp.attributes, DEVICE_NAMES)
    name_t = Template(exp.thing, THING_NAMES)
    missing, wrong = [], []
    for d in devices:
        name = name_t.render(d.names | {"certificate_id": d.certificate_id or ""})
        try:
            thing = await api_call(ctx, "DescribeThing", name, thingName=name)
            attributes = {k: str(v) for k, v in attributes_t.render(d.names).items()}
            problem = await _registry_problem(ctx, exp, name, attributes, thing)
        except ApiError as e:
            missing.append(f"{name} ({e.code})")
            continue
        if problem is not None:
            wrong.append(problem)
    wants = [f"attributes {exp.attributes}"] if exp.attributes else []
    wants += [f"type {exp.thing_type}"] if exp.thing_type else []
    wants += [f"groups {exp.groups}"] if exp.groups else []
    wants += ["a certificate with a policy"] if exp.certificate_with_policy else []
    name = f"things of fleet {exp.fleet!r} exist" + (f" with {', '.join(wants)}" if wants
                                                     else "")
    problems = (missing and [f"missing: {', '.join(missing[:5])}"]) or []
    problems += wrong[:5]
    ok_count = len(devices) - len(missing) - len(wrong)
    return CheckResult(name, not problems, "; ".join(problems) or f"{ok_count}/{len(devices)}")


async def _check_messages(ctx: RunContext, exp: MessageExpectation,
                          deadline: float) -> list[CheckResult]:
    count = exp.count
    if exp.fleet is None:
        topics = [exp.topic]
    else:
        t = Template(exp.topic, DEVICE_NAMES)
        devices = [d for d in ctx.devices[exp.fleet]
                   if not exp.if_created or ctx.reconcile.is_fresh_thing(d.thing_name)]
        topics = [t.render(d.names) for d in devices]
        if len(set(topics)) == 1 and len(topics) > 1:  # one topic for all: count per device
            topics, count = topics[:1], exp.count * len(topics)
    observer = ctx.observer
    if observer is None:
        raise StepFailed("expecting messages needs an 'observe' step before")
    results = []
    for topic in topics:
        remaining = max(0.0, deadline - time.monotonic())
        with contextlib.suppress(TimeoutError, DeviceError):
            await observer.wait_for_count(topic, count, timeout=remaining)
        seen = len(observer.matching(topic))
        results.append(CheckResult(f"at least {count} message(s) on {topic}",
                                   seen >= count, f"{seen} received"))
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
