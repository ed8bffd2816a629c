"""`events`: update-event-configurations, restored at clean-up."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fleetsim.control.cleanup import JournalKind, Phase
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase

EVENT_TYPES = (
    "THING", "THING_GROUP", "THING_TYPE", "THING_GROUP_MEMBERSHIP", "THING_GROUP_HIERARCHY",
    "THING_TYPE_ASSOCIATION", "JOB", "JOB_EXECUTION", "POLICY", "CERTIFICATE", "CA_CERTIFICATE",
)
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class EventsStep(StepBase):
    """update-event-configurations: enable or disable registry event types."""

    kind: Literal["events"]
    enable: Literal["all"] | list[EventType] = Field(default_factory=list)
    disable: Literal["all"] | list[EventType] = Field(default_factory=list)


# The first change recorded holds the configuration to restore.
EVENTS = JournalKind(
    "events", Phase.RESTORE,
    lambda c, d: c.iot.update_event_configurations(eventConfigurations=d["previous"]),
    first_only=True)


async def run(ctx: RunContext, step: EventsStep) -> None:
    """Event types already as declared: reused, nothing journaled or changed. Else they are
    set (counted as created: `events` names the types changed) and the configuration found
    is journaled first, for clean-up to restore."""
    current = await api_call(ctx, "DescribeEventConfigurations")
    previous = current.get("eventConfigurations", {})
    wanted: dict[str, dict[str, Any]] = {}
    for types, enabled in ((step.disable, False), (step.enable, True)):
        for t in EVENT_TYPES if types == "all" else types:
            wanted[t] = {"Enabled": enabled}
    changed = sorted(t for t, v in wanted.items()
                     if bool(previous.get(t, {}).get("Enabled")) != v["Enabled"])
    # planning labs: the types an earlier lab would set so are that lab's change, not ours
    earlier = ctx.reconcile.set_earlier(EVENTS.name, {t: wanted[t]["Enabled"] for t in changed})
    for lab in sorted(set(earlier.values())):
        ctx.reconcile.by_earlier(lab, EVENTS.name, _named([t for t, by in earlier.items()
                                                           if by == lab]))
    changed = [t for t in changed if t not in earlier]
    name = _named(changed)
    if not changed:
        if not earlier:
            ctx.reconcile.reuse(EVENTS.name, "event configurations")
        return
    ctx.reconcile.create(EVENTS.name, name)
    if ctx.reconcile.plan:
        return
    ctx.journal.record(EVENTS.name, previous=previous)
    await api_call(ctx, "UpdateEventConfigurations", eventConfigurations=wanted)


def _named(types: list[str]) -> str:
    return ", ".join(types) if len(types) <= 3 else f"{len(types)} event types"


KIND = StepKind(EventsStep, run, journals=(EVENTS,), plans=True)
