"""`shadow_desired`: the control plane sets each device's desired shadow state through the
API (iot-data UpdateThingShadow), paced, and by default waits until every device running the
`shadow` behaviour has reported it (the time from the API's answer to the device's accepted
report is `shadow.converge`)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator

from fleetsim.device.behaviours.shadow import CONVERGE_OP, Convergence
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.engine.steps.shadow import SHADOW, SHADOW_NAME, journal_shadow
from fleetsim.errors import UserError
from fleetsim.scenario.model import Duration, FleetStep, Pacing, parse_duration
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate


class ShadowDesiredStep(FleetStep):
    kind: Literal["shadow_desired"]
    named: str | None = Field(default=None, pattern=SHADOW_NAME)
    desired: dict[str, Any]  # templates, rendered per device
    wait: bool = True  # until every device has reported the desired state
    timeout: Duration = 30.0  # for the wait

    _duration = field_validator("timeout", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        problems = template_problems((*at, "desired"), self.desired, DEVICE_NAMES)
        if self.wait and (self.fleet, self.named) not in scope.shadows:
            which = f"named {self.named!r}" if self.named else "classic"
            problems.append(((*at, "wait"), f"waiting for convergence needs a 'shadow' step "
                                            f"({which}) for fleet {self.fleet!r} before this "
                                            "one, or 'wait: false'"))
        return problems


async def run(ctx: RunContext, step: ShadowDesiredStep) -> None:
    desired_t = StructTemplate(step.desired, DEVICE_NAMES)
    convergences: dict[int, Convergence] = {}

    async def set_desired(d: Device) -> None:
        desired = desired_t.render(d.names)
        reporter = d.shadow(step.named or "")
        convergence = reporter.expect(desired) if reporter is not None else None
        params: dict[str, Any] = {"thingName": d.thing_name, "payload": json.dumps(
            {"state": {"desired": desired}}).encode()}
        if step.named:
            params["shadowName"] = step.named
        journal_shadow(ctx, d, step.named)
        await api_call(ctx, "UpdateThingShadow", d.thing_name, client=ctx.iot_data, **params)
        if convergence is not None:
            convergence.desired_accepted()
            convergences[d.index] = convergence

    devices = ctx.fleet_devices(step.fleet)
    await for_each_device(ctx, devices, set_desired, step.pacing)
    if not step.wait:
        return

    async def converged(d: Device) -> None:
        convergence = convergences.get(d.index)
        if convergence is None:
            raise UserError(f"{d.thing_name} runs no shadow reporter to converge")
        try:
            await convergence.wait(step.timeout)
        except TimeoutError:
            ctx.metrics.error("not_converged", CONVERGE_OP)
            raise UserError(f"{d.thing_name} did not report its desired shadow state within "
                            f"{step.timeout:g}s") from None

    waiting = ctx.fleet_devices(step.fleet)
    await for_each_device(ctx, waiting, converged, Pacing(concurrency=max(1, len(waiting))))


KIND = StepKind(ShadowDesiredStep, run, journals=(SHADOW,))
