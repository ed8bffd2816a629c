"""Describe/UpdateEventConfigurations: which `$aws/events/...` types are published."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.events.service import EventsService, event_types

operations = Operations()
E = Call[EventsService]


@operations.iot("DescribeEventConfigurations")
def describe_event_configurations(call: E, p: dict[str, Any]) -> dict[str, Any]:
    cfg = call.service.config(call.scope)
    out: dict[str, Any] = {"eventConfigurations": {
        t: {"Enabled": cfg.enabled.get(t, False)} for t in event_types()}}
    if cfg.created:
        out["creationDate"] = cfg.created
        out["lastModifiedDate"] = cfg.last_modified
    return out


@operations.iot("UpdateEventConfigurations")
def update_event_configurations(call: E, p: dict[str, Any]) -> None:
    changes = {event_type: bool(config["Enabled"])
               for event_type, config in (p.get("eventConfigurations") or {}).items()
               if isinstance(config, dict) and "Enabled" in config}
    unknown = set(p.get("eventConfigurations") or {}) - set(event_types())
    if changes or unknown:
        call.service.update(call.scope, {**changes, **dict.fromkeys(unknown, False)})
