"""Checks that need the whole scenario: references between steps and fleets, templates.

The checks common to every step (its fleet exists, is connected when the kind needs it) are
here; what is particular to a kind is its model's `check`, which also notes in the `Scope`
what the step makes true for the steps after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetsim.scenario.model import Fleet, Scenario
from fleetsim.scenario.templating import StructTemplate, Template, TemplateError

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]
FLEET_NAMES = {"fleet", "prefix", "index"}
DEVICE_NAMES = FLEET_NAMES | {"thing_name", "client_id"}
TELEMETRY_NAMES = DEVICE_NAMES | {"seq"}  # seq: the message's number, from 1


@dataclass
class Scope:
    """What the steps before the one being checked have set up."""

    fleets: dict[str, Fleet]
    connected: set[str] = field(default_factory=set)  # fleets connected now
    observing: bool = False  # an `observe` step has run
    # (fleet, shadow name or None) whose devices run the `shadow` behaviour
    shadows: set[tuple[str, str | None]] = field(default_factory=set)

    def unknown_fleet(self, name: str | None, at: Loc) -> list[Problem]:
        if name is None or name in self.fleets:
            return []
        known = ", ".join(sorted(self.fleets)) or "none are defined"
        return [(at, f"no fleet named {name!r} (fleets: {known})")]


def template_problems(at: Loc, value: Any, names: set[str]) -> list[Problem]:
    """A string or a JSON-like structure of strings compiled as templates with `names`."""
    try:
        if isinstance(value, str):
            Template(value, names)
        else:
            StructTemplate(value, names)
    except TemplateError as e:
        return [(at, str(e))]
    return []


def check_semantics(scenario: Scenario) -> list[Problem]:
    problems: list[Problem] = []
    scope = Scope({f.name: f for f in scenario.fleets})
    first: dict[str, int] = {}
    for j, fleet in enumerate(scenario.fleets):
        if fleet.name in first:
            problems.append((("fleets", j, "name"), f"fleet name {fleet.name!r} is already used "
                                                    f"by fleets[{first[fleet.name]}]"))
        first.setdefault(fleet.name, j)
        loc: Loc = ("fleets", j, "thing_name")
        problems += template_problems(loc, fleet.thing_name, FLEET_NAMES)
        if fleet.count > 1 and "{index" not in fleet.thing_name:
            problems.append((loc, f"fleet {fleet.name!r} has {fleet.count} devices, so its "
                                  "thing_name must contain {index} to give each a unique name"))
    for i, step in enumerate(scenario.steps):
        base: Loc = ("steps", i, step.kind)
        fleet_name = getattr(step, "fleet", None)
        unknown = scope.unknown_fleet(fleet_name, (*base, "fleet"))
        if unknown:
            problems += unknown
            continue
        if step.needs_connection and fleet_name not in scope.connected:
            problems.append(((*base, "fleet"), f"fleet {fleet_name!r} is not connected yet: add "
                                               "a 'connect' step before this one"))
        problems += step.check(scope, base)
    return problems
