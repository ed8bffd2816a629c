"""The jobs service over a real database with an injected clock: rollout rate, timeouts, step
timeouts, retries, notifications and timers that survive a restart, without sleeping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetsim.localcore.db import Database
from fleetsim.localcore.features.jobs import states as st
from fleetsim.localcore.features.jobs.service import JobsService, Update
from fleetsim.localcore.scope import Scope

SCOPE = Scope("123456789012", "us-east-1")
DOC = json.dumps({"operation": "sys-info"})


class Registry:
    def __init__(self, things: list[str]):
        self.things = things

    def require_thing(self, scope: Scope, name: str) -> None:
        assert name in self.things

    def things_in_group(self, scope: Scope, group: str, recursive: bool, after: str,
                        limit: int) -> tuple[list[str], str | None]:
        return list(self.things), None

    def group_chain_of_thing(self, scope: Scope, thing: str) -> list[str]:
        return ["fleet"]


class Services:
    def __init__(self, registry: Registry):
        self.registry = registry

    def get(self, name: str) -> Any:
        raise LookupError(name)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    def __init__(self, path: Path, things: list[str]):
        self.db = Database(path / "state.db", "us-east-1")
        self.clock = Clock()
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.announced: list[object] = []
        self.registry = Registry(things)
        self.service = self.open()

    def open(self) -> JobsService:
        return JobsService(self.db, Services(self.registry), "us-east-1",
                           lambda t, p: self.published.append((t, json.loads(p))),
                           self.announced.append, lambda: "http://127.0.0.1:1", self.clock)

    def advance(self, seconds: float, step: float = 1.0) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + step)
            self.service.timers.run_due(self.clock.now)

    def count(self, job_id: str) -> int:
        return sum(self.service.describe_job(SCOPE, job_id)[1].values())


def create(world: World, job_id: str, **extra: Any) -> None:
    world.service.create_job(SCOPE, {"jobId": job_id, "document": DOC,
                                     "targets": [SCOPE.arn("thinggroup", "fleet")], **extra})


def test_rollout_creates_executions_at_maximum_per_minute(tmp_path: Path) -> None:
    world = World(tmp_path, [f"t{i:04d}" for i in range(2500)])
    create(world, "roll", jobExecutionsRolloutConfig={"maximumPerMinute": 1000})
    assert world.count("roll") == 1
    world.advance(60)
    assert world.count("roll") == 1001
    world.advance(60)
    assert world.count("roll") == 2001
    world.advance(60)
    assert world.count("roll") == 2500
    assert world.service.timers.next_at() is None  # every target notified: no timer left


def test_timers_survive_a_restart(tmp_path: Path) -> None:
    world = World(tmp_path, [f"t{i}" for i in range(10)])
    create(world, "slow", jobExecutionsRolloutConfig={"maximumPerMinute": 2})
    world.advance(30)
    assert world.count("slow") == 2
    world.service = world.open()  # local core restarted: nothing armed until resume
    assert world.service.timers.next_at() is None
    world.service.resume()
    world.advance(60)
    assert world.count("slow") == 4


def test_in_progress_timeout_then_retry_once(tmp_path: Path) -> None:
    world = World(tmp_path, ["dev"])
    create(world, "t", timeoutConfig={"inProgressTimeoutInMinutes": 2},
           jobExecutionsRetryConfig={"criteriaList": [
               {"failureType": "TIMED_OUT", "numberOfRetries": 1}]})
    e = world.service.start_next("us-east-1", "dev", None, 10)  # step 10 min > 2 min timeout
    assert e is not None and e.timeout_at == world.clock.now + 120
    world.advance(119)
    assert world.service.describe_execution(SCOPE, "t", "dev", None).status == st.IN_PROGRESS
    world.advance(1)
    e = world.service.describe_execution(SCOPE, "t", "dev", None)
    assert (e.status, e.retry_attempt) == (st.QUEUED, 1)
    world.service.start_next("us-east-1", "dev", None, None)
    world.advance(120)
    assert world.service.describe_execution(SCOPE, "t", "dev", None).status == st.TIMED_OUT
    job, counts = world.service.describe_job(SCOPE, "t")
    assert job.status == st.JOB_COMPLETED and counts == {st.TIMED_OUT: 1}
    operations = [getattr(a, "operation", None) for a in world.announced]
    assert operations.count("timed_out") == 2 and "completed" in operations


def test_a_step_timeout_is_reset_by_an_update_and_cancelled_by_minus_one(tmp_path: Path
                                                                         ) -> None:
    world = World(tmp_path, ["dev"])
    create(world, "s")
    world.service.start_next("us-east-1", "dev", None, 1)
    world.advance(50)
    world.service.update("us-east-1", "dev", "s", Update("IN_PROGRESS", step_timeout=1))
    world.advance(50)
    assert world.service.describe_execution(SCOPE, "s", "dev", None).status == st.IN_PROGRESS
    world.service.update("us-east-1", "dev", "s", Update("IN_PROGRESS", step_timeout=-1))
    world.advance(600)
    assert world.service.describe_execution(SCOPE, "s", "dev", None).status == st.IN_PROGRESS


def test_notify_always_and_notify_next_only_when_the_next_execution_changes(
        tmp_path: Path) -> None:
    world = World(tmp_path, ["dev"])
    create(world, "a")
    world.clock.now += 1
    create(world, "b")
    topics = [t.rpartition("/")[2] for t, _ in world.published]
    assert topics == ["notify", "notify-next", "notify"]  # b queued behind a: next unchanged
    world.published.clear()
    world.service.update("us-east-1", "dev", "a", Update("IN_PROGRESS",
                                                          status_details={"p": "1"}))
    world.service.update("us-east-1", "dev", "a", Update("IN_PROGRESS",
                                                          status_details={"p": "2"}))
    world.service.update("us-east-1", "dev", "a", Update("SUCCEEDED"))
    nexts = [p for t, p in world.published if t.endswith("notify-next")]
    assert [n["execution"]["jobId"] for n in nexts] == ["a", "b"]
    assert nexts[0]["execution"]["status"] == st.IN_PROGRESS
    assert nexts[1]["execution"]["jobDocument"] == {"operation": "sys-info"}


def test_version_mismatch_and_terminal_updates_are_refused(tmp_path: Path) -> None:
    from fleetsim.localcore.features.jobs.service import DeviceError
    world = World(tmp_path, ["dev"])
    create(world, "v")
    with pytest.raises(DeviceError) as e:
        world.service.update("us-east-1", "dev", "v", Update("IN_PROGRESS",
                                                              expected_version=7))
    assert e.value.code == "VersionMismatch" and e.value.execution is not None
    world.service.update("us-east-1", "dev", "v", Update("REJECTED", expected_version=1))
    with pytest.raises(DeviceError) as e:
        world.service.update("us-east-1", "dev", "v", Update("SUCCEEDED"))
    assert e.value.code == "InvalidStateTransition"


def _iso(t: float) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M")


def test_a_scheduled_job_starts_at_its_start_time_and_stops_its_rollout_at_its_end(
        tmp_path: Path) -> None:
    world = World(tmp_path, [f"t{i}" for i in range(10)])
    start = (world.clock.now // 60 + 2) * 60  # a whole minute, 1-2 minutes ahead
    create(world, "later", jobExecutionsRolloutConfig={"maximumPerMinute": 2},
           schedulingConfig={"startTime": _iso(start), "endTime": _iso(start + 180)})
    assert world.service.describe_job(SCOPE, "later")[0].status == st.JOB_SCHEDULED
    world.advance(start - world.clock.now - 1)
    assert world.count("later") == 0
    world.advance(1)
    job, _ = world.service.describe_job(SCOPE, "later")
    assert job.status == st.JOB_IN_PROGRESS and world.count("later") == 1
    # The end (STOP_ROLLOUT, 3 minutes in) stops the rollout: 1 at the start, then one each
    # 30 s; the release due at the end's very instant does not happen.
    world.advance(3600)
    assert world.count("later") == 6
    for i in range(6):
        world.service.update("us-east-1", f"t{i}", "later", Update("SUCCEEDED"))
    job, counts = world.service.describe_job(SCOPE, "later")
    assert job.status == st.JOB_COMPLETED and counts == {st.SUCCEEDED: 6}


def test_the_end_of_a_schedule_cancels_when_told_to(tmp_path: Path) -> None:
    world = World(tmp_path, [f"t{i}" for i in range(10)])
    end = (world.clock.now // 60 + 2) * 60
    create(world, "cut", jobExecutionsRolloutConfig={"maximumPerMinute": 1},
           schedulingConfig={"endTime": _iso(end), "endBehavior": "CANCEL"})
    world.advance(end - world.clock.now + 1)
    job, counts = world.service.describe_job(SCOPE, "cut")
    assert job.status == st.JOB_CANCELED and counts == {st.CANCELED: 2}
