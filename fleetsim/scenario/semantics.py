"""Checks that need the whole scenario: references between steps and fleets, templates."""

from __future__ import annotations

from typing import Any

from fleetsim.scenario.model import (
    ConnectStep,
    CreatePolicyStep,
    DisconnectStep,
    ExpectStep,
    FleetStep,
    ObserveStep,
    ProvisionStep,
    PublishStep,
    Scenario,
    TelemetryStep,
)
from fleetsim.scenario.templating import StructTemplate, Template, TemplateError

Loc = tuple[str | int, ...]
FLEET_NAMES = {"fleet", "prefix", "index"}
DEVICE_NAMES = FLEET_NAMES | {"thing_name", "client_id"}
TELEMETRY_NAMES = DEVICE_NAMES | {"seq"}  # seq: the message's number, from 1
# Steps that need the fleet's devices to be connected first.
_NEEDS_CONNECTION = ("publish", "telemetry", "subscribe", "disconnect")


def _template(loc: Loc, value: Any, names: set[str]) -> list[tuple[Loc, str]]:
    try:
        if isinstance(value, str):
            Template(value, names)
        else:
            StructTemplate(value, names)
    except TemplateError as e:
        return [(loc, str(e))]
    return []


def check_semantics(scenario: Scenario) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    fleets = {f.name: f for f in scenario.fleets}
    for j, fleet in enumerate(scenario.fleets):
        loc: Loc = ("fleets", j, "thing_name")
        problems += _template(loc, fleet.thing_name, FLEET_NAMES)
        if fleet.count > 1 and "{index" not in fleet.thing_name:
            problems.append((loc, f"fleet {fleet.name!r} has {fleet.count} devices, so its "
                                  "thing_name must contain {index} to give each a unique name"))
    connected: set[str] = set()
    observing = False
    for i, step in enumerate(scenario.steps):
        base: Loc = ("steps", i, step.kind)
        fleet_name = getattr(step, "fleet", None)
        if fleet_name is not None and fleet_name not in fleets:
            known = ", ".join(sorted(fleets)) or "none are defined"
            problems.append(((*base, "fleet"), f"no fleet named {fleet_name!r} (fleets: {known})"))
            continue
        if isinstance(step, FleetStep) and step.kind in _NEEDS_CONNECTION \
                and step.fleet not in connected:
            problems.append(((*base, "fleet"), f"fleet {step.fleet!r} is not connected yet: add a "
                                               "'connect' step before this one"))
        if isinstance(step, ConnectStep):
            connected.add(step.fleet)
            problems += _template((*base, "client_id"), step.client_id,
                                  DEVICE_NAMES - {"client_id"})
        elif isinstance(step, DisconnectStep):
            connected.discard(step.fleet)
        if isinstance(step, ObserveStep):
            observing = True
        elif isinstance(step, CreatePolicyStep):
            names = DEVICE_NAMES if step.fleet else set()
            problems += _template((*base, "policy"), step.policy, names)
            if "{" in step.policy and not step.fleet:
                problems.append(((*base, "policy"), "a templated policy name needs 'fleet' to say "
                                                    "whose devices it is made for"))
            if isinstance(step.document, dict):
                problems += _template((*base, "document"), step.document, names)
        elif isinstance(step, PublishStep):
            problems += _template((*base, "topic"), step.topic, DEVICE_NAMES)
            problems += _template((*base, "payload"), step.payload, DEVICE_NAMES)
        elif isinstance(step, TelemetryStep):
            problems += _template((*base, "topic"), step.topic, TELEMETRY_NAMES)
            problems += _template((*base, "payload"), step.payload, TELEMETRY_NAMES)
        elif isinstance(step, ProvisionStep) and step.policy:
            problems += _template((*base, "policy"), step.policy, DEVICE_NAMES)
        elif isinstance(step, ExpectStep):
            for k, exp in enumerate(step.messages):
                loc = (*base, "messages", k)
                if not observing:
                    problems.append((loc, "expecting messages needs an 'observe' step before"))
                if exp.fleet is not None and exp.fleet not in fleets:
                    problems.append(((*loc, "fleet"), f"no fleet named {exp.fleet!r}"))
                names = DEVICE_NAMES if exp.fleet else set()
                problems += _template((*loc, "topic"), exp.topic, names)
            for k, thing in enumerate(step.things):
                if thing.fleet not in fleets:
                    problems.append((((*base, "things", k, "fleet")),
                                     f"no fleet named {thing.fleet!r}"))
    return problems
