"""Thing types: create, describe, list, deprecate/undeprecate, delete (after deprecation)."""

from __future__ import annotations

import time
from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.errors import already_exists, invalid
from fleetsim.localcore.api.operations import iot
from fleetsim.localcore.api.things import require_thing_type
from fleetsim.localcore.store import ThingTypeRecord


def _properties(rec: ThingTypeRecord) -> dict[str, Any]:
    props: dict[str, Any] = {"searchableAttributes": rec.searchable_attributes}
    if rec.description is not None:
        props["thingTypeDescription"] = rec.description
    return props


def _metadata(rec: ThingTypeRecord) -> dict[str, Any]:
    meta: dict[str, Any] = {"deprecated": rec.deprecated, "creationDate": rec.created}
    if rec.deprecation_date is not None:
        meta["deprecationDate"] = rec.deprecation_date
    return meta


@iot("CreateThingType")
def create_thing_type(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    name = p["thingTypeName"]
    props = p.get("thingTypeProperties") or {}
    description = props.get("thingTypeDescription")
    searchable = list(props.get("searchableAttributes") or [])
    arn = ctx.arn("thingtype", name)
    existing = ctx.store.get_thing_type(name)
    if existing is not None:
        if existing.description == description and existing.searchable_attributes == searchable:
            return {"thingTypeName": name, "thingTypeArn": arn,
                    "thingTypeId": existing.type_id}
        raise already_exists(f"Thing Type {name} already exists with different properties",
                             existing.type_id, arn)
    rec = ctx.store.create_thing_type(name, description, searchable)
    ctx.events.thing_type("CREATED", rec)
    return {"thingTypeName": name, "thingTypeArn": arn, "thingTypeId": rec.type_id}


@iot("DescribeThingType")
def describe_thing_type(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    rec = require_thing_type(ctx, p["thingTypeName"])
    return {"thingTypeName": rec.name, "thingTypeId": rec.type_id,
            "thingTypeArn": ctx.arn("thingtype", rec.name),
            "thingTypeProperties": _properties(rec), "thingTypeMetadata": _metadata(rec)}


@iot("ListThingTypes")
def list_thing_types(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    page, last = ctx.store.list_thing_types(paging.decode_str(p.get("nextToken")),
                                            paging.page_size(p), p.get("thingTypeName"))
    return paging.listing("thingTypes", [
        {"thingTypeName": r.name, "thingTypeArn": ctx.arn("thingtype", r.name),
         "thingTypeProperties": _properties(r), "thingTypeMetadata": _metadata(r)}
        for r in page], "nextToken", paging.next_token(last))


@iot("DeprecateThingType")
def deprecate_thing_type(ctx: ApiContext, p: dict[str, Any]) -> None:
    rec = require_thing_type(ctx, p["thingTypeName"])
    deprecated = not p.get("undoDeprecate")
    if rec.deprecated == deprecated:
        return
    rec = ctx.store.set_thing_type_deprecated(rec, deprecated)
    ctx.events.thing_type("UPDATED", rec)


@iot("UpdateThingType")
def update_thing_type(ctx: ApiContext, p: dict[str, Any]) -> None:
    rec = require_thing_type(ctx, p["thingTypeName"])
    props = p.get("thingTypeProperties") or {}
    rec = ctx.store.update_thing_type(
        rec, props.get("thingTypeDescription", rec.description),
        list(props.get("searchableAttributes", rec.searchable_attributes)))
    ctx.events.thing_type("UPDATED", rec)


@iot("DeleteThingType")
def delete_thing_type(ctx: ApiContext, p: dict[str, Any]) -> None:
    rec = require_thing_type(ctx, p["thingTypeName"])
    delay = ctx.thing_type_delete_delay_s
    if not rec.deprecated or rec.deprecation_date is None or \
            time.time() - rec.deprecation_date < delay:
        raise invalid(f"Thing type {rec.name} can be deleted only after it has been deprecated "
                      f"for {delay:g} seconds.")
    if ctx.store.count_things_of_type(rec.name):
        raise invalid(f"Thing type {rec.name} cannot be deleted while things are associated "
                      "with it.")
    ctx.store.delete_thing_type(rec.name)
    ctx.events.thing_type("DELETED", rec)
