"""The registry's operations: things, thing types, thing groups, thing principals. The only
writer of the registry's tables; what HTTP handlers and other features call."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleetsim.errors import UserError
from fleetsim.localcore.bus import Bus
from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import already_exists, found, invalid, not_found, version_conflict
from fleetsim.localcore.features.registry import announcements as a
from fleetsim.localcore.features.registry.records import (
    ThingGroupRecord,
    ThingPrincipal,
    ThingRecord,
    ThingTypeRecord,
)
from fleetsim.localcore.features.registry.store import RegistryStore
from fleetsim.localcore.scope import Scope

if TYPE_CHECKING:
    from fleetsim.localcore.features.context import Services

# AWS lets a deprecated thing type be deleted only after five minutes ("Delete a thing type":
# "Before you can delete a thing type, wait for five minutes after you deprecate it"); tests
# and demos shorten the wait with this variable (seconds).
THING_TYPE_DELETE_DELAY_ENV = "FLEETSIM_THING_TYPE_DELETE_DELAY_S"
MAX_GROUP_DEPTH = 7  # AWS: a thing group hierarchy has at most seven levels
EXCLUSIVE, NON_EXCLUSIVE = "EXCLUSIVE_THING", "NON_EXCLUSIVE_THING"

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


def _group_attributes(attributes: dict[str, str]) -> dict[str, str]:
    """A thing group's attributes as a create gives them (validated)."""
    return dict(validate_attributes(attributes, "thingGroupProperties.attributePayload.attributes"))


def merged_attributes(current: dict[str, str], payload: dict[str, Any] | None,
                      where: str = "attributePayload.attributes") -> dict[str, str]:
    """AttributePayload semantics: without `merge` the attributes replace the stored ones;
    with `merge` they are merged in. An empty value removes the attribute either way."""
    if payload is None:
        return dict(current)
    given = validate_attributes(payload.get("attributes") or {}, where)
    base = dict(current) if payload.get("merge") else {}
    for key, value in given.items():
        if value == "" or value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def check_expected_version(expected: int | None, kind: str, name: str, version: int) -> None:
    """VersionConflictException if `expected` (if given) is not `version`."""
    if expected is not None and expected != version:
        raise version_conflict(f"The version for {kind} {name} does not match the expected "
                               "version.")


def certificate_id_of(principal: str) -> str | None:
    """The certificate id of a certificate ARN, None for other principals."""
    marker = ":cert/"
    if principal.startswith("arn:") and marker in principal:
        return principal.split(marker, 1)[1]
    return None


def thing_type_delete_delay() -> float:
    text = os.environ.get(THING_TYPE_DELETE_DELAY_ENV, "")
    try:
        value = float(text) if text else 300.0
    except ValueError:
        value = -1.0
    if not 0 <= value <= 300:
        raise UserError(f"${THING_TYPE_DELETE_DELAY_ENV} is {text!r}: it must be a number of "
                        "seconds from 0 to 300")
    return value


class RegistryService:
    def __init__(self, db: Database, bus: Bus, services: Services):
        self._db = db
        self._store = RegistryStore(db)
        self._bus = bus
        self._services = services
        self.thing_type_delete_delay_s = thing_type_delete_delay()

    # --- things ------------------------------------------------------------------------------

    def get_thing(self, scope: Scope, name: str) -> ThingRecord | None:
        return self._store.get_thing(scope.region, name)

    def require_thing(self, scope: Scope, name: str) -> ThingRecord:
        return found(self._store.get_thing(scope.region, name), f"Thing {name} cannot be found.")

    def create_thing(self, scope: Scope, name: str, type_name: str | None,
                     attributes: dict[str, str], billing_group: str | None = None
                     ) -> ThingRecord:
        """Idempotent for identical properties, as on AWS."""
        attributes = dict(validate_attributes(attributes, "attributePayload.attributes"))
        existing = self._store.get_thing(scope.region, name)
        if existing is not None:
            if existing.type_name == type_name and existing.attributes == attributes and \
                    existing.billing_group == billing_group:
                return existing
            raise already_exists(f"Thing {name} already exists in account with different "
                                 "attributes", existing.thing_id, scope.arn("thing", name))
        if type_name:
            self._require_usable_type(scope, type_name)
        thing = self._store.create_thing(scope.region, name, type_name, attributes,
                                         billing_group)
        self._bus.publish(a.ThingCreated(scope, thing))
        return thing

    def update_thing(self, scope: Scope, name: str, *, expected_version: int | None = None,
                     thing_type_name: str | None = None, remove_thing_type: bool = False,
                     attribute_payload: dict[str, Any] | None = None) -> ThingRecord:
        thing = self.require_thing(scope, name)
        check_expected_version(expected_version, "thing", thing.name, thing.version)
        new_type = thing.type_name
        if remove_thing_type:
            if thing_type_name:
                raise invalid("Cannot remove the thing type and set a thing type in the same "
                              "request.")
            new_type = None
        elif thing_type_name and thing_type_name != thing.type_name:
            self._require_usable_type(scope, thing_type_name)
            new_type = thing_type_name
        attributes = merged_attributes(thing.attributes, attribute_payload)
        updated = self._store.update_thing(thing, attributes, new_type)
        self._bus.publish(a.ThingUpdated(scope, updated, thing))
        return updated

    def delete_thing(self, scope: Scope, name: str, expected_version: int | None = None) -> None:
        thing = self._store.get_thing(scope.region, name)
        if thing is None:  # AWS: deleting a thing that does not exist succeeds
            return
        check_expected_version(expected_version, "thing", thing.name, thing.version)
        if self._store.thing_has_principals(scope.region, thing.name):
            raise invalid(f"Cannot delete. Thing {thing.name} is still attached to one or more "
                          "principals")
        self._store.delete_thing(scope.region, thing)
        self._bus.publish(a.ThingDeleted(scope, thing))

    def list_things(self, scope: Scope, after: int, limit: int,
                    attribute_name: str | None = None, attribute_value: str | None = None,
                    prefix: bool = False, type_name: str | None = None
                    ) -> tuple[list[ThingRecord], int | None]:
        if attribute_value is not None and attribute_name is None:
            raise invalid("attributeName must be specified when attributeValue is specified.")
        return self._store.list_things(scope.region, after, limit, attribute_name,
                                       attribute_value, prefix, type_name)

    # --- thing types -------------------------------------------------------------------------

    def require_thing_type(self, scope: Scope, name: str) -> ThingTypeRecord:
        return found(self._store.get_thing_type(scope.region, name),
                     f"Thing Type {name} cannot be found.")

    def _require_usable_type(self, scope: Scope, type_name: str) -> None:
        if self.require_thing_type(scope, type_name).deprecated:
            raise invalid(f"Can not create new thing with deprecated thing type: {type_name}")

    def create_thing_type(self, scope: Scope, name: str, description: str | None,
                          searchable: list[str]) -> ThingTypeRecord:
        existing = self._store.get_thing_type(scope.region, name)
        if existing is not None:
            if existing.description == description and existing.searchable_attributes == \
                    searchable:
                return existing
            raise already_exists(f"Thing Type {name} already exists with different properties",
                                 existing.type_id, scope.arn("thingtype", name))
        rec = self._store.create_thing_type(scope.region, name, description, searchable)
        self._bus.publish(a.ThingTypeCreated(scope, rec))
        return rec

    def list_thing_types(self, scope: Scope, after: str, limit: int, name: str | None = None
                         ) -> tuple[list[ThingTypeRecord], str | None]:
        if name is not None:
            rec = self._store.get_thing_type(scope.region, name)
            return ([rec] if rec else []), None
        return self._store.list_thing_types(scope.region, after, limit)

    def deprecate_thing_type(self, scope: Scope, name: str, deprecated: bool) -> None:
        rec = self.require_thing_type(scope, name)
        if rec.deprecated == deprecated:
            return
        rec = self._store.set_thing_type_deprecated(scope.region, rec, deprecated)
        self._bus.publish(a.ThingTypeUpdated(scope, rec))

    def update_thing_type(self, scope: Scope, name: str, properties: dict[str, Any]) -> None:
        rec = self.require_thing_type(scope, name)
        rec = self._store.update_thing_type(
            scope.region, rec, properties.get("thingTypeDescription", rec.description),
            list(properties.get("searchableAttributes", rec.searchable_attributes)))
        self._bus.publish(a.ThingTypeUpdated(scope, rec))

    def delete_thing_type(self, scope: Scope, name: str) -> None:
        rec = self.require_thing_type(scope, name)
        delay = self.thing_type_delete_delay_s
        if not rec.deprecated or rec.deprecation_date is None or \
                time.time() - rec.deprecation_date < delay:
            raise invalid(f"Thing type {rec.name} can be deleted only after it has been "
                          f"deprecated for {delay:g} seconds.")
        if self._store.count_things_of_type(scope.region, rec.name):
            raise invalid(f"Thing type {rec.name} cannot be deleted while things are "
                          "associated with it.")
        self._store.delete_thing_type(scope.region, rec.name)
        self._bus.publish(a.ThingTypeDeleted(scope, rec))

    # --- thing groups ------------------------------------------------------------------------

    def get_group(self, scope: Scope, name: str) -> ThingGroupRecord | None:
        return self._store.get_thing_group(scope.region, name)

    def require_group(self, scope: Scope, name: str) -> ThingGroupRecord:
        return found(self._store.get_thing_group(scope.region, name),
                     f"Thing group {name} cannot be found.")

    def ancestors(self, scope: Scope, name: str) -> list[str]:
        """Parent, grandparent, ... up to the root."""
        return self._store.ancestors(scope.region, name)

    def descendants(self, scope: Scope, name: str) -> list[str]:
        return self._store.descendants(scope.region, name)

    def _ancestor_records(self, scope: Scope, group: ThingGroupRecord
                          ) -> tuple[ThingGroupRecord, ...]:
        """Root first, parent last."""
        if group.parent_name is None:
            return ()
        names = [group.parent_name, *self._store.ancestors(scope.region, group.parent_name)]
        records = [self._store.get_thing_group(scope.region, n) for n in reversed(names)]
        return tuple(r for r in records if r is not None)

    def _existing_group(self, scope: Scope, name: str,
                        same: Callable[[ThingGroupRecord], bool]) -> ThingGroupRecord | None:
        """The thing group `name` if it exists as a create asks for it again (AWS answers the
        repeated create with it), None if there is none; one that differs is refused."""
        existing = self._store.get_thing_group(scope.region, name)
        if existing is None or same(existing):
            return existing
        raise already_exists(f"Thing Group {name} already exists with different properties",
                             existing.group_id, scope.arn("thinggroup", name))

    def create_thing_group(self, scope: Scope, name: str, parent_name: str | None,
                           description: str | None, attributes: dict[str, str]
                           ) -> ThingGroupRecord:
        attributes = _group_attributes(attributes)
        existing = self._existing_group(scope, name, lambda g: (
            g.parent_name, g.description, g.attributes) == (parent_name, description, attributes))
        if existing is not None:
            return existing
        if parent_name:
            if self.require_group(scope, parent_name).dynamic:
                # "Dynamic thing groups": they can't be part of a hierarchy.
                raise invalid(f"Thing group {name} cannot be created under dynamic thing "
                              f"group {parent_name}: a dynamic thing group can't be part of a "
                              "hierarchy.")
            if len(self._store.ancestors(scope.region, parent_name)) + 2 > MAX_GROUP_DEPTH:
                raise invalid(f"Thing group {name} cannot be created: a thing group hierarchy "
                              f"can have at most {MAX_GROUP_DEPTH} levels.")
        group = self._store.create_thing_group(scope.region, name, parent_name, description,
                                               attributes)
        self._bus.publish(a.ThingGroupCreated(scope, group, self._ancestor_records(scope, group)))
        return group

    # --- dynamic thing groups ("Dynamic thing groups", AWS IoT developer guide): their
    # members are the things their query matches in the fleet index, which the indexing
    # feature keeps (set_dynamic_membership); no parent, no children, no manual members.

    def _indexing(self) -> Any:
        try:
            return self._services.get("indexing")
        except LookupError:
            raise invalid("Dynamic thing groups need fleet indexing, and the indexing feature "
                          "is not installed in this local core.") from None

    def create_dynamic_thing_group(self, scope: Scope, name: str, query_string: str,
                                   description: str | None, attributes: dict[str, str]
                                   ) -> ThingGroupRecord:
        self._indexing().check_dynamic_query(scope, query_string)
        attributes = _group_attributes(attributes)
        existing = self._existing_group(scope, name, lambda g: (
            g.query_string, g.description, g.attributes) == (query_string, description,
                                                               attributes))
        if existing is not None:
            return existing
        group = self._store.create_thing_group(scope.region, name, None, description,
                                               attributes, query_string)
        self._bus.publish(a.ThingGroupCreated(scope, group, ()))
        return group

    def update_dynamic_thing_group(self, scope: Scope, name: str, properties: dict[str, Any],
                                   query_string: str | None,
                                   expected_version: int | None = None) -> ThingGroupRecord:
        group = self.require_group(scope, name)
        if not group.dynamic:
            raise invalid(f"Thing group {name} is not a dynamic thing group.")
        if query_string is not None:
            self._indexing().check_dynamic_query(scope, query_string)
        return self.update_thing_group(scope, name, properties, expected_version, query_string)

    def require_static(self, group: ThingGroupRecord) -> ThingGroupRecord:
        if group.dynamic:
            raise invalid(f"Things cannot be added to or removed from dynamic thing group "
                          f"{group.name}: its query decides its members.")
        return group

    def dynamic_groups(self, scope: Scope) -> list[ThingGroupRecord]:
        return self._store.dynamic_groups(scope.region)

    def set_dynamic_membership(self, scope: Scope, group: ThingGroupRecord, thing: ThingRecord,
                               member: bool) -> None:
        """The indexing feature's door: `thing` joins or leaves dynamic `group` (announced
        like any membership change: ThingAddedToGroup / ThingRemovedFromGroup)."""
        assert group.dynamic
        if member:
            self.add_thing_to_group(scope, group, thing)
        else:
            self.remove_thing_from_group(scope, group, thing)

    def memberships(self, scope: Scope) -> list[tuple[str, str]]:
        """Every (thing, group) membership of the region, oldest first."""
        return self._store.memberships(scope.region)

    def update_thing_group(self, scope: Scope, name: str, properties: dict[str, Any],
                           expected_version: int | None = None,
                           query_string: str | None = None) -> ThingGroupRecord:
        group = self.require_group(scope, name)
        check_expected_version(expected_version, "thing group", group.name, group.version)
        description = properties.get("thingGroupDescription", group.description)
        attributes = merged_attributes(group.attributes, properties.get("attributePayload"),
                                       "thingGroupProperties.attributePayload.attributes")
        group = self._store.update_thing_group(group, description, attributes, query_string)
        self._bus.publish(a.ThingGroupUpdated(scope, group, self._ancestor_records(scope, group)))
        return group

    def delete_thing_group(self, scope: Scope, name: str,
                           expected_version: int | None = None) -> None:
        group = self._store.get_thing_group(scope.region, name)
        if group is None:
            return
        check_expected_version(expected_version, "thing group", group.name, group.version)
        if self._store.child_groups(scope.region, group.name):
            raise invalid(f"Cannot delete thing group : {group.name} when there are still "
                          "child groups attached to it")
        ancestors = self._ancestor_records(scope, group)
        with self._db.transaction():
            self._store.delete_thing_group(scope.region, group.name)
            self._services.policies.detach_all(scope, scope.arn("thinggroup", group.name))
        self._bus.publish(a.ThingGroupDeleted(scope, group, ancestors))

    def list_thing_groups(self, scope: Scope, after: int, limit: int, parent: str | None,
                          name_prefix: str | None, recursive: bool
                          ) -> tuple[list[ThingGroupRecord], int | None]:
        if parent:
            self.require_group(scope, parent)
        return self._store.list_thing_groups(scope.region, after, limit, parent or None,
                                             name_prefix, recursive)

    def add_thing_to_group(self, scope: Scope, group: ThingGroupRecord,
                           thing: ThingRecord) -> None:
        membership_id = self._store.add_thing_to_group(scope.region, group.name, thing.name)
        if membership_id is not None:
            self._bus.publish(a.ThingAddedToGroup(scope, group, thing, membership_id))

    def remove_thing_from_group(self, scope: Scope, group: ThingGroupRecord,
                                thing: ThingRecord) -> None:
        membership_id = self._store.remove_thing_from_group(scope.region, group.name,
                                                            thing.name)
        if membership_id is not None:
            self._bus.publish(a.ThingRemovedFromGroup(scope, group, thing, membership_id))

    def update_thing_groups_for_thing(self, scope: Scope, thing_name: str, to_add: list[str],
                                      to_remove: list[str]) -> None:
        thing = self.require_thing(scope, thing_name)
        adding = [self.require_static(self.require_group(scope, n)) for n in to_add]
        removing = [self.require_static(self.require_group(scope, n)) for n in to_remove]
        with self._db.transaction():
            for group in adding:
                self.add_thing_to_group(scope, group, thing)
            for group in removing:
                self.remove_thing_from_group(scope, group, thing)

    def groups_of_thing(self, scope: Scope, thing_name: str) -> list[str]:
        return self._store.groups_of_thing(scope.region, thing_name)

    def things_in_group(self, scope: Scope, group_name: str, recursive: bool, after: str,
                        limit: int) -> tuple[list[str], str | None]:
        group = self.require_group(scope, group_name)
        groups = [group.name, *(self._store.descendants(scope.region, group.name)
                                if recursive else [])]
        return self._store.things_in_groups(scope.region, groups, after, limit)

    def group_chain_of_thing(self, scope: Scope, thing_name: str) -> list[str]:
        """The thing's groups and their ancestors, each once, nearest first."""
        out: list[str] = []
        for group in self._store.groups_of_thing(scope.region, thing_name):
            for name in (group, *self._store.ancestors(scope.region, group)):
                if name not in out:
                    out.append(name)
        return out

    # --- thing principals --------------------------------------------------------------------

    def require_principal(self, scope: Scope, principal: str) -> None:
        """A certificate ARN must name a registered certificate (other principal kinds, e.g.
        Cognito identities, are accepted as given)."""
        cert_id = certificate_id_of(principal)
        certificates = self._services.certificates
        if cert_id is not None and certificates.get_certificate(scope, cert_id) is None:
            raise not_found("The certificate given in the principal does not exist.")

    def attach_thing_principal(self, scope: Scope, thing_name: str, principal: str,
                               principal_type: str | None = None) -> None:
        """AWS: an exclusive attachment makes the thing the only one the principal is attached
        to; a principal attached exclusively cannot be attached to another thing."""
        thing = self.require_thing(scope, thing_name)
        self.require_principal(scope, principal)
        kind = principal_type or NON_EXCLUSIVE
        others = [t for t in self._store.things_of_principal(scope.region, principal)
                  if t.thing_name != thing.name]
        if kind == EXCLUSIVE and others:
            raise invalid(f"Principal {principal} is already attached to another thing "
                          "and cannot be attached exclusively.")
        exclusive = [t.thing_name for t in others if t.principal_type == EXCLUSIVE]
        if exclusive:
            raise invalid(f"Principal {principal} is exclusively attached to thing "
                          f"{exclusive[0]} and cannot be attached to another thing.")
        self._store.attach_thing_principal(scope.region, thing.name, principal, kind)
        self._bus.publish(a.ThingPrincipalAttached(scope, thing.name, principal, kind))

    def detach_thing_principal(self, scope: Scope, thing_name: str, principal: str) -> None:
        thing = self.require_thing(scope, thing_name)
        if self._store.detach_thing_principal(scope.region, thing.name, principal):
            self._bus.publish(a.ThingPrincipalDetached(scope, thing.name, principal))

    def principals_of_thing(self, scope: Scope, thing_name: str) -> list[ThingPrincipal]:
        return self._store.principals_of_thing(scope.region, thing_name)

    def things_of_principal(self, scope: Scope, principal: str) -> list[ThingPrincipal]:
        return self._store.things_of_principal(scope.region, principal)
