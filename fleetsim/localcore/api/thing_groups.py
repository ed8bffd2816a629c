"""Static thing groups: hierarchy, attributes, membership."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.errors import already_exists, invalid, not_found, version_conflict
from fleetsim.localcore.api.operations import iot
from fleetsim.localcore.api.things import (
    merged_attributes,
    require_thing,
    validate_attributes,
)
from fleetsim.localcore.store import ThingGroupRecord

MAX_DEPTH = 7  # AWS: a thing group hierarchy has at most seven levels


def require_group(ctx: ApiContext, name: str) -> ThingGroupRecord:
    group = ctx.store.get_thing_group(name)
    if group is None:
        raise not_found(f"Thing group {name} cannot be found.")
    return group


def _name_from(p: dict[str, Any], name_key: str, arn_key: str) -> str:
    if p.get(name_key):
        return p[name_key]
    if p.get(arn_key):
        return p[arn_key].rsplit("/", 1)[-1]
    raise invalid(f"Either {name_key} or {arn_key} must be specified.")


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
    expected = p.get("expectedVersion")
    if expected is not None and expected != group.version:
        raise version_conflict(f"The version for thing group {group.name} does not match the "
                               "expected version.")
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
    expected = p.get("expectedVersion")
    if expected is not None and expected != group.version:
        raise version_conflict(f"The version for thing group {group.name} does not match the "
                               "expected version.")
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
    out: dict[str, Any] = {"thingGroups": [
        {"groupName": g.name, "groupArn": ctx.arn("thinggroup", g.name)} for g in page]}
    if last is not None:
        out["nextToken"] = paging.encode(last)
    return out


@iot("AddThingToThingGroup")
def add_thing_to_thing_group(ctx: ApiContext, p: dict[str, Any]) -> None:
    group = require_group(ctx, _name_from(p, "thingGroupName", "thingGroupArn"))
    thing = require_thing(ctx, _name_from(p, "thingName", "thingArn"))
    membership_id = ctx.store.add_thing_to_group(group.name, thing.name)
    if membership_id is not None:
        ctx.events.thing_group_membership("ADDED", group, thing, membership_id)


@iot("RemoveThingFromThingGroup")
def remove_thing_from_thing_group(ctx: ApiContext, p: dict[str, Any]) -> None:
    group = require_group(ctx, _name_from(p, "thingGroupName", "thingGroupArn"))
    thing = require_thing(ctx, _name_from(p, "thingName", "thingArn"))
    membership_id = ctx.store.remove_thing_from_group(group.name, thing.name)
    if membership_id is not None:
        ctx.events.thing_group_membership("REMOVED", group, thing, membership_id)


@iot("UpdateThingGroupsForThing")
def update_thing_groups_for_thing(ctx: ApiContext, p: dict[str, Any]) -> None:
    thing = require_thing(ctx, p["thingName"])
    to_add = [require_group(ctx, n) for n in p.get("thingGroupsToAdd") or []]
    to_remove = [require_group(ctx, n) for n in p.get("thingGroupsToRemove") or []]
    for group in to_add:
        membership_id = ctx.store.add_thing_to_group(group.name, thing.name)
        if membership_id is not None:
            ctx.events.thing_group_membership("ADDED", group, thing, membership_id)
    for group in to_remove:
        membership_id = ctx.store.remove_thing_from_group(group.name, thing.name)
        if membership_id is not None:
            ctx.events.thing_group_membership("REMOVED", group, thing, membership_id)


@iot("ListThingsInThingGroup")
def list_things_in_thing_group(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    group = require_group(ctx, p["thingGroupName"])
    groups = [group.name, *(ctx.store.descendants(group.name) if p.get("recursive") else [])]
    names, last = ctx.store.things_in_groups(groups, paging.decode_str(p.get("nextToken")),
                                             paging.page_size(p))
    out: dict[str, Any] = {"things": names}
    if last is not None:
        out["nextToken"] = paging.encode(last)
    return out


@iot("ListThingGroupsForThing")
def list_thing_groups_for_thing(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    thing = require_thing(ctx, p["thingName"])
    page, token = paging.slice_page(ctx.store.groups_of_thing(thing.name), p.get("nextToken"),
                                    paging.page_size(p))
    out: dict[str, Any] = {"thingGroups": [
        {"groupName": g, "groupArn": ctx.arn("thinggroup", g)} for g in page]}
    if token:
        out["nextToken"] = token
    return out
