"""`update_things`: update-thing with attributes for every device of a fleet (values are
templates, e.g. `room_number: "{index}"`)."""

from __future__ import annotations

from typing import Literal

from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.provisioning import THING
from fleetsim.engine.reconcile import attribute_items
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import FleetStep
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate


class UpdateThingsStep(FleetStep):
    kind: Literal["update_things"]
    attributes: dict[str, str]
    merge: bool = True

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        return template_problems((*at, "attributes"), self.attributes, DEVICE_NAMES)


async def run(ctx: RunContext, step: UpdateThingsStep) -> None:
    """A thing this run created is updated as it is. An earlier run's is described first:
    the attributes already there, reused; else drift (`thing T: attribute type is missing
    (want ws-device)`), fixed by the update."""
    template = StructTemplate(step.attributes, DEVICE_NAMES)
    ledger = ctx.reconcile

    async def update(d: Device) -> None:
        attributes = {k: str(v) for k, v in template.render(d.names).items()}
        if not ledger.is_fresh_thing(d.thing_name):
            have = await describe(ctx, "DescribeThing", d.thing_name, thingName=d.thing_name)
            if have is None and ledger.plan:
                return  # not there: the run would fail here, as UpdateThing would
            items = attribute_items(attributes, (have or {}).get("attributes") or {})
            if have is not None and not items:
                ledger.reuse("thing_attributes", d.thing_name)
                return
            if have is not None:
                ledger.drifted(THING.name, d.thing_name, items)
        if ledger.plan:
            return
        await api_call(ctx, "UpdateThing", d.thing_name, thingName=d.thing_name,
                       attributePayload={"attributes": attributes, "merge": step.merge})

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), update, step.pacing)


KIND = StepKind(UpdateThingsStep, run, plans=True, phase="api")
