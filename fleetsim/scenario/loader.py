"""Load a scenario file and report every problem as `FILE:LINE:COL: what is wrong`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleetsim.errors import ScenarioInvalid
from fleetsim.scenario.model import (
    Scenario,
    StepBase,
    StepModels,
    StepShapeError,
    scenario_model,
    step_models,
    unwrap_step,
)
from fleetsim.scenario.semantics import check_semantics
from fleetsim.scenario.yaml_positions import DocumentTooLarge, Position, YamlDocument

Loc = tuple[str | int, ...]
MAX_FILE_BYTES = 256 * 1024  # a large scenario is a few kilobytes


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """The file as UTF-8 text; ScenarioInvalid (at FILE:1:1) when it cannot be read, is
    larger than `limit` bytes, or is not UTF-8."""
    label = str(path)
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ScenarioInvalid([f"{label}:1:1: cannot read the scenario file "
                               f"({e.strerror or e})"]) from e
    if len(data) > limit:
        raise ScenarioInvalid([f"{label}:1:1: the file is larger than {limit // 1024} KiB, "
                               "the most a scenario may be"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ScenarioInvalid([f"{label}:1:1: the file is not UTF-8 text (byte "
                               f"0x{data[e.start]:02x} at line {line}, column {column}); "
                               "save it as UTF-8"]) from e


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


def _models_used(data: Any, models: StepModels) -> tuple[type[StepBase], ...]:
    """The models of the kinds the (unwrapped) steps use: a scenario is validated as the
    union of its own kinds (errors are located the same way), so that a run imports only
    the step kinds it uses. At least one (with no step to validate, any), so that the union
    has a member."""
    steps = data.get("steps") if isinstance(data, dict) else None
    kinds = ({s["kind"] for s in steps} if isinstance(steps, list) and steps
             else {next(iter(models))})
    return step_models(models[kind] for kind in kinds)


def _original_loc(loc: Loc, kept: list[int]) -> Loc:
    if len(loc) > 1 and loc[0] == "steps" and isinstance(loc[1], int) and loc[1] < len(kept):
        return ("steps", kept[loc[1]], *loc[2:])
    return loc


def parse_document(path: Path) -> YamlDocument:
    """The file's YAML with positions; ScenarioInvalid at FILE:LINE:COL when it is not YAML."""
    label = str(path)
    text = read_text(path)
    try:
        return YamlDocument(text)
    except DocumentTooLarge as e:
        mark = e.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ScenarioInvalid([f"{label}:{line}:{col}: refused: {e.problem}"]) from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ScenarioInvalid([f"{label}:{line}:{col}: not valid YAML: {e.problem}"]) from e
    except yaml.YAMLError as e:  # e.g. a control character (a ReaderError, without a mark)
        raise ScenarioInvalid([f"{label}:1:1: not valid YAML: {e}"]) from e


Located = tuple[int, int, str]  # line, column, "FILE:LINE:COL: what is wrong"


def located(label: str, pos: Position, loc: Loc, msg: str) -> Located:
    """A problem at `pos` of file `label`, about the value at `loc` (dotted in the message)."""
    where = f"{_dotted(loc)}: " if loc else ""
    return pos.line, pos.column, f"{label}:{pos.line}:{pos.column}: {where}{msg}"


def validation_problems(label: str, doc: YamlDocument, err: ValidationError,
                        kept: list[int] | None = None, skip_steps: bool = False
                        ) -> list[Located]:
    """pydantic's errors, each at the position of what it is about."""
    problems = []
    for e in err.errors():
        if skip_steps and tuple(e["loc"]) == ("steps",):
            continue  # "at least 1 step" when every step was refused: said elsewhere
        loc, msg, at_key = _pydantic_message(e)
        loc = _original_loc(loc, kept or [])
        pos = doc.key_position(loc) if at_key else doc.position(loc)
        problems.append(located(label, pos, loc, msg))
    return problems


def load_scenario(path: Path, models: StepModels, devices: int | None = None,
                  doc: YamlDocument | None = None) -> Scenario:
    """Parse and validate with the step kinds `models` (`fleetsim.engine.steps.load_scenario`
    passes the registered ones); raises ScenarioInvalid listing every problem with its
    position. `doc`: the file already parsed."""
    label = str(path)
    doc = doc if doc is not None else parse_document(path)

    def at(pos: Position, loc: Loc, msg: str) -> Located:
        return located(label, pos, loc, msg)

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
        scenario = scenario_model(_models_used(data, models)).model_validate(data)
    except ValidationError as e:
        problems += validation_problems(label, doc, e, kept, skip_steps=bool(shape_problems))
    if scenario is not None and not shape_problems:
        for loc, msg in check_semantics(scenario):
            problems.append(at(doc.position(loc), loc, msg))
    if problems:
        raise ScenarioInvalid([p[2] for p in sorted(set(problems))])
    assert scenario is not None
    return scenario
