"""`create_thing_group`: a static thing group that devices (or their templates) join."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase, with_retry
from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase

THING_GROUP = JournalKind(
    "thing_group", Phase.DELETE,
    lambda c, d: with_retry(lambda: c.iot.delete_thing_group(thingGroupName=d["name"])))


class CreateThingGroupStep(StepBase):
    """create-thing-group; a group that already exists is used as it is (and left in place)."""

    kind: Literal["create_thing_group"]
    group: str = Field(pattern=r"^[a-zA-Z0-9:_-]{1,128}$")
    attributes: dict[str, str] = Field(default_factory=dict)

    scalar_field: ClassVar[str | None] = "group"


async def run(ctx: RunContext, step: CreateThingGroupStep) -> None:
    props = {"thingGroupProperties": {"attributePayload": {"attributes": step.attributes}}} \
        if step.attributes else {}
    try:
        await api_call(ctx, "CreateThingGroup", step.group, thingGroupName=step.group, **props)
    except ApiError as e:
        if e.code != "ResourceAlreadyExistsException":
            raise
        return
    ctx.journal.record(THING_GROUP.name, name=step.group)


KIND = StepKind(CreateThingGroupStep, run, journals=(THING_GROUP,))
