"""`create_thing_group`: a static thing group that devices (or their templates) join,
optionally the child of another (`parent`) and with IoT policies attached to it (`policies`):
AWS IoT applies a group's policies to its things and to the things of its child groups
(developer guide, "Static thing groups": "thing group policy inheritance")."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase, with_retry
from fleetsim.control.errors import ApiError
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.provisioning import POLICY_ATTACHMENT, journaled
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
    parent: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9:_-]{1,128}$")
    policies: list[str] = Field(default_factory=list)  # attached to the group

    scalar_field: ClassVar[str | None] = "group"


async def run(ctx: RunContext, step: CreateThingGroupStep) -> None:
    props: dict[str, Any] = {}
    if step.attributes:
        props["thingGroupProperties"] = {"attributePayload": {"attributes": step.attributes}}
    if step.parent is not None:
        props["parentGroupName"] = step.parent
    try:
        created = await api_call(ctx, "CreateThingGroup", step.group,
                                 thingGroupName=step.group, **props)
        arn = created["thingGroupArn"]
        ctx.journal.record(THING_GROUP.name, name=step.group)
    except ApiError as e:
        if e.code != "ResourceAlreadyExistsException":
            raise
        described = await api_call(ctx, "DescribeThingGroup", step.group,
                                   thingGroupName=step.group)
        arn = described["thingGroupArn"]
    for policy in step.policies:
        await journaled(ctx.journal, POLICY_ATTACHMENT.name, {"policy": policy, "target": arn},
                        api_call(ctx, "AttachPolicy", policy, policyName=policy, target=arn))


KIND = StepKind(CreateThingGroupStep, run, journals=(THING_GROUP, POLICY_ATTACHMENT))
