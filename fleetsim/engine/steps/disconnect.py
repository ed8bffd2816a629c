"""`disconnect`: stop the fleet's behaviours and close its devices' sessions."""

from __future__ import annotations

from typing import ClassVar, Literal

from fleetsim.engine import devices as dev
from fleetsim.engine.context import RunContext
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep
from fleetsim.scenario.semantics import Loc, Problem, Scope


class DisconnectStep(FleetStep):
    kind: Literal["disconnect"]

    scalar_field: ClassVar[str | None] = "fleet"
    needs_connection: ClassVar[bool] = True

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        scope.connected.discard(self.fleet)
        scope.shadows = {s for s in scope.shadows if s[0] != self.fleet}
        return []


async def run(ctx: RunContext, step: DisconnectStep) -> None:
    await dev.stop_background(ctx, step.fleet)
    await dev.disconnect_many(ctx.devices[step.fleet])


KIND = StepKind(DisconnectStep, run, phase="device")
