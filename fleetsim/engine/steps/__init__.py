"""Every kind of scenario step, registered once: one module per kind (model, checks, run
function, journal kinds with their undo), listed in `KINDS` below. See `base.py` for what a
kind module holds and docs/architecture.md for how to add one."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

from fleetsim.control.cleanup import JournalKind
from fleetsim.engine.steps.base import AnyStepKind, StepKind
from fleetsim.errors import ScenarioInvalid
from fleetsim.scenario import loader
from fleetsim.scenario.model import Scenario, StepBase, StepModels

# Every kind, by name: module `fleetsim.engine.steps.<name>` holds its `KIND`. A kind's module
# is imported when the kind is first looked up (a scenario's own kinds when it is parsed), so
# that a run holds only the kinds its scenario uses: all 38 with their pydantic models, the
# AWS error types and cryptography some of them import, cost the device process ~8 MB of its
# fixed RSS (issue 9). The order is the registry's: clean-up undoes journal kinds in it.
NAMES: tuple[str, ...] = (
    # before events: clean-up restores the events configuration last
    "search_index", "iot_logging",
    "events", "observe", "create_things", "create_keys_and_certificate",
    "create_certificate_from_csr", "provision", "create_policy", "attach_policy",
    "attach_thing_principal", "update_things", "connect", "publish",
    "telemetry", "subscribe", "shadow", "shadow_desired", "disconnect",
    "wait", "expect", "create_thing_group", "create_thing_type",
    "register_thing", "bulk_register", "create_provisioning_template",
    "fleet_provision", "add_to_thing_group", "create_job", "job_agent",
    "wait_job", "register_ca", "jit_connect", "expect_policy_outcomes",
    "filter_log_events", "deploy_function", "create_topic_rule",
    "create_package",
)


class Registry(Mapping[str, AnyStepKind]):
    """The step kinds by name, each module imported at its first look-up."""

    def __init__(self, names: tuple[str, ...]):
        if len(set(names)) != len(names):
            raise ValueError("a step kind is registered twice")
        self._names = names
        self._known = frozenset(names)

    def __getitem__(self, name: str) -> AnyStepKind:
        if name not in self._known:
            raise KeyError(name)
        kind: AnyStepKind = importlib.import_module(f"{__name__}.{name}").KIND
        if kind.name != name:
            raise ValueError(f"module {__name__}.{name} registers step kind {kind.name!r}")
        return kind

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class ModelsByKind(Mapping[str, type[StepBase]]):
    """The step models by kind, as the loader asks for them: the names without importing."""

    def __getitem__(self, name: str) -> type[StepBase]:
        return KINDS[name].model

    def __iter__(self) -> Iterator[str]:
        return iter(KINDS)

    def __len__(self) -> int:
        return len(KINDS)


KINDS: Mapping[str, AnyStepKind] = Registry(NAMES)
STEP_MODELS: StepModels = ModelsByKind()


@cache
def journal_kinds() -> tuple[JournalKind, ...]:
    """Every journal entry kind a step records, each once (clean-up undoes them phase by
    phase): imports every step kind."""
    return tuple({j.name: j for k in KINDS.values() for j in k.journals}.values())


def __getattr__(name: str) -> tuple[JournalKind, ...]:
    """`JOURNAL_KINDS`: `journal_kinds()`, computed when first asked for."""
    if name == "JOURNAL_KINDS":
        return journal_kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_scenario(path: Path, devices: int | None = None) -> Scenario:
    """Parse and validate a scenario file with the registered step kinds; files the steps
    name (`file_fields`) are made relative to the scenario's folder and must be readable."""
    scenario = loader.load_scenario(path, STEP_MODELS, devices)
    return resolve_files(scenario, path)


def resolve_files(scenario: Scenario, path: Path) -> Scenario:
    base, steps, problems = path.resolve().parent, [], []
    for k, step in enumerate(scenario.steps):
        update: dict[str, str] = {}
        for name in getattr(step, "file_fields", ()):
            value = getattr(step, name)
            if value is None:
                continue
            file = base / value
            if not file.is_file():
                problems.append(f"{path}: steps.{k}.{step.kind}.{name}: {value} is not a "
                                f"readable file (looked for {file})")
            update[name] = str(file)
        for name in getattr(step, "dir_fields", ()):  # folders a step may make: not checked
            update[name] = str(base / getattr(step, name))
        steps.append(step.model_copy(update=update) if update else step)
    if problems:
        raise ScenarioInvalid(problems)
    return scenario.model_copy(update={"steps": steps})


__all__ = ["KINDS", "NAMES", "STEP_MODELS", "StepKind", "journal_kinds", "load_scenario"]
