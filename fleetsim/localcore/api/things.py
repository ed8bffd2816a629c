"""Things and thing principals."""

from __future__ import annotations

import re
from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.errors import (
    already_exists,
    found,
    invalid,
    not_found,
    version_conflict,
)
from fleetsim.localcore.api.operations import iot
from fleetsim.localcore.store import ThingRecord, ThingTypeRecord

# botocore's AttributeName / AttributeValue shapes (the model's own patterns).
_ATTR_NAME = (re.compile(r"[a-zA-Z0-9_.,@/:#-]+"), 128)
_ATTR_VALUE = (re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]*"), 800)


def validate_attributes(attributes: Any, where: str) -> dict[str, str]:
    """The checks AWS applies to an attribute map, with its validation message format."""
    if not isinstance(attributes, dict):
        raise invalid(f"1 validation error detected: Value at '{where}' failed to satisfy "
                      "constraint: Member must be a map")
    problems = []
    for key, value in attributes.items():
        for item, (pattern, limit), kind in ((key, _ATTR_NAME, "keys"),
                                             (value, _ATTR_VALUE, "value")):
            if not isinstance(item, str):
                problems.append(f"Value '{item}' at '{where}' failed to satisfy constraint: "
                                f"Map {kind} must be strings")
            elif len(item) > limit:
                problems.append(f"Value '{item}' at '{where}' failed to satisfy constraint: "
                                f"Map {kind} must satisfy constraint: [Member must have length "
                                f"less than or equal to {limit}]")
            elif not pattern.fullmatch(item):
                problems.append(f"Value '{item}' at '{where}' failed to satisfy constraint: "
                                f"Map {kind} must satisfy constraint: [Member must satisfy "
                                f"regular expression pattern: {pattern.pattern}]")
    if problems:
        n = len(problems)
        raise invalid(f"{n} validation error{'s' if n > 1 else ''} detected: "
                      + "; ".join(problems))
    return attributes


def require_thing(ctx: ApiContext, name: str) -> ThingRecord:
    return found(ctx.store.get_thing(name), f"Thing {name} cannot be found.")


def require_thing_type(ctx: ApiContext, name: str) -> ThingTypeRecord:
    return found(ctx.store.get_thing_type(name), f"Thing Type {name} cannot be found.")


def require_usable_type(ctx: ApiContext, type_name: str) -> None:
    if require_thing_type(ctx, type_name).deprecated:
        raise invalid(f"Can not create new thing with deprecated thing type: {type_name}")


def check_expected_version(p: dict[str, Any], kind: str, name: str, version: int) -> None:
    """VersionConflictException if the request's expectedVersion (if any) is not `version`."""
    expected = p.get("expectedVersion")
    if expected is not None and expected != version:
        raise version_conflict(f"The version for {kind} {name} does not match the expected "
                               "version.")


def merged_attributes(current: dict[str, str], payload: dict[str, Any] | None
                      ) -> dict[str, str]:
    """AttributePayload semantics: without `merge` the attributes replace the stored ones;
    with `merge` they are merged in. An empty value removes the attribute either way."""
    if payload is None:
        return dict(current)
    given = validate_attributes(payload.get("attributes") or {}, "attributePayload.attributes")
    base = dict(current) if payload.get("merge") else {}
    for key, value in given.items():
        if value == "" or value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def thing_summary(ctx: ApiContext, thing: ThingRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"thingName": thing.name, "thingArn": ctx.arn("thing", thing.name),
                           "attributes": thing.attributes, "version": thing.version}
    if thing.type_name:
        out["thingTypeName"] = thing.type_name
    return out


@iot("CreateThing")
def create_thing(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    name = p["thingName"]
    type_name = p.get("thingTypeName")
    attributes = dict(validate_attributes(
        (p.get("attributePayload") or {}).get("attributes") or {}, "attributePayload.attributes"))
    arn = ctx.arn("thing", name)
    existing = ctx.store.get_thing(name)
    if existing is not None:
        if existing.type_name == type_name and existing.attributes == attributes and \
                existing.billing_group == p.get("billingGroupName"):
            return {"thingName": name, "thingArn": arn, "thingId": existing.thing_id}
        raise already_exists(f"Thing {name} already exists in account with different "
                             "attributes", existing.thing_id, arn)
    if type_name:
        require_usable_type(ctx, type_name)
    thing = ctx.store.create_thing(name, type_name, attributes, p.get("billingGroupName"))
    ctx.events.thing("CREATED", thing)
    if type_name:
        ctx.events.thing_type_association("CREATED", thing, type_name)
    return {"thingName": name, "thingArn": arn, "thingId": thing.thing_id}


@iot("DescribeThing")
def describe_thing(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    thing = require_thing(ctx, p["thingName"])
    out = {"defaultClientId": thing.name, "thingName": thing.name, "thingId": thing.thing_id,
           "thingArn": ctx.arn("thing", thing.name), "attributes": thing.attributes,
           "version": thing.version}
    if thing.type_name:
        out["thingTypeName"] = thing.type_name
    if thing.billing_group:
        out["billingGroupName"] = thing.billing_group
    return out


@iot("ListThings")
def list_things(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    attr_name, attr_value = p.get("attributeName"), p.get("attributeValue")
    if attr_value is not None and attr_name is None:
        raise invalid("attributeName must be specified when attributeValue is specified.")
    things, last = ctx.store.list_things(
        paging.decode_int(p.get("nextToken")), paging.page_size(p), attr_name, attr_value,
        bool(p.get("usePrefixAttributeValue")), p.get("thingTypeName"))
    return paging.listing("things", [thing_summary(ctx, t) for t in things], "nextToken",
                          paging.next_token(last))


@iot("UpdateThing")
def update_thing(ctx: ApiContext, p: dict[str, Any]) -> None:
    thing = require_thing(ctx, p["thingName"])
    check_expected_version(p, "thing", thing.name, thing.version)
    new_type = thing.type_name
    if p.get("removeThingType"):
        if p.get("thingTypeName"):
            raise invalid("Cannot remove the thing type and set a thing type in the same "
                          "request.")
        new_type = None
    elif p.get("thingTypeName") and p["thingTypeName"] != thing.type_name:
        require_usable_type(ctx, p["thingTypeName"])
        new_type = p["thingTypeName"]
    attributes = merged_attributes(thing.attributes, p.get("attributePayload"))
    updated = ctx.store.update_thing(thing, attributes, new_type)
    ctx.events.thing("UPDATED", updated)
    if new_type != thing.type_name:
        if thing.type_name:
            ctx.events.thing_type_association("DELETED", updated, thing.type_name)
        if new_type:
            ctx.events.thing_type_association("CREATED", updated, new_type)


@iot("DeleteThing")
def delete_thing(ctx: ApiContext, p: dict[str, Any]) -> None:
    thing = ctx.store.get_thing(p["thingName"])
    if thing is None:  # AWS: deleting a thing that does not exist succeeds
        return
    check_expected_version(p, "thing", thing.name, thing.version)
    if ctx.store.thing_has_principals(thing.name):
        raise invalid(f"Cannot delete. Thing {thing.name} is still attached to one or more "
                      "principals")
    ctx.store.delete_thing(thing)
    ctx.events.thing("DELETED", thing)


# --- thing principals -----------------------------------------------------------------------

def require_principal(ctx: ApiContext, principal: str) -> None:
    """A certificate ARN must name a registered certificate (other principal kinds, e.g.
    Cognito identities, are accepted as given)."""
    cert_id = certificate_id_of(ctx, principal)
    if cert_id is not None and ctx.store.get_certificate(cert_id) is None:
        raise not_found("The certificate given in the principal does not exist.")


def certificate_id_of(ctx: ApiContext, principal: str) -> str | None:
    marker = ":cert/"
    if principal.startswith("arn:") and marker in principal:
        return principal.split(marker, 1)[1]
    return None


@iot("AttachThingPrincipal")
def attach_thing_principal(ctx: ApiContext, p: dict[str, Any]) -> None:
    thing = require_thing(ctx, p["thingName"])
    require_principal(ctx, p["principal"])
    principal_type = p.get("thingPrincipalType") or "NON_EXCLUSIVE_THING"
    if principal_type == "EXCLUSIVE_THING":
        others = [t for t, _ in ctx.store.things_of_principal(p["principal"]) if t != thing.name]
        if others:
            raise invalid(f"Principal {p['principal']} is already attached to another thing "
                          "and cannot be attached exclusively.")
    ctx.store.attach_thing_principal(thing.name, p["principal"], principal_type)


@iot("DetachThingPrincipal")
def detach_thing_principal(ctx: ApiContext, p: dict[str, Any]) -> None:
    thing = require_thing(ctx, p["thingName"])
    ctx.store.detach_thing_principal(thing.name, p["principal"])


def _of_type(p: dict[str, Any], rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (name, thingPrincipalType) rows of the request's thingPrincipalType, if it gives one."""
    wanted = p.get("thingPrincipalType")
    return [r for r in rows if not wanted or r[1] == wanted]


def _attachments_page(p: dict[str, Any], rows: list[tuple[str, str]]
                      ) -> tuple[list[tuple[str, str]], str | None]:
    return paging.slice_page(rows, p.get("nextToken"), paging.page_size(p, default=25))


@iot("ListThingPrincipals")
def list_thing_principals(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    thing = require_thing(ctx, p["thingName"])
    page, token = _attachments_page(p, ctx.store.principals_of_thing(thing.name))
    return paging.listing("principals", [principal for principal, _ in page], "nextToken", token)


@iot("ListThingPrincipalsV2")
def list_thing_principals_v2(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    thing = require_thing(ctx, p["thingName"])
    page, token = _attachments_page(p, _of_type(p, ctx.store.principals_of_thing(thing.name)))
    return paging.listing("thingPrincipalObjects", [
        {"principal": principal, "thingPrincipalType": kind} for principal, kind in page],
        "nextToken", token)


@iot("ListPrincipalThings")
def list_principal_things(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    require_principal(ctx, p["principal"])
    page, token = _attachments_page(p, ctx.store.things_of_principal(p["principal"]))
    return paging.listing("things", [name for name, _ in page], "nextToken", token)


@iot("ListPrincipalThingsV2")
def list_principal_things_v2(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    require_principal(ctx, p["principal"])
    page, token = _attachments_page(p, _of_type(p, ctx.store.things_of_principal(p["principal"])))
    return paging.listing("principalThingObjects", [
        {"thingName": name, "thingPrincipalType": kind} for name, kind in page],
        "nextToken", token)
