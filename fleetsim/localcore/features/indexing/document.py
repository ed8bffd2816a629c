"""What the index holds of one thing, its searchable fields and its search-index result
(pure).

Fields ("Query syntax", "Example thing queries", AWS IoT developer guide): `thingName`,
`thingId`, `thingTypeName`, `thingGroupNames`, `attributes.<name>`, `registry.version`; with
shadow indexing `shadow.reported.*`, `shadow.desired.*`, `shadow.delta.*`, `shadow.version`,
`shadow.hasDelta`, and for an indexed named shadow the same under `shadow.name.<name>.`; with
connectivity indexing `connectivity.connected`, `connectivity.timestamp` (epoch ms),
`connectivity.disconnectReason`. A result (ThingDocument) carries the shadow as a JSON string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fleetsim.localcore.features.indexing.config import ThingIndexing
from fleetsim.localcore.features.indexing.evaluate import Value


@dataclass(slots=True)
class ShadowState:
    state: dict[str, Any]  # desired / reported
    delta: dict[str, Any]
    version: int

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in self.state.items() if k in ("desired",
                                                                            "reported")}
        if self.delta:
            out["delta"] = self.delta
        out["version"] = self.version
        out["hasDelta"] = bool(self.delta)
        return out


@dataclass(slots=True)
class Connectivity:
    connected: bool
    timestamp: int  # epoch ms
    disconnect_reason: str | None = None
    version: int = 0


@dataclass(slots=True)
class ThingEntry:
    name: str
    thing_id: str
    type_name: str | None
    attributes: dict[str, str]
    version: int
    groups: list[str] = field(default_factory=list)
    shadows: dict[str, ShadowState] = field(default_factory=dict)  # '' is the classic one


def _flatten(prefix: str, value: Any, out: dict[str, list[Value]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, list):
        for v in value:
            _flatten(prefix, v, out)
    elif value is not None:
        out.setdefault(prefix, []).append(value)


def _shadow_fields(prefix: str, shadow: ShadowState, out: dict[str, list[Value]]) -> None:
    for section in ("desired", "reported"):
        if section in shadow.state:
            _flatten(f"{prefix}.{section}", shadow.state[section], out)
    if shadow.delta:
        _flatten(f"{prefix}.delta", shadow.delta, out)
    out[f"{prefix}.version"] = [shadow.version]
    out[f"{prefix}.hasDelta"] = [bool(shadow.delta)]


def fields(entry: ThingEntry, config: ThingIndexing,
           connectivity: Connectivity | None) -> dict[str, list[Value]]:
    out: dict[str, list[Value]] = {"thingName": [entry.name], "thingId": [entry.thing_id],
                                   "registry.version": [entry.version]}
    if entry.type_name:
        out["thingTypeName"] = [entry.type_name]
        out["registry.thingTypeName"] = [entry.type_name]
    if entry.groups:
        out["thingGroupNames"] = list(entry.groups)
        out["registry.thingGroupNames"] = list(entry.groups)
    for k, v in entry.attributes.items():
        out[f"attributes.{k}"] = [v]
    for name, shadow in entry.shadows.items():
        if name == "" and config.shadow:
            _shadow_fields("shadow", shadow, out)
        elif name and config.indexes_named(name):
            _shadow_fields(f"shadow.name.{name}", shadow, out)
    if config.connectivity_on:  # a thing never connected is not connected
        conn = connectivity or Connectivity(False, 0)
        out["connectivity.connected"] = [conn.connected]
        if conn.timestamp:
            out["connectivity.timestamp"] = [conn.timestamp]
            out["connectivity.version"] = [conn.version]
        if conn.disconnect_reason and not conn.connected:
            out["connectivity.disconnectReason"] = [conn.disconnect_reason]
    return out


def result(entry: ThingEntry, config: ThingIndexing,
           connectivity: Connectivity | None) -> dict[str, Any]:
    """The ThingDocument search-index answers for the thing."""
    out: dict[str, Any] = {"thingName": entry.name, "thingId": entry.thing_id,
                           "attributes": dict(entry.attributes)}
    if entry.type_name:
        out["thingTypeName"] = entry.type_name
    if entry.groups:
        out["thingGroupNames"] = list(entry.groups)
    shadow: dict[str, Any] = {}
    classic = entry.shadows.get("")
    if classic is not None and config.shadow:
        shadow = classic.as_json()
    named = {n: s.as_json() for n, s in entry.shadows.items() if n and config.indexes_named(n)}
    if named:
        shadow["name"] = named
    if shadow:
        out["shadow"] = json.dumps(shadow, separators=(",", ":"))
    if config.connectivity_on:
        conn = connectivity or Connectivity(False, 0)
        wire: dict[str, Any] = {"connected": conn.connected}
        if conn.timestamp:
            wire["timestamp"] = conn.timestamp
        if conn.disconnect_reason and not conn.connected:
            wire["disconnectReason"] = conn.disconnect_reason
        out["connectivity"] = wire
    return out
