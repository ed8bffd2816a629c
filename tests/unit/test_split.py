"""Where a run splits (API steps in a child, device steps in the run's process), and what a
forked child hands back: its result, or its error as the run's own process would raise it."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from fleetsim.control.errors import ApiError
from fleetsim.engine.forked import ChildDied, in_child
from fleetsim.engine.split import split_point
from fleetsim.engine.steps import KINDS
from fleetsim.errors import UserError
from fleetsim.scenario.model import StepBase


def steps(*kinds: str) -> list[StepBase]:
    """Steps of these kinds (only their kind matters here)."""
    return [KINDS[k].model.model_construct(kind=k) for k in kinds]


def test_api_steps_then_device_steps_split_at_the_first_device_step() -> None:
    assert split_point(steps("create_policy", "provision", "connect", "telemetry",
                             "disconnect")) == 2
    assert split_point(steps("connect", "wait", "disconnect")) == 0
    assert split_point(steps("create_policy", "provision")) == 2


def test_interleaved_steps_or_a_step_of_neither_phase_run_in_one_process() -> None:
    assert split_point(steps("provision", "connect", "create_policy")) is None
    assert split_point(steps("observe", "provision", "connect")) is None
    assert split_point(steps("provision", "connect", "observe")) is None


def test_device_steps_are_kinds_that_never_call_the_aws_api() -> None:
    device = {name for name, kind in KINDS.items() if kind.phase == "device"}
    assert device == {"connect", "disconnect", "wait", "telemetry", "publish", "subscribe"}
    assert all(not KINDS[name].journals for name in device)


def test_a_child_hands_back_its_result_and_runs_elsewhere() -> None:
    assert in_child(lambda: ("done", os.getpid())) != ("done", os.getpid())
    assert in_child(lambda: sorted(m for m in sys.modules if m == "tomllib_never")) == []


def _fail_api() -> None:
    raise ApiError("CreateThing", "InvalidRequestException", "bad name", "thing x")


def test_a_user_error_whose_init_takes_more_comes_back_with_its_sentence() -> None:
    with pytest.raises(UserError, match="CreateThing for thing x failed: "
                                        "InvalidRequestException: bad name"):
        in_child(_fail_api)


def _exit_130() -> None:
    raise SystemExit(130)


def test_exit_in_the_child_exits_the_parent_with_its_code() -> None:
    with pytest.raises(SystemExit) as exited:
        in_child(_exit_130)
    assert exited.value.code == 130


def test_a_child_killed_before_it_answers_is_reported() -> None:
    with pytest.raises(ChildDied, match="SIGKILL"):
        in_child(lambda: os.kill(os.getpid(), signal.SIGKILL))
