"""HTTP handlers of the registry: things, thing types, thing groups, thing principals."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.operations import Call, Operations, needed
from fleetsim.localcore.errors import invalid
from fleetsim.localcore.features.registry.records import (
    ThingGroupRecord,
    ThingPrincipal,
    ThingRecord,
    ThingTypeRecord,
)
from fleetsim.localcore.features.registry.service import RegistryService
from fleetsim.localcore.scope import Scope

operations = Operations()
iot = operations.iot
R = Call[RegistryService]


# --- things ---------------------------------------------------------------------------------

def _thing_summary(scope: Scope, thing: ThingRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"thingName": thing.name, "thingArn": scope.arn("thing", thing.name),
                           "attributes": thing.attributes, "version": thing.version}
    if thing.type_name:
        out["thingTypeName"] = thing.type_name
    return out


@iot("CreateThing")
def create_thing(call: R, p: dict[str, Any]) -> dict[str, Any]:
    thing = call.service.create_thing(
        call.scope, p["thingName"], p.get("thingTypeName"),
        (p.get("attributePayload") or {}).get("attributes") or {}, p.get("billingGroupName"))
    return {"thingName": thing.name, "thingArn": call.scope.arn("thing", thing.name),
            "thingId": thing.thing_id}


@iot("DescribeThing")
def describe_thing(call: R, p: dict[str, Any]) -> dict[str, Any]:
    thing = call.service.require_thing(call.scope, p["thingName"])
    out = {"defaultClientId": thing.name, "thingName": thing.name, "thingId": thing.thing_id,
           "thingArn": call.scope.arn("thing", thing.name), "attributes": thing.attributes,
           "version": thing.version}
    if thing.type_name:
        out["thingTypeName"] = thing.type_name
    if thing.billing_group:
        out["billingGroupName"] = thing.billing_group
    return out


@iot("ListThings")
def list_things(call: R, p: dict[str, Any]) -> dict[str, Any]:
    things, last = call.service.list_things(
        call.scope, paging.decode_int(p.get("nextToken")), paging.page_size(p),
        p.get("attributeName"), p.get("attributeValue"), bool(p.get("usePrefixAttributeValue")),
        p.get("thingTypeName"))
    return paging.listing("things", [_thing_summary(call.scope, t) for t in things],
                          "nextToken", paging.next_token(last))


@iot("UpdateThing")
def update_thing(call: R, p: dict[str, Any]) -> None:
    call.service.update_thing(call.scope, p["thingName"],
                              expected_version=p.get("expectedVersion"),
                              thing_type_name=p.get("thingTypeName"),
                              remove_thing_type=bool(p.get("removeThingType")),
                              attribute_payload=p.get("attributePayload"))


@iot("DeleteThing")
def delete_thing(call: R, p: dict[str, Any]) -> None:
    call.service.delete_thing(call.scope, p["thingName"], p.get("expectedVersion"))


# --- thing types ----------------------------------------------------------------------------

def _type_properties(rec: ThingTypeRecord) -> dict[str, Any]:
    props: dict[str, Any] = {"searchableAttributes": rec.searchable_attributes}
    if rec.description is not None:
        props["thingTypeDescription"] = rec.description
    return props


def _type_metadata(rec: ThingTypeRecord) -> dict[str, Any]:
    meta: dict[str, Any] = {"deprecated": rec.deprecated, "creationDate": rec.created}
    if rec.deprecation_date is not None:
        meta["deprecationDate"] = rec.deprecation_date
    return meta


@iot("CreateThingType")
def create_thing_type(call: R, p: dict[str, Any]) -> dict[str, Any]:
    props = p.get("thingTypeProperties") or {}
    rec = call.service.create_thing_type(call.scope, p["thingTypeName"],
                                         props.get("thingTypeDescription"),
                                         list(props.get("searchableAttributes") or []))
    return {"thingTypeName": rec.name, "thingTypeArn": call.scope.arn("thingtype", rec.name),
            "thingTypeId": rec.type_id}


@iot("DescribeThingType")
def describe_thing_type(call: R, p: dict[str, Any]) -> dict[str, Any]:
    rec = call.service.require_thing_type(call.scope, p["thingTypeName"])
    return {"thingTypeName": rec.name, "thingTypeId": rec.type_id,
            "thingTypeArn": call.scope.arn("thingtype", rec.name),
            "thingTypeProperties": _type_properties(rec),
            "thingTypeMetadata": _type_metadata(rec)}


@iot("ListThingTypes")
def list_thing_types(call: R, p: dict[str, Any]) -> dict[str, Any]:
    page, last = call.service.list_thing_types(call.scope, paging.decode_str(p.get("nextToken")),
                                               paging.page_size(p), p.get("thingTypeName"))
    return paging.listing("thingTypes", [
        {"thingTypeName": r.name, "thingTypeArn": call.scope.arn("thingtype", r.name),
         "thingTypeProperties": _type_properties(r), "thingTypeMetadata": _type_metadata(r)}
        for r in page], "nextToken", paging.next_token(last))


@iot("DeprecateThingType")
def deprecate_thing_type(call: R, p: dict[str, Any]) -> None:
    call.service.deprecate_thing_type(call.scope, p["thingTypeName"], not p.get("undoDeprecate"))


@iot("UpdateThingType")
def update_thing_type(call: R, p: dict[str, Any]) -> None:
    call.service.update_thing_type(call.scope, p["thingTypeName"],
                                   p.get("thingTypeProperties") or {})


@iot("DeleteThingType")
def delete_thing_type(call: R, p: dict[str, Any]) -> None:
    call.service.delete_thing_type(call.scope, p["thingTypeName"])


# --- thing groups ---------------------------------------------------------------------------

def _name_from(p: dict[str, Any], name_key: str, arn_key: str) -> str:
    if p.get(name_key):
        return str(p[name_key])
    if p.get(arn_key):
        return str(p[arn_key]).rsplit("/", 1)[-1]
    raise invalid(f"Either {name_key} or {arn_key} must be specified.")


def _group_refs(scope: Scope, names: list[str]) -> list[dict[str, str]]:
    return [{"groupName": g, "groupArn": scope.arn("thinggroup", g)} for g in names]


def _group_properties(group: ThingGroupRecord) -> dict[str, Any]:
    props: dict[str, Any] = {"attributePayload": {"attributes": group.attributes}}
    if group.description is not None:
        props["thingGroupDescription"] = group.description
    return props


@iot("CreateThingGroup")
def create_thing_group(call: R, p: dict[str, Any]) -> dict[str, Any]:
    props = p.get("thingGroupProperties") or {}
    group = call.service.create_thing_group(
        call.scope, p["thingGroupName"], p.get("parentGroupName"),
        props.get("thingGroupDescription"),
        (props.get("attributePayload") or {}).get("attributes") or {})
    return {"thingGroupName": group.name, "thingGroupArn": call.scope.arn("thinggroup", group.name),
            "thingGroupId": group.group_id}


@iot("DescribeThingGroup")
def describe_thing_group(call: R, p: dict[str, Any]) -> dict[str, Any]:
    group = call.service.require_group(call.scope, p["thingGroupName"])
    metadata: dict[str, Any] = {"creationDate": group.created}
    if group.parent_name:
        metadata["parentGroupName"] = group.parent_name
        metadata["rootToParentThingGroups"] = _group_refs(
            call.scope, list(reversed(call.service.ancestors(call.scope, group.name))))
    out = {"thingGroupName": group.name, "thingGroupId": group.group_id,
           "thingGroupArn": call.scope.arn("thinggroup", group.name), "version": group.version,
           "thingGroupProperties": _group_properties(group), "thingGroupMetadata": metadata}
    if group.dynamic:
        out |= {"indexName": DYNAMIC_INDEX, "queryString": group.query_string,
                "queryVersion": QUERY_VERSION, "status": "ACTIVE"}
    return out


# CreateDynamicThingGroup: "Currently one index is supported: AWS_Things"; "Currently one
# query version is supported: 2017-09-30".
DYNAMIC_INDEX, QUERY_VERSION = "AWS_Things", "2017-09-30"


def _dynamic_index(p: dict[str, Any]) -> None:
    if p.get("indexName", DYNAMIC_INDEX) != DYNAMIC_INDEX:
        raise invalid(f"indexName {p['indexName']} is not supported: a dynamic thing group "
                      f"searches {DYNAMIC_INDEX}.")
    if p.get("queryVersion", QUERY_VERSION) != QUERY_VERSION:
        raise invalid(f"queryVersion {p['queryVersion']} is not supported: use "
                      f"{QUERY_VERSION}.")


@iot("CreateDynamicThingGroup")
def create_dynamic_thing_group(call: R, p: dict[str, Any]) -> dict[str, Any]:
    _dynamic_index(p)
    props = p.get("thingGroupProperties") or {}
    group = call.service.create_dynamic_thing_group(
        call.scope, p["thingGroupName"], p["queryString"], props.get("thingGroupDescription"),
        (props.get("attributePayload") or {}).get("attributes") or {})
    return {"thingGroupName": group.name, "thingGroupArn": call.scope.arn("thinggroup", group.name),
            "thingGroupId": group.group_id, "indexName": DYNAMIC_INDEX,
            "queryString": group.query_string, "queryVersion": QUERY_VERSION}


@iot("UpdateDynamicThingGroup")
def update_dynamic_thing_group(call: R, p: dict[str, Any]) -> dict[str, Any]:
    _dynamic_index(p)
    group = call.service.update_dynamic_thing_group(
        call.scope, p["thingGroupName"], p.get("thingGroupProperties") or {},
        p.get("queryString"), p.get("expectedVersion"))
    return {"version": group.version}


@iot("DeleteDynamicThingGroup")
def delete_dynamic_thing_group(call: R, p: dict[str, Any]) -> None:
    group = call.service.get_group(call.scope, p["thingGroupName"])
    if group is not None and not group.dynamic:
        raise invalid(f"Thing group {group.name} is not a dynamic thing group: delete it with "
                      "delete-thing-group.")
    call.service.delete_thing_group(call.scope, p["thingGroupName"], p.get("expectedVersion"))


@iot("UpdateThingGroup")
def update_thing_group(call: R, p: dict[str, Any]) -> dict[str, Any]:
    group = call.service.update_thing_group(call.scope, p["thingGroupName"],
                                            p.get("thingGroupProperties") or {},
                                            p.get("expectedVersion"))
    return {"version": group.version}


@iot("DeleteThingGroup")
def delete_thing_group(call: R, p: dict[str, Any]) -> None:
    group = call.service.get_group(call.scope, p["thingGroupName"])
    if group is not None and group.dynamic:
        # What AWS IoT answers (its dynamic groups go with DeleteDynamicThingGroup).
        raise invalid("This operation does not support dynamic thing groups. Thing group "
                      f"arn: {call.scope.arn('thinggroup', group.name)}")
    call.service.delete_thing_group(call.scope, p["thingGroupName"], p.get("expectedVersion"))


@iot("ListThingGroups")
def list_thing_groups(call: R, p: dict[str, Any]) -> dict[str, Any]:
    # recursive defaults to true with or without parentGroup ("ListThingGroups", AWS IoT API
    # reference: "If true, return child groups as well"); false lists only the direct children
    # of parentGroup, or only the root groups without it.
    page, last = call.service.list_thing_groups(
        call.scope, paging.decode_int(p.get("nextToken")), paging.page_size(p),
        p.get("parentGroup"), p.get("namePrefixFilter"),
        recursive=p.get("recursive") is not False)
    return paging.listing("thingGroups", _group_refs(call.scope, [g.name for g in page]),
                          "nextToken", paging.next_token(last))


def _group_and_thing(call: R, p: dict[str, Any]) -> tuple[ThingGroupRecord, ThingRecord]:
    """The group and thing a membership request names (by name or ARN)."""
    group = call.service.require_group(call.scope,
                                       _name_from(p, "thingGroupName", "thingGroupArn"))
    return group, call.service.require_thing(call.scope, _name_from(p, "thingName", "thingArn"))


@iot("AddThingToThingGroup")
def add_thing_to_thing_group(call: R, p: dict[str, Any]) -> None:
    group, thing = _group_and_thing(call, p)
    call.service.add_thing_to_group(call.scope, call.service.require_static(group), thing)


@iot("RemoveThingFromThingGroup")
def remove_thing_from_thing_group(call: R, p: dict[str, Any]) -> None:
    group, thing = _group_and_thing(call, p)
    call.service.remove_thing_from_group(call.scope, call.service.require_static(group), thing)


@iot("UpdateThingGroupsForThing")
def update_thing_groups_for_thing(call: R, p: dict[str, Any]) -> None:
    call.service.update_thing_groups_for_thing(call.scope, needed(p, "thingName"),
                                               p.get("thingGroupsToAdd") or [],
                                               p.get("thingGroupsToRemove") or [])


@iot("ListThingsInThingGroup")
def list_things_in_thing_group(call: R, p: dict[str, Any]) -> dict[str, Any]:
    names, last = call.service.things_in_group(call.scope, p["thingGroupName"],
                                               bool(p.get("recursive")),
                                               paging.decode_str(p.get("nextToken")),
                                               paging.page_size(p))
    return paging.listing("things", names, "nextToken", paging.next_token(last))


@iot("ListThingGroupsForThing")
def list_thing_groups_for_thing(call: R, p: dict[str, Any]) -> dict[str, Any]:
    thing = call.service.require_thing(call.scope, p["thingName"])
    page, token = paging.slice_page(call.service.groups_of_thing(call.scope, thing.name),
                                    p.get("nextToken"), paging.page_size(p))
    return paging.listing("thingGroups", _group_refs(call.scope, page), "nextToken", token)


# --- thing principals -----------------------------------------------------------------------

@iot("AttachThingPrincipal")
def attach_thing_principal(call: R, p: dict[str, Any]) -> None:
    call.service.attach_thing_principal(call.scope, p["thingName"], p["principal"],
                                        p.get("thingPrincipalType"))


@iot("DetachThingPrincipal")
def detach_thing_principal(call: R, p: dict[str, Any]) -> None:
    call.service.detach_thing_principal(call.scope, p["thingName"], p["principal"])


def _attachments_page(p: dict[str, Any], rows: list[ThingPrincipal]
                      ) -> tuple[list[ThingPrincipal], str | None]:
    wanted = p.get("thingPrincipalType")
    rows = [r for r in rows if not wanted or r.principal_type == wanted]
    return paging.slice_page(rows, p.get("nextToken"), paging.page_size(p, default=25))


def _principals(call: R, p: dict[str, Any]) -> tuple[list[ThingPrincipal], str | None]:
    thing = call.service.require_thing(call.scope, p["thingName"])
    return _attachments_page(p, call.service.principals_of_thing(call.scope, thing.name))


def _things(call: R, p: dict[str, Any]) -> tuple[list[ThingPrincipal], str | None]:
    call.service.require_principal(call.scope, p["principal"])
    return _attachments_page(p, call.service.things_of_principal(call.scope, p["principal"]))


@iot("ListThingPrincipals")
def list_thing_principals(call: R, p: dict[str, Any]) -> dict[str, Any]:
    page, token = _principals(call, {**p, "thingPrincipalType": None})
    return paging.listing("principals", [t.principal for t in page], "nextToken", token)


@iot("ListThingPrincipalsV2")
def list_thing_principals_v2(call: R, p: dict[str, Any]) -> dict[str, Any]:
    page, token = _principals(call, p)
    return paging.listing("thingPrincipalObjects", [
        {"principal": t.principal, "thingPrincipalType": t.principal_type} for t in page],
        "nextToken", token)


@iot("ListPrincipalThings")
def list_principal_things(call: R, p: dict[str, Any]) -> dict[str, Any]:
    page, token = _things(call, {**p, "thingPrincipalType": None})
    return paging.listing("things", [t.thing_name for t in page], "nextToken", token)


@iot("ListPrincipalThingsV2")
def list_principal_things_v2(call: R, p: dict[str, Any]) -> dict[str, Any]:
    page, token = _things(call, p)
    return paging.listing("principalThingObjects", [
        {"thingName": t.thing_name, "thingPrincipalType": t.principal_type} for t in page],
        "nextToken", token)
