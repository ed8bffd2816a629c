"""`connect`: every device opens its MQTT session over mutual TLS, paced."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import field_validator

from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.quotas import connect_pacing
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import Duration, FleetStep, parse_duration
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import Template

CLIENT_ID_NAMES = DEVICE_NAMES - {"client_id"}


class ConnectStep(FleetStep):
    kind: Literal["connect"]
    client_id: str = "{thing_name}"
    timeout: Duration = 10.0
    reconnect: bool = True  # reconnect with exponential back-off when the connection drops

    scalar_field: ClassVar[str | None] = "fleet"
    _duration = field_validator("timeout", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        scope.connected.add(self.fleet)
        return template_problems((*at, "client_id"), self.client_id, CLIENT_ID_NAMES)


async def run(ctx: RunContext, step: ConnectStep) -> None:
    client_id_t = Template(step.client_id, CLIENT_ID_NAMES)
    devices = ctx.fleet_devices(step.fleet)

    async def open_session(d: Device) -> None:
        d.session = await dev.connect(ctx, d, client_id_t.render(d.names), step.timeout,
                                      step.reconnect)

    await for_each_device(ctx, devices, open_session,
                          connect_pacing(ctx.scenario.target, ctx.shards, step.pacing))


KIND = StepKind(ConnectStep, run, phase="device")
