"""`telemetry`: the telemetry behaviour (fleetsim.device.behaviours.telemetry) for a fleet."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from fleetsim.device.behaviours.telemetry import Stream, publish_periodically
from fleetsim.device.payload import encode
from fleetsim.engine.context import RunContext
from fleetsim.engine.quotas import publish_rate
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import Duration, FleetStep, parse_duration, parse_rate
from fleetsim.scenario.semantics import TELEMETRY_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate, Template


class TelemetryStep(FleetStep):
    """Every device publishes `payload` to `topic` at `rate` for `duration`; each payload
    carries its send time so an observer measures end-to-end latency. `background: true`
    lets the next steps run meanwhile (the telemetry stops at the fleet's disconnect)."""

    kind: Literal["telemetry"]
    topic: str
    payload: dict[str, Any]
    rate: float = 0.2  # per device per second (1/5s)
    duration: Duration = 60.0
    qos: Literal[0, 1] = 0
    background: bool = False
    stamp: bool = True

    needs_connection: ClassVar[bool] = True
    _rate = field_validator("rate", mode="before")(parse_rate)
    _duration = field_validator("duration", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        return (template_problems((*at, "topic"), self.topic, TELEMETRY_NAMES)
                + template_problems((*at, "payload"), self.payload, TELEMETRY_NAMES))


def _streams(ctx: RunContext, step: TelemetryStep) -> list[Stream]:
    topic_t = Template(step.topic, TELEMETRY_NAMES)
    payload_t = StructTemplate(step.payload, TELEMETRY_NAMES)
    streams = []
    for d in ctx.fleet_devices(step.fleet):
        if d.session is None:
            continue
        values = dict(d.names)

        def body(seq: int, values: dict[str, Any] = values) -> bytes:
            values["seq"] = seq
            return encode(payload_t.render(values), stamp=step.stamp)

        streams.append(Stream(lambda d=d: d.session,  # type: ignore[misc]
                              topic_t.render(d.names), body))
    return streams


async def run(ctx: RunContext, step: TelemetryStep) -> None:
    period = 1.0 / publish_rate(ctx.scenario.target, step.rate)
    task = asyncio.ensure_future(publish_periodically(
        _streams(ctx, step), period, time.monotonic() + step.duration, step.qos))
    if step.background:
        ctx.background.setdefault(step.fleet, []).append(task)
        return
    try:
        await task
    finally:
        task.cancel()


KIND = StepKind(TelemetryStep, run, phase="device")
