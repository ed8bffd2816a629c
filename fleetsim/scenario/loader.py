"""Load a scenario file and report every problem as `FILE:LINE:COL: what is wrong`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleetsim.errors import ScenarioInvalid
from fleetsim.scenario.model import (
    Scenario,
    StepModels,
    StepShapeError,
    scenario_model,
    unwrap_step,
)
from fleetsim.scenario.semantics import check_semantics
from fleetsim.scenario.yaml_positions import Position, YamlDocument

Loc = tuple[str | int, ...]


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_message(err: Any) -> tuple[Loc, str, bool]:
    """(location, message, points-at-key) for one pydantic error, phrased for a person."""
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return loc, f"unknown key {loc[-1]!r}", True
    if kind == "missing":
        return loc[:-1], f"missing required key {loc[-1]!r}", False
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return loc, msg, False


def _step_shape_errors(data: Any, models: StepModels
                       ) -> tuple[Any, list[int], list[tuple[Loc, str]]]:
    """Unwrap `{kind: options}` steps; returns the data with well-shaped steps only, the
    original index of each kept step, and the problems with the others."""
    problems: list[tuple[Loc, str]] = []
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        return data, [], problems
    steps, kept = [], []
    for i, raw in enumerate(data["steps"]):
        try:
            steps.append(unwrap_step(raw, models))
            kept.append(i)
        except StepShapeError as e:
            problems.append((("steps", i), str(e)))
    return {**data, "steps": steps}, kept, problems


def _original_loc(loc: Loc, kept: list[int]) -> Loc:
    if len(loc) > 1 and loc[0] == "steps" and isinstance(loc[1], int) and loc[1] < len(kept):
        return ("steps", kept[loc[1]], *loc[2:])
    return loc


def load_scenario(path: Path, models: StepModels, devices: int | None = None) -> Scenario:
    """Parse and validate with the step kinds `models` (`fleetsim.engine.steps.load_scenario`
    passes the registered ones); raises ScenarioInvalid listing every problem with its
    position."""
    label = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ScenarioInvalid([f"{label}:1:1: cannot read the scenario file ({e.strerror})"]) from e
    try:
        doc = YamlDocument(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ScenarioInvalid([f"{label}:{line}:{col}: not valid YAML: {e.problem}"]) from e

    def at(pos: Position, loc: Loc, msg: str) -> tuple[int, int, str]:
        where = f"{_dotted(loc)}: " if loc else ""
        return pos.line, pos.column, f"{label}:{pos.line}:{pos.column}: {where}{msg}"

    problems = [at(pos, loc, f"key {loc[-1]!r} is written twice")
                for loc, pos in doc.duplicate_keys()]
    if not isinstance(doc.data, dict):
        problems.append(at(doc.position(()), (), "a scenario is a mapping with at least 'name' "
                           "and 'steps'"))
        raise ScenarioInvalid([p[2] for p in sorted(problems)])
    data, kept, shape_problems = _step_shape_errors(doc.data, models)
    for loc, msg in shape_problems:
        problems.append(at(doc.position(loc), loc, msg))
    if devices is not None and isinstance(data.get("fleets"), list):
        data["fleets"] = [{**f, "count": devices} if isinstance(f, dict) else f
                          for f in data["fleets"]]
    scenario = None
    try:
        scenario = scenario_model(models).model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc, msg, at_key = _pydantic_message(err)
            loc = _original_loc(loc, kept)
            pos = doc.key_position(loc) if at_key else doc.position(loc)
            problems.append(at(pos, loc, msg))
    if scenario is not None and not shape_problems:
        for loc, msg in check_semantics(scenario):
            problems.append(at(doc.position(loc), loc, msg))
    if problems:
        raise ScenarioInvalid([p[2] for p in sorted(set(problems))])
    assert scenario is not None
    return scenario

