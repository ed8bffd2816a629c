"""The job agent behaviour over a fake session and a double of the Jobs device API
(tests/jobs_double.py): both flows, every outcome, expectedVersion, what it measures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fleetsim.device.behaviours.job_agent import (
    NOTIFY_NEXT_SUBSCRIPTIONS,
    WORKSHOP_SUBSCRIPTIONS,
    JobAgent,
    JobPlan,
    document_of,
    uptime,
)
from fleetsim.device.behaviours.jobs_mqtt import JobRejected, JobsClient
from fleetsim.metrics import Metrics
from tests.fakes import FakeSession
from tests.jobs_double import FakeExecution, FakeJobsService

PREFIX = "$aws/things/t1/jobs"
SUCCEED = JobPlan()
WORKSHOP_DOC = {"operation": "sys-info", "sys-info": "uptime", "topic": "sys/info"}


def agent(jobs: FakeJobsService, plan: JobPlan | dict[str, JobPlan] = SUCCEED,
          flow: Any = "notify-next", metrics: Metrics | None = None,
          **kw: Any) -> tuple[JobAgent, FakeSession]:
    session = FakeSession("t1", jobs)
    plans = plan if isinstance(plan, dict) else None
    a = JobAgent(session, "t1", metrics or Metrics(),
                 (lambda j: plans[j]) if plans else (lambda j: plan),  # type: ignore[arg-type]
                 flow=flow, poll=0.01, timeout=1, **kw)
    session.on_message(lambda m: a.on_message(m.topic, m.payload))
    return a, session


async def until(condition: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def one_job_in_progress() -> tuple[FakeJobsService, FakeExecution, JobAgent, Metrics]:
    """A started agent whose one job (j1, 0.05 s of work) is IN_PROGRESS."""
    jobs = FakeJobsService()
    metrics = Metrics()
    execution = jobs.queue("t1", "j1", {})
    a, _ = agent(jobs, JobPlan(seconds=0.05), metrics=metrics)
    await a.start()
    await until(lambda: execution.status == "IN_PROGRESS")
    return jobs, execution, a, metrics


def updates(jobs: FakeJobsService, job: str = "j1") -> list[dict[str, Any]]:
    return [p for t, p in jobs.requests if t == f"{PREFIX}/{job}/update"]


def count(metrics: Metrics, op: str) -> int:
    return metrics.histogram(op).count


async def test_workshop_flow_as_the_lab_agent() -> None:
    jobs = FakeJobsService()
    metrics = Metrics()
    a, session = agent(jobs, flow="workshop", metrics=metrics)
    jobs.queue("t1", "j1", WORKSHOP_DOC)
    await a.start()
    await until(lambda: a.finished.get("j1") == "SUCCEEDED")
    a.close()
    assert session.subscriptions == [f"{PREFIX}/{s}" for s in WORKSHOP_SUBSCRIPTIONS]
    topics = [t for t, _, _ in session.published]
    # GetPendingJobExecutions, DescribeJobExecution, IN_PROGRESS, the uptime, SUCCEEDED
    assert topics[:5] == [f"{PREFIX}/get", f"{PREFIX}/j1/get", f"{PREFIX}/j1/update",
                          "sys/info", f"{PREFIX}/j1/update"]
    (_, uptime_msg, _) = session.published[3]
    assert uptime_msg["thing-id"] == "t1" and ":" in uptime_msg["uptime"]
    assert session.published[1][1]["includeJobDocument"] is True
    first, last = updates(jobs)
    assert first["status"] == "IN_PROGRESS" and first["expectedVersion"] == 1
    assert last["status"] == "SUCCEEDED" and last["expectedVersion"] == 2
    assert jobs.executions[("t1", "j1")].history == ["IN_PROGRESS", "SUCCEEDED"]
    assert count(metrics, "jobs.get") >= 1 and count(metrics, "jobs.describe") == 1
    assert count(metrics, "jobs.update") == 2 and count(metrics, "jobs.execution") == 1
    assert metrics.counters["jobs.outcome.succeed"] == 1


async def test_notify_next_flow_starts_next_and_waits_for_notifications() -> None:
    jobs = FakeJobsService()
    metrics = Metrics()
    a, session = agent(jobs, JobPlan(progress=2), metrics=metrics, step_timeout=5)
    await a.start()
    assert session.subscriptions == [f"{PREFIX}/{s}" for s in NOTIFY_NEXT_SUBSCRIPTIONS]
    await until(lambda: any(t == f"{PREFIX}/start-next" for t, _ in jobs.requests))
    assert jobs.requests[0][1]["stepTimeoutInMinutes"] == 5
    jobs.queue("t1", "j1", {"operation": "firmware"})  # a notify-next wakes the agent
    await until(lambda: a.finished.get("j1") == "SUCCEEDED")
    jobs.queue("t1", "j2", {"operation": "firmware"})
    await until(lambda: a.finished.get("j2") == "SUCCEEDED")
    a.close()
    sent = updates(jobs)
    assert [u["status"] for u in sent] == ["IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]
    assert [u.get("statusDetails") for u in sent] == [
        {"progress": "1/2"}, {"progress": "2/2"}, {"result": "ok"}]
    assert [u["expectedVersion"] for u in sent] == [2, 3, 4]  # start-next made it 2
    assert metrics.counters["jobs.outcome.succeed"] == 2


@pytest.mark.parametrize(("outcome", "history"), [
    ("fail", ["IN_PROGRESS", "FAILED"]), ("reject", ["IN_PROGRESS", "REJECTED"])])
async def test_fail_and_reject(outcome: Any, history: list[str]) -> None:
    jobs = FakeJobsService()
    metrics = Metrics()
    jobs.queue("t1", "j1", {})
    a, _ = agent(jobs, JobPlan(outcome), metrics=metrics)
    await a.start()
    await until(lambda: "j1" in a.finished)
    a.close()
    assert jobs.executions[("t1", "j1")].history == history
    assert metrics.counters[f"jobs.outcome.{outcome}"] == 1


@pytest.mark.parametrize("flow", ["notify-next", "workshop"])
async def test_a_retried_execution_is_run_again(flow: Any) -> None:
    """The service queues a FAILED execution again: the agent runs the new attempt."""
    jobs = FakeJobsService()
    metrics = Metrics()
    jobs.queue("t1", "j1", {})
    a, _ = agent(jobs, JobPlan("fail"), flow=flow, metrics=metrics)
    await a.start()
    await until(lambda: "j1" in a.finished)
    jobs.retry("t1", "j1")
    await until(lambda: jobs.executions[("t1", "j1")].history.count("FAILED") == 2)
    a.close()
    assert jobs.executions[("t1", "j1")].history == [
        "IN_PROGRESS", "FAILED", "QUEUED", "IN_PROGRESS", "FAILED"]
    assert metrics.counters["jobs.retried"] == 1 and metrics.counters["jobs.outcome.fail"] == 2
    assert a.finished == {"j1": "FAILED"}


async def test_workshop_reject_never_goes_in_progress() -> None:
    jobs = FakeJobsService()
    jobs.queue("t1", "j1", WORKSHOP_DOC)
    a, session = agent(jobs, JobPlan("reject"), flow="workshop")
    await a.start()
    await until(lambda: "j1" in a.finished)
    a.close()
    assert jobs.executions[("t1", "j1")].history == ["REJECTED"]
    assert all(t != "sys/info" for t, _, _ in session.published)


async def test_timeout_goes_in_progress_and_never_answers_again() -> None:
    jobs = FakeJobsService()
    metrics = Metrics()
    jobs.queue("t1", "j1", {})
    a, _ = agent(jobs, {"j1": JobPlan("timeout"), "j2": JobPlan()}, metrics=metrics,
                 step_timeout=1)
    await a.start()
    await until(lambda: "j1" in a.abandoned)
    jobs.queue("t1", "j2", {})  # the next stays j1 (IN_PROGRESS first): no notify-next
    await asyncio.sleep(0.05)
    assert jobs.executions[("t1", "j1")].history == ["IN_PROGRESS"]
    # The service times j1 out (the step timer): j2 becomes next and is run.
    before = jobs._next("t1")
    jobs.executions[("t1", "j1")].set("TIMED_OUT", None)
    jobs._notify_if_changed("t1", before)
    await until(lambda: a.finished.get("j2") == "SUCCEEDED")
    a.close()
    assert "j1" not in a.finished and metrics.counters["jobs.outcome.timeout"] == 1


@pytest.mark.parametrize("flow", ["workshop", "notify-next"])
async def test_disconnect_mid_job_then_resume(flow: Any) -> None:
    jobs = FakeJobsService()
    metrics = Metrics()
    jobs.queue("t1", "j1", WORKSHOP_DOC)
    a, session = agent(jobs, JobPlan("disconnect", seconds=0.02, progress=3), flow=flow,
                       metrics=metrics)
    await a.start()
    await until(lambda: a.finished.get("j1") == "SUCCEEDED")
    a.close()
    assert session.drops == 1
    assert metrics.counters["jobs.dropped"] == 1 and metrics.counters["jobs.resumed"] == 1
    history = jobs.executions[("t1", "j1")].history
    # IN_PROGRESS once at the start (no second start), progress updates, then SUCCEEDED
    assert history[-1] == "SUCCEEDED" and history.count("SUCCEEDED") == 1
    assert metrics.counters["jobs.outcome.disconnect"] == 1


async def test_version_mismatch_adopts_the_current_version_and_retries_once() -> None:
    jobs, execution, a, metrics = await one_job_in_progress()
    execution.version += 5  # someone else updated it meanwhile
    await until(lambda: a.finished.get("j1") == "SUCCEEDED")
    a.close()
    assert metrics.op_errors[("", "jobs.update")] == {"VersionMismatch": 1}
    assert updates(jobs)[-1]["expectedVersion"] == execution.version - 1


async def test_an_update_of_a_canceled_execution_is_rejected_and_not_retried() -> None:
    jobs, _, a, metrics = await one_job_in_progress()
    jobs.cancel("t1", "j1")
    await until(lambda: "j1" in a.finished)
    await asyncio.sleep(0.05)
    a.close()
    assert a.finished["j1"] == "CANCELED"
    # The cancellation moved its version too: either answer ends it, without a retry.
    assert sum(metrics.op_errors[("", "jobs.update")].values()) == 1
    assert len([u for u in updates(jobs) if u["status"] == "SUCCEEDED"]) == 1


async def test_a_rejection_carries_code_and_state_and_others_replies_are_ignored() -> None:
    session = FakeSession("t1")
    metrics = Metrics()
    client = JobsClient(session, "t1", metrics)
    session.on_message(lambda m: client.on_message(m.topic, m.payload))
    request = asyncio.ensure_future(client.request("jobs.update", "j1/update",
                                                   {"status": "SUCCEEDED"}, 1))
    await asyncio.sleep(0)
    (_, body, _), = session.published
    session.deliver(f"{PREFIX}/j1/update/accepted", {"clientToken": "not-ours"})
    session.deliver(f"{PREFIX}/j1/update/rejected", {
        "code": "InvalidStateTransition", "message": "no", "clientToken": body["clientToken"],
        "executionState": {"status": "SUCCEEDED", "versionNumber": 3}})
    with pytest.raises(JobRejected) as caught:
        await request
    assert caught.value.kind == "InvalidStateTransition"
    assert caught.value.execution_state == {"status": "SUCCEEDED", "versionNumber": 3}


async def test_no_answer_is_a_timeout() -> None:
    jobs = FakeJobsService()
    jobs.silent.add("get")
    metrics = Metrics()
    client = JobsClient(FakeSession("t1", jobs), "t1", metrics)
    with pytest.raises(TimeoutError, match="jobs/get/accepted"):
        await client.request("jobs.get", "get", {}, 0)
    assert metrics.op_errors[("", "jobs.get")] == {"timeout": 1}


def test_document_and_uptime() -> None:
    assert document_of({"jobDocument": '{"operation": "x"}'}) == {"operation": "x"}
    assert document_of({"jobDocument": {"operation": "x"}}) == {"operation": "x"}
    assert document_of({"jobDocument": "not json"}) == {} and document_of({}) == {}
    assert uptime(3661.5) == "1:01:01.500000"
