"""Describe/UpdateEventConfigurations: which `$aws/events/...` types are published."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.errors import invalid
from fleetsim.localcore.api.operations import iot
from fleetsim.localcore.store import EVENT_TYPES


@iot("DescribeEventConfigurations")
def describe_event_configurations(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    cfg = ctx.store.event_config
    out: dict[str, Any] = {"eventConfigurations": {
        t: {"Enabled": cfg.enabled.get(t, False)} for t in EVENT_TYPES}}
    if cfg.created:
        out["creationDate"] = cfg.created
        out["lastModifiedDate"] = cfg.last_modified
    return out


@iot("UpdateEventConfigurations")
def update_event_configurations(ctx: ApiContext, p: dict[str, Any]) -> None:
    changes: dict[str, bool] = {}
    for event_type, config in (p.get("eventConfigurations") or {}).items():
        if event_type not in EVENT_TYPES:
            raise invalid(f"1 validation error detected: Value '{event_type}' at "
                          "'eventConfigurations' failed to satisfy constraint: Map keys must "
                          f"satisfy constraint: [Member must satisfy enum value set: "
                          f"[{', '.join(sorted(EVENT_TYPES))}]]")
        if isinstance(config, dict) and "Enabled" in config:
            changes[event_type] = bool(config["Enabled"])
    if changes:
        ctx.store.update_event_config(changes)
