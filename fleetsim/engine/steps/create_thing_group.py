"""`create_thing_group`: a static thing group that devices (or their templates) join,
optionally the child of another (`parent`) and with IoT policies attached to it (`policies`):
AWS IoT applies a group's policies to its things and to the things of its child groups
(developer guide, "Static thing groups": "thing group policy inheritance")."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from botocore.exceptions import ClientError
from pydantic import Field

from fleetsim.control.cleanup import GONE, JournalKind, Phase, error_code, with_retry
from fleetsim.control.clients import AwsClients
from fleetsim.engine.context import RunContext
from fleetsim.engine.describe import describe, policy_targets
from fleetsim.engine.fanout import api_call
from fleetsim.engine.provisioning import POLICY_ATTACHMENT, journaled
from fleetsim.engine.reconcile import attribute_items, value_item
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase


async def _depths(clients: AwsClients, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group with its depth (DescribeThingGroup's `rootToParentThingGroups`): clean-up
    deletes children first, as AWS refuses to delete a group that still has child groups."""
    out = []
    for d in groups:
        try:
            described = await clients.iot.describe_thing_group(thingGroupName=d["name"])
        except ClientError as e:
            if error_code(e) not in GONE:
                raise
            described = {}
        meta = described.get("thingGroupMetadata", {})
        out.append({**d, "depth": len(meta.get("rootToParentThingGroups", []))})
    return out


THING_GROUP = JournalKind(
    "thing_group", Phase.DELETE,
    lambda c, d: with_retry(lambda: c.iot.delete_thing_group(thingGroupName=d["name"])),
    resolve=_depths, wave_key="depth")


# A dynamic thing group ("Dynamic thing groups", AWS IoT developer guide) is listed by
# ListThingGroups with the static ones but deleted by DeleteDynamicThingGroup only (AWS
# answers DeleteThingGroup "This operation does not support dynamic thing groups"). No step
# makes one: `cleanup --prefix` finds them (control/prefix.py).
DYNAMIC_THING_GROUP = JournalKind(
    "dynamic_thing_group", Phase.DELETE,
    lambda c, d: c.iot.delete_dynamic_thing_group(thingGroupName=d["name"]))


class CreateThingGroupStep(StepBase):
    """create-thing-group; a group that already exists is reused (and left in place)."""

    kind: Literal["create_thing_group"]
    group: str = Field(pattern=r"^[a-zA-Z0-9:_-]{1,128}$")
    attributes: dict[str, str] = Field(default_factory=dict)
    parent: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9:_-]{1,128}$")
    policies: list[str] = Field(default_factory=list)  # attached to the group

    scalar_field: ClassVar[str | None] = "group"


async def run(ctx: RunContext, step: CreateThingGroupStep) -> None:
    """The group as declared: absent, created (journaled); there, reused, its attributes'
    drift fixed with UpdateThingGroup (which merges them) and another parent reported (AWS
    sets a group's parent when the group is created only: not fixed). Each of its policies
    is looked for among the policy's targets first: attached, reused; not, created for a new
    group, drift for an existing one (`policy P: not attached to thing group G`)."""
    ledger = ctx.reconcile
    have = await describe(ctx, "DescribeThingGroup", step.group, thingGroupName=step.group)
    fresh = have is None
    if have is None:
        ledger.create(THING_GROUP.name, step.group)
        arn = f"thinggroup/{step.group}"  # planning: the ARN the group would get
        if not ledger.plan:
            arn = await _create(ctx, step)
    else:
        arn = have["thingGroupArn"]
        await _drift(ctx, step, have)
    for policy in step.policies:
        if not fresh and arn in await policy_targets(ctx, policy):
            ledger.reuse(POLICY_ATTACHMENT.name, f"{policy} → {step.group}")
            continue
        if fresh:
            ledger.create(POLICY_ATTACHMENT.name, f"{policy} → {step.group}")
        else:
            ledger.drifted(POLICY_ATTACHMENT.name, policy,
                           [f"not attached to thing group {step.group}"])
        if not ledger.plan:
            await journaled(ctx.journal, POLICY_ATTACHMENT.name,
                            {"policy": policy, "target": arn},
                            api_call(ctx, "AttachPolicy", policy, policyName=policy,
                                     target=arn))


async def _create(ctx: RunContext, step: CreateThingGroupStep) -> str:
    props: dict[str, Any] = {}
    if step.attributes:
        props["thingGroupProperties"] = {"attributePayload": {"attributes": step.attributes}}
    if step.parent is not None:
        props["parentGroupName"] = step.parent
    ctx.journal.record(THING_GROUP.name, name=step.group)
    created = await api_call(ctx, "CreateThingGroup", step.group, thingGroupName=step.group,
                             **props)
    return str(created["thingGroupArn"])


async def _drift(ctx: RunContext, step: CreateThingGroupStep, have: dict[str, Any]) -> None:
    """Report (and, unless planning, fix) how an existing group differs from the step."""
    ledger = ctx.reconcile
    props = have.get("thingGroupProperties") or {}
    attributes = (props.get("attributePayload") or {}).get("attributes") or {}
    items = attribute_items(step.attributes, attributes)
    parent = (have.get("thingGroupMetadata") or {}).get("parentGroupName")
    parent_items = value_item("parent", parent, step.parent) if step.parent else []
    if not items and not parent_items:
        ledger.reuse(THING_GROUP.name, step.group)
        return
    ledger.drifted(THING_GROUP.name, step.group, parent_items, fixable=False)
    ledger.drifted(THING_GROUP.name, step.group, items)
    if items and not ledger.plan:
        await api_call(ctx, "UpdateThingGroup", step.group, thingGroupName=step.group,
                       thingGroupProperties={"attributePayload": {
                           "attributes": step.attributes, "merge": True}})


KIND = StepKind(CreateThingGroupStep, run,
                journals=(THING_GROUP, DYNAMIC_THING_GROUP, POLICY_ATTACHMENT), plans=True,
                phase="api")
