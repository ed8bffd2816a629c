"""`wait`: sleep."""

from __future__ import annotations

import asyncio
from typing import ClassVar, Literal

from pydantic import field_validator

from fleetsim.engine.context import RunContext
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import Duration, StepBase, parse_duration


class WaitStep(StepBase):
    kind: Literal["wait"]
    seconds: Duration

    scalar_field: ClassVar[str | None] = "seconds"
    _duration = field_validator("seconds", mode="before")(parse_duration)


async def run(ctx: RunContext, step: WaitStep) -> None:
    await asyncio.sleep(step.seconds)


KIND = StepKind(WaitStep, run, phase="device")
