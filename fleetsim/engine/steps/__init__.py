"""Every kind of scenario step, registered once: one module per kind (model, checks, run
function, journal kinds with their undo), listed in `KINDS` below. See `base.py` for what a
kind module holds and docs/architecture.md for how to add one."""

from __future__ import annotations

from pathlib import Path

from fleetsim.control.cleanup import JournalKind
from fleetsim.engine.steps import (
    add_to_thing_group,
    attach_policy,
    attach_thing_principal,
    bulk_register,
    connect,
    create_certificate_from_csr,
    create_job,
    create_keys_and_certificate,
    create_package,
    create_policy,
    create_provisioning_template,
    create_thing_group,
    create_thing_type,
    create_things,
    create_topic_rule,
    deploy_function,
    disconnect,
    events,
    expect,
    expect_policy_outcomes,
    filter_log_events,
    fleet_provision,
    iot_logging,
    jit_connect,
    job_agent,
    observe,
    provision,
    publish,
    register_ca,
    register_thing,
    search_index,
    shadow,
    shadow_desired,
    subscribe,
    telemetry,
    update_things,
    wait,
    wait_job,
)
from fleetsim.engine.steps.base import AnyStepKind, StepKind
from fleetsim.errors import ScenarioInvalid
from fleetsim.scenario import loader
from fleetsim.scenario.model import Scenario, StepModels, step_models


def _registry(*kinds: AnyStepKind) -> dict[str, AnyStepKind]:
    by_name: dict[str, AnyStepKind] = {}
    for kind in kinds:
        if kind.name in by_name:
            raise ValueError(f"step kind {kind.name!r} is registered twice")
        by_name[kind.name] = kind
    return by_name


KINDS: dict[str, AnyStepKind] = _registry(
    # before events: clean-up restores the events configuration last
    search_index.KIND, iot_logging.KIND,
    events.KIND, observe.KIND, create_things.KIND, create_keys_and_certificate.KIND,
    create_certificate_from_csr.KIND, provision.KIND, create_policy.KIND, attach_policy.KIND,
    attach_thing_principal.KIND, update_things.KIND, connect.KIND, publish.KIND,
    telemetry.KIND, subscribe.KIND, shadow.KIND, shadow_desired.KIND, disconnect.KIND,
    wait.KIND, expect.KIND, create_thing_group.KIND, create_thing_type.KIND,
    register_thing.KIND, bulk_register.KIND, create_provisioning_template.KIND,
    fleet_provision.KIND, add_to_thing_group.KIND, create_job.KIND, job_agent.KIND,
    wait_job.KIND, register_ca.KIND, jit_connect.KIND, expect_policy_outcomes.KIND,
    filter_log_events.KIND, deploy_function.KIND, create_topic_rule.KIND,
    create_package.KIND,
)
STEP_MODELS: StepModels = step_models(k.model for k in KINDS.values())
# Every journal entry kind a step records, each once (clean-up undoes them phase by phase).
JOURNAL_KINDS: tuple[JournalKind, ...] = tuple(
    {j.name: j for k in KINDS.values() for j in k.journals}.values())


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


__all__ = ["JOURNAL_KINDS", "KINDS", "STEP_MODELS", "StepKind", "load_scenario"]
