"""`create_thing_type`: a thing type that devices (or their templates) are given.

AWS deletes a thing type only once it has been deprecated for five minutes ("Delete a thing
type" in the AWS IoT developer guide: "Before you can delete a thing type, wait for five
minutes after you deprecate it") and no thing is of the type: clean-up deprecates the type,
then (in a phase after the things are deleted) deletes it once AWS lets it, waiting for it, or
with `fleetsim cleanup --no-wait` saying when it can be deleted. A later run that creates a
deprecated type un-deprecates and reuses it."""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from botocore.exceptions import ClientError
from pydantic import Field

from fleetsim.control.cleanup import JournalKind, NotYet, Phase, error_code
from fleetsim.control.clients import AwsClients
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase

DEPRECATION_WAIT_S = 300.0  # "wait for five minutes after you deprecate it"


async def _deprecate_then_delete(clients: AwsClients, d: dict[str, Any]) -> None:
    """Deprecated (if it is not), then deleted; refused while AWS's wait runs (or while a
    thing is of the type): `NotYet`, until five minutes after its deprecation date."""
    iot, name = clients.iot, d["name"]
    meta = (await iot.describe_thing_type(thingTypeName=name)).get("thingTypeMetadata", {})
    since = meta.get("deprecationDate")
    if not meta.get("deprecated") or since is None:
        await iot.deprecate_thing_type(thingTypeName=name, undoDeprecate=False)
        since_s = time.time()
    else:
        since_s = since.timestamp() if hasattr(since, "timestamp") else float(since)
    try:
        await iot.delete_thing_type(thingTypeName=name)
    except ClientError as e:
        if error_code(e) != "InvalidRequestException":
            raise
        raise NotYet(since_s + DEPRECATION_WAIT_S,
                     str(e.response.get("Error", {}).get("Message", e))) from e


THING_TYPE = JournalKind("thing_type", Phase.AFTER_DELETE, _deprecate_then_delete)


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


KIND = StepKind(CreateThingTypeStep, run, journals=(THING_TYPE,), plans=True, phase="api")
