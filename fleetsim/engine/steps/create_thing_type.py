"""`create_thing_type`: a thing type that devices (or their templates) are given.

AWS deletes a thing type only five minutes after it was deprecated ("Deprecate a thing type"
in the AWS IoT developer guide), longer than a run lasts: clean-up deprecates the types a run
made, and a later run that creates the same type un-deprecates and reuses it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase

THING_TYPE = JournalKind(
    "thing_type", Phase.DELETE,
    lambda c, d: c.iot.deprecate_thing_type(thingTypeName=d["name"], undoDeprecate=False))


class CreateThingTypeStep(StepBase):
    kind: Literal["create_thing_type"]
    thing_type: str = Field(pattern=r"^[a-zA-Z0-9:_-]{1,128}$")
    searchable_attributes: list[str] = Field(default_factory=list, max_length=3)

    scalar_field: ClassVar[str | None] = "thing_type"


async def run(ctx: RunContext, step: CreateThingTypeStep) -> None:
    """Absent, created; there and active, reused (someone's type, in use: left as it is);
    deprecated (an earlier run's clean-up, within AWS's five minutes before deletion), made
    again by undoing the deprecation: counted as created, and journaled, so this run's
    clean-up deprecates it again."""
    name, ledger = step.thing_type, ctx.reconcile
    props: dict[str, Any] = {"thingTypeProperties": {
        "searchableAttributes": step.searchable_attributes}} if step.searchable_attributes \
        else {}
    listed = await api_call(ctx, "ListThingTypes", name, thingTypeName=name)
    existing = [t for t in listed.get("thingTypes", []) if t["thingTypeName"] == name]
    if not existing:
        ledger.create(THING_TYPE.name, name)
        if ledger.plan:
            return
        await api_call(ctx, "CreateThingType", name, thingTypeName=name, **props)
    elif existing[0].get("thingTypeMetadata", {}).get("deprecated"):
        ledger.create(THING_TYPE.name, name)
        if ledger.plan:
            return
        await api_call(ctx, "DeprecateThingType", name, thingTypeName=name,
                       undoDeprecate=True)
    else:
        ledger.reuse(THING_TYPE.name, name)
        return
    ctx.journal.record(THING_TYPE.name, name=name)


KIND = StepKind(CreateThingTypeStep, run, journals=(THING_TYPE,), plans=True)
