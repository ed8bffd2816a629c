"""`shadow`: each connected device of a fleet runs the shadow reporter behaviour
(fleetsim.device.behaviours.shadow): it reports `report`, then answers every delta of its
shadow by reporting the desired values, until the fleet disconnects."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from fleetsim.device import DeviceError
from fleetsim.device.behaviours.shadow import ShadowReporter
from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.shadow_journal import SHADOW
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.scenario.model import Duration, FleetStep, parse_duration
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate

# AWS IoT's shadow name pattern (named shadows); None is the classic shadow.
SHADOW_NAME = r"^[a-zA-Z0-9:_-]{1,64}$"


class ShadowStep(FleetStep):
    kind: Literal["shadow"]
    named: str | None = Field(default=None, pattern=SHADOW_NAME)  # None: the classic shadow
    report: dict[str, Any] | None = None  # the initial reported state (templates)
    get: bool = True  # ask for the document and answer a delta already there
    qos: Literal[0, 1] = 0
    timeout: Duration = 10.0  # for each answer of the service

    scalar_field: ClassVar[str | None] = "fleet"
    needs_connection: ClassVar[bool] = True
    _duration = field_validator("timeout", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        scope.shadows.add((self.fleet, self.named))
        if self.report is None:
            return []
        return template_problems((*at, "report"), self.report, DEVICE_NAMES)


def journal_shadow(ctx: RunContext, d: Device, named: str | None) -> None:
    """Write the device's shadow down once per run, whichever step makes it first."""
    key = (SHADOW.name, d.thing_name, named or "")
    if key not in ctx.journaled:
        ctx.journaled.add(key)
        ctx.journal_for(d.fleet).record(SHADOW.name, thing=d.thing_name, shadow=named)


async def run(ctx: RunContext, step: ShadowStep) -> None:
    report_t = StructTemplate(step.report, DEVICE_NAMES) if step.report is not None else None

    async def start(d: Device) -> None:
        assert d.session is not None
        reporter = ShadowReporter(d.session, d.thing_name, ctx.metrics, step.named, step.qos)
        shadows = d.shadows = d.shadows if d.shadows is not None else {}
        old = shadows.pop(step.named or "", None)
        if old is not None:
            old.close()
        shadows[step.named or ""] = reporter
        dev.listen(d, reporter.on_message)
        journal_shadow(ctx, d, step.named)
        try:
            await reporter.start(report_t.render(d.names) if report_t else None, step.get,
                                 step.timeout)
        except DeviceError as e:
            raise UserError(f"{d.thing_name}: shadow {reporter.prefix} failed ({e})") from e

    await for_each_device(ctx, [d for d in ctx.fleet_devices(step.fleet) if d.session], start,
                          step.pacing)


KIND = StepKind(ShadowStep, run, journals=(SHADOW,))
