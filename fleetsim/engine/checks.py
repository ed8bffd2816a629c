"""The `expect` step: registry state and observed messages, each reported as a check."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from fleetsim.control.errors import ApiError
from fleetsim.device import DeviceError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import StepFailed, api_call
from fleetsim.scenario import model as m
from fleetsim.scenario.semantics import DEVICE_NAMES
from fleetsim.scenario.templating import Template


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


async def _check_things(ctx: RunContext, exp: m.ThingExpectation) -> CheckResult:
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


async def _check_messages(ctx: RunContext, exp: m.MessageExpectation,
                          deadline: float) -> list[CheckResult]:
    if exp.fleet is None:
        topics = [exp.topic]
    else:
        t = Template(exp.topic, DEVICE_NAMES)
        topics = [t.render(d.names) for d in ctx.devices[exp.fleet]]
    results = []
    for topic in topics:
        remaining = max(0.0, deadline - time.monotonic())
        with contextlib.suppress(TimeoutError, DeviceError):
            await ctx.observer.wait_for_count(topic, exp.count, timeout=remaining)
        seen = len(ctx.observer.matching(topic))
        results.append(CheckResult(f"at least {exp.count} message(s) on {topic}",
                                   seen >= exp.count, f"{seen} received"))
    return results


async def run_expect(ctx: RunContext, step: m.ExpectStep) -> None:
    deadline = time.monotonic() + step.timeout
    results: list[CheckResult] = []
    for thing_exp in step.things:
        results.append(await _check_things(ctx, thing_exp))
    message_results = await asyncio.gather(
        *(_check_messages(ctx, exp, deadline) for exp in step.messages))
    for group in message_results:
        results.extend(group)
    for r in results:
        ctx.metrics.check(r.name, r.passed, r.detail)
    failed = [r for r in results if not r.passed]
    if failed:
        raise StepFailed(f"{len(failed)} of {len(results)} checks failed: "
                         + "; ".join(f"{r.name} ({r.detail})" for r in failed[:3]))
