"""`subscribe`: every connected device subscribes to topics; what arrives is counted."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep


class SubscribeStep(FleetStep):
    """Every device subscribes to `topics`; what they receive is counted."""

    kind: Literal["subscribe"]
    topics: list[str] = Field(min_length=1)
    qos: Literal[0, 1] = 0

    needs_connection: ClassVar[bool] = True


async def run(ctx: RunContext, step: SubscribeStep) -> None:
    async def sub(d: Device) -> None:
        await dev.subscribe(ctx, d, step.topics, step.qos)

    await for_each_device(ctx, [d for d in ctx.fleet_devices(step.fleet) if d.session], sub,
                          step.pacing)


KIND = StepKind(SubscribeStep, run, phase="device")
