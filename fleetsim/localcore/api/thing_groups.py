"""Static thing groups: hierarchy, attributes, membership."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.errors import already_exists, found, invalid
from fleetsim.localcore.api.operations import iot
from fleetsim.localcore.api.things import (
    check_expected_version,
    merged_attributes,
    require_thing,
    validate_attributes,
)
from fleetsim.localcore.store import ThingGroupRecord, ThingRecord

MAX_DEPTH = 7  # AWS: a thing group hierarchy has at most seven levels


def require_group(ctx: ApiContext, name: str) -> ThingGroupRecord:
    return found(ctx.store.get_thing_group(name), f"Thing group {name} cannot be found.")


def _name_from(p: dict[str, Any], name_key: str, arn_key: str) -> str:
    if p.get(name_key):
        return p[name_key]
    if p.get(arn_key):
        return p[arn_key].rsplit("/", 1)[-1]
    raise invalid(f"Either {name_key} or {arn_key} must be specified.")


def _group_refs(ctx: ApiContext, names: list[str]) -> list[dict[str, str]]:
    return [{"groupName": g, "groupArn": ctx.arn("thinggroup", g)} for g in names]


def _properties(group: ThingGroupRecord) -> dict[str, Any]:
    props: dict[str, Any] = {"attributePayload": {"attributes": group.attributes}}
    if group.description is not None:
        props["thingGroupDescription"] = group.description
    return props


@iot("CreateThingGroup")
def create_thing_group(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    name, parent_name = p["thingGroupName"], p.get("parentGroupName")
    props = p.get("thingGroupProperties") or {}
    description = props.get("thingGroupDescription")
    attributes = dict(validate_attributes(
        (props.get("attributePayload") or {}).get("attributes") or {},
        "thingGroupProperties.attributePayload.attributes"))
    arn = ctx.arn("thinggroup", name)
    existing = ctx.store.get_thing_group(name)
    if existing is not None:
        if (existing.parent_name, existing.description, existing.attributes) == \
                (parent_name, description, attributes):
            return {"thingGroupName": name, "thingGroupArn": arn,
                    "thingGroupId": existing.group_id}
        raise already_exists(f"Thing Group {name} already exists with different properties",
                             existing.group_id, arn)
    parent = None
    if parent_name:
        parent = require_group(ctx, parent_name)
        if len(ctx.store.ancestors(parent_name)) + 2 > MAX_DEPTH:
            raise invalid(f"Thing group {name} cannot be created: a thing group hierarchy can "
                          f"have at most {MAX_DEPTH} levels.")
    group = ctx.store.create_thing_group(name, parent_name, description, attributes)
    ctx.events.thing_group("CREATED", group)
    if parent is not None:
        ctx.events.thing_group_hierarchy("ADDED", parent, group)
    return {"thingGroupName": name, "thingGroupArn": arn, "thingGroupId": group.group_id}


@iot("DescribeThingGroup")
def describe_thing_group(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    group = require_group(ctx, p["thingGroupName"])
    metadata: dict[str, Any] = {"creationDate": group.created}
    if group.parent_name:
        metadata["parentGroupName"] = group.parent_name
        metadata["rootToParentThingGroups"] = [
            {"groupName": g, "groupArn": ctx.arn("thinggroup", g)}
            for g in reversed(ctx.store.ancestors(group.name))]
    return {"thingGroupName": group.name, "thingGroupId": group.group_id,
            "thingGroupArn": ctx.arn("thinggroup", group.name), "version": group.version,
            "thingGroupProperties": _properties(group), "thingGroupMetadata": metadata}


@iot("UpdateThingGroup")
def update_thing_group(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    group = require_group(ctx, p["thingGroupName"])
    check_expected_version(p, "thing group", group.name, group.version)
    props = p.get("thingGroupProperties") or {}
    description = props.get("thingGroupDescription", group.description)
    attributes = merged_attributes(group.attributes, props.get("attributePayload"))
    group = ctx.store.update_thing_group(group, description, attributes)
    ctx.events.thing_group("UPDATED", group)
    return {"version": group.version}


@iot("DeleteThingGroup")
def delete_thing_group(ctx: ApiContext, p: dict[str, Any]) -> None:
    group = ctx.store.get_thing_group(p["thingGroupName"])
    if group is None:
        return
    check_expected_version(p, "thing group", group.name, group.version)
    if ctx.store.child_groups(group.name):
        raise invalid(f"Cannot delete thing group : {group.name} when there are still child "
                      "groups attached to it")
    parent = ctx.store.get_thing_group(group.parent_name) if group.parent_name else None
    ctx.events.thing_group("DELETED", group)  # before: the payload names the ancestors
    ctx.store.delete_thing_group(group.name)
    if parent is not None:
        ctx.events.thing_group_hierarchy("REMOVED", parent, group)


@iot("ListThingGroups")
def list_thing_groups(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    parent = p.get("parentGroup")
    if parent:
        require_group(ctx, parent)
    recursive = p.get("recursive")
    page, last = ctx.store.list_thing_groups(
        paging.decode_int(p.get("nextToken")), paging.page_size(p), parent,
        p.get("namePrefixFilter"), recursive=bool(recursive) if parent else recursive is not False)
    return paging.listing("thingGroups", _group_refs(ctx, [g.name for g in page]), "nextToken",
                          paging.next_token(last))


def _group_and_thing(ctx: ApiContext, p: dict[str, Any]
                     ) -> tuple[ThingGroupRecord, ThingRecord]:
    """The group and thing a membership request names (by name or ARN)."""
    group = require_group(ctx, _name_from(p, "thingGroupName", "thingGroupArn"))
    return group, require_thing(ctx, _name_from(p, "thingName", "thingArn"))


def _add_member(ctx: ApiContext, group: ThingGroupRecord, thing: ThingRecord) -> None:
    membership_id = ctx.store.add_thing_to_group(group.name, thing.name)
    if membership_id is not None:
        ctx.events.thing_group_membership("ADDED", group, thing, membership_id)


def _remove_member(ctx: ApiContext, group: ThingGroupRecord, thing: ThingRecord) -> None:
    membership_id = ctx.store.remove_thing_from_group(group.name, thing.name)
    if membership_id is not None:
        ctx.events.thing_group_membership("REMOVED", group, thing, membership_id)


@iot("AddThingToThingGroup")
def add_thing_to_thing_group(ctx: ApiContext, p: dict[str, Any]) -> None:
    _add_member(ctx, *_group_and_thing(ctx, p))


@iot("RemoveThingFromThingGroup")
def remove_thing_from_thing_group(ctx: ApiContext, p: dict[str, Any]) -> None:
    _remove_member(ctx, *_group_and_thing(ctx, p))


@iot("UpdateThingGroupsForThing")
def update_thing_groups_for_thing(ctx: ApiContext, p: dict[str, Any]) -> None:
    thing = require_thing(ctx, p["thingName"])
    to_add = [require_group(ctx, n) for n in p.get("thingGroupsToAdd") or []]
    to_remove = [require_group(ctx, n) for n in p.get("thingGroupsToRemove") or []]
    for group in to_add:
        _add_member(ctx, group, thing)
    for group in to_remove:
        _remove_member(ctx, group, thing)


@iot("ListThingsInThingGroup")
def list_things_in_thing_group(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    group = require_group(ctx, p["thingGroupName"])
    groups = [group.name, *(ctx.store.descendants(group.name) if p.get("recursive") else [])]
    names, last = ctx.store.things_in_groups(groups, paging.decode_str(p.get("nextToken")),
                                             paging.page_size(p))
    return paging.listing("things", names, "nextToken", paging.next_token(last))


@iot("ListThingGroupsForThing")
def list_thing_groups_for_thing(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    thing = require_thing(ctx, p["thingName"])
    page, token = paging.slice_page(ctx.store.groups_of_thing(thing.name), p.get("nextToken"),
                                    paging.page_size(p))
    return paging.listing("thingGroups", _group_refs(ctx, page), "nextToken", token)
