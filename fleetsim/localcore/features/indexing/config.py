"""The indexing configuration (pure): what UpdateIndexingConfiguration accepts and what
GetIndexingConfiguration answers ("Manage thing indexing", AWS IoT developer guide).

`thingIndexingMode` OFF | REGISTRY | REGISTRY_AND_SHADOW; `thingConnectivityIndexingMode`
OFF | STATUS (only with thing indexing on); `namedShadowIndexingMode` ON with
`filter.namedShadowNames` indexes those named shadows; `customFields` (name, type) are kept as
given; `managedFields` are AWS's own, answered by get and not settable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetsim.localcore.errors import invalid

MAX_NAMED_SHADOWS = 10  # "Managing fleet indexing": up to 10 shadow names by default

# Managed fields ("Manage thing indexing"): those of each data source, answered by
# get-indexing-configuration for what is on.
_REGISTRY_FIELDS = (("registry.version", "Number"), ("registry.thingTypeName", "String"),
                    ("registry.thingGroupNames", "String"), ("thingName", "String"),
                    ("thingId", "String"))
_SHADOW_FIELDS = (("shadow.version", "Number"), ("shadow.hasDelta", "Boolean"))
_NAMED_SHADOW_FIELDS = (("shadow.name.*.version", "Number"),
                        ("shadow.name.*.hasDelta", "Boolean"))
_CONNECTIVITY_FIELDS = (("connectivity.timestamp", "Number"),
                        ("connectivity.version", "Number"),
                        ("connectivity.connected", "Boolean"),
                        ("connectivity.disconnectReason", "String"))
_GROUP_FIELDS = (("thingGroupName", "String"), ("thingGroupId", "String"),
                 ("thingGroupDescription", "String"), ("parentGroupNames", "String"))


@dataclass(frozen=True)
class ThingIndexing:
    mode: str = "OFF"  # OFF | REGISTRY | REGISTRY_AND_SHADOW
    connectivity: str = "OFF"  # OFF | STATUS
    named_shadows: bool = False
    named_shadow_names: tuple[str, ...] = ()
    custom_fields: tuple[tuple[str, str], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # device defender, geolocations: kept

    @property
    def enabled(self) -> bool:
        return self.mode != "OFF"

    @property
    def shadow(self) -> bool:
        return self.mode == "REGISTRY_AND_SHADOW"

    @property
    def connectivity_on(self) -> bool:
        return self.enabled and self.connectivity == "STATUS"

    def indexes_named(self, name: str) -> bool:
        return self.enabled and self.named_shadows and name in self.named_shadow_names

    def managed_fields(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.enabled:
            out += _REGISTRY_FIELDS
        if self.shadow:
            out += _SHADOW_FIELDS
        if self.enabled and self.named_shadows:
            out += _NAMED_SHADOW_FIELDS
        if self.connectivity_on:
            out += _CONNECTIVITY_FIELDS
        return out

    def field_type(self, name: str) -> str | None:
        """The type of a managed or custom field, None if it is neither."""
        for known, kind in (*self.managed_fields(), *self.custom_fields):
            if known == name or (known.startswith("shadow.name.*.") and
                                 name.startswith("shadow.name.") and
                                 name.endswith(known.removeprefix("shadow.name.*"))):
                return kind
        return None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"thingIndexingMode": self.mode,
                               "thingConnectivityIndexingMode": self.connectivity}
        if self.enabled:
            out["namedShadowIndexingMode"] = "ON" if self.named_shadows else "OFF"
        out |= self.extra
        fields = self.managed_fields()
        if fields:
            out["managedFields"] = [{"name": n, "type": t} for n, t in fields]
        if self.custom_fields:
            out["customFields"] = [{"name": n, "type": t} for n, t in self.custom_fields]
        if self.named_shadow_names:
            out["filter"] = {**out.get("filter", {}),
                             "namedShadowNames": list(self.named_shadow_names)}
        return out


@dataclass(frozen=True)
class GroupIndexing:
    mode: str = "OFF"  # OFF | ON
    custom_fields: tuple[tuple[str, str], ...] = ()

    @property
    def enabled(self) -> bool:
        return self.mode == "ON"

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"thingGroupIndexingMode": self.mode}
        if self.enabled:
            out["managedFields"] = [{"name": n, "type": t} for n, t in _GROUP_FIELDS]
        if self.custom_fields:
            out["customFields"] = [{"name": n, "type": t} for n, t in self.custom_fields]
        return out


def _fields(given: list[dict[str, Any]] | None, where: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for f in given or []:
        if not f.get("name") or not f.get("type"):
            raise invalid(f"Each of {where} needs a name and a type (Number, String or "
                          "Boolean).")
        out.append((str(f["name"]), str(f["type"])))
    return tuple(out)


def thing_indexing(p: dict[str, Any]) -> ThingIndexing:
    """A ThingIndexingConfiguration from the wire, checked as AWS checks it."""
    mode = p["thingIndexingMode"]
    connectivity = p.get("thingConnectivityIndexingMode") or "OFF"
    if mode == "OFF" and connectivity != "OFF":
        # ThingIndexingConfiguration: "To enable thing connectivity indexing,
        # thingIndexMode must not be set to OFF."
        raise invalid("thingConnectivityIndexingMode can be STATUS only when "
                      "thingIndexingMode is not OFF.")
    # managedFields: "You can't modify managed fields by updating fleet indexing
    # configuration" (ThingIndexingConfiguration): what is given is ignored.
    named = p.get("namedShadowIndexingMode") == "ON"
    flt = dict(p.get("filter") or {})
    names = tuple(flt.pop("namedShadowNames", None) or ())
    if len(names) > MAX_NAMED_SHADOWS:
        raise invalid(f"filter.namedShadowNames lists {len(names)} shadows; at most "
                      f"{MAX_NAMED_SHADOWS} can be indexed.")
    custom = _fields(p.get("customFields"), "thingIndexingConfiguration.customFields")
    if mode != "REGISTRY_AND_SHADOW":
        shadowy = [n for n, _ in custom if n.startswith("shadow.") and
                   not (named and n.startswith("shadow.name."))]
        if shadowy:
            # "Manage thing indexing": with REGISTRY a custom field cannot be a shadow field.
            raise invalid(f"Custom field {shadowy[0]} is a shadow field, which is indexed only "
                          "with thingIndexingMode REGISTRY_AND_SHADOW.")
    extra: dict[str, Any] = {}
    if p.get("deviceDefenderIndexingMode"):
        extra["deviceDefenderIndexingMode"] = p["deviceDefenderIndexingMode"]
    if flt:
        extra["filter"] = flt
    return ThingIndexing(mode, connectivity, named, names, custom, extra)


def group_indexing(p: dict[str, Any]) -> GroupIndexing:
    return GroupIndexing(p["thingGroupIndexingMode"],
                         _fields(p.get("customFields"),
                                 "thingGroupIndexingConfiguration.customFields"))


def to_storage(thing: ThingIndexing, group: GroupIndexing) -> dict[str, Any]:
    return {"thing": thing.wire() | {"managedFields": []}, "group": group.wire()}


def from_storage(saved: dict[str, Any]) -> tuple[ThingIndexing, GroupIndexing]:
    thing = dict(saved.get("thing") or {"thingIndexingMode": "OFF"})
    thing.pop("managedFields", None)
    group = dict(saved.get("group") or {"thingGroupIndexingMode": "OFF"})
    group.pop("managedFields", None)
    return thing_indexing(thing), group_indexing(group)
