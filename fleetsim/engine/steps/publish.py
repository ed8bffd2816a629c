"""`publish`: every connected device publishes a templated payload, `count` times."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import Duration, FleetStep, parse_duration
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate, Template


class PublishStep(FleetStep):
    kind: Literal["publish"]
    topic: str
    payload: dict[str, Any] | list[Any] | str
    qos: Literal[0, 1] = 0
    count: int = Field(default=1, ge=1)
    interval: Duration = 0.0

    needs_connection: ClassVar[bool] = True
    _duration = field_validator("interval", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        return (template_problems((*at, "topic"), self.topic, DEVICE_NAMES)
                + template_problems((*at, "payload"), self.payload, DEVICE_NAMES))


async def run(ctx: RunContext, step: PublishStep) -> None:
    topic_t = Template(step.topic, DEVICE_NAMES)
    payload_t = StructTemplate(step.payload, DEVICE_NAMES)

    async def send(d: Device) -> None:
        for n in range(step.count):
            if n and step.interval:
                await asyncio.sleep(step.interval)
            payload = payload_t.render(d.names)
            body = payload if isinstance(payload, str) else json.dumps(payload)
            await dev.publish(ctx, d, topic_t.render(d.names), body.encode(), step.qos)

    await for_each_device(ctx, [d for d in ctx.fleet_devices(step.fleet) if d.session], send,
                          step.pacing)


KIND = StepKind(PublishStep, run, phase="device")
