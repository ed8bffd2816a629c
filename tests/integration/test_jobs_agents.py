"""IoT Jobs end to end with fleetsim's own devices: the job agent behaviour
(`fleetsim.device.behaviours.job_agent`) on `DeviceSession`s over MQTT/TLS, and the two jobs
scenarios through `fleetsim run`, against a real local core whose minute of rollout rates and
timeouts lasts 2 s (`FLEETSIM_LOCAL_JOBS_MINUTE_S`). Each test asserts the statuses the
devices saw (what the agent finished, its counters) and the ones the control plane reports
(describe-job, describe-job-execution, list-job-executions-for-job) against each other.
`test_jobs.py` runs the same flows by hand with a stock MQTT client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from fleetsim.device import DeviceSession, ReconnectPolicy
from fleetsim.device.behaviours.job_agent import Flow, JobAgent, JobPlan, Outcome
from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.metrics import Metrics
from tests.conftest import start_core
from tests.helpers import aws_client
from tests.integration.test_device_session import Provisioner
from tests.integration.test_provisioning_scenarios import (
    SCENARIOS,
    checks,
    counters,
    ops,
    run,
)

pytestmark = pytest.mark.timeout(120)
ARN = "arn:aws:iot:us-east-1:123456789012"
MINUTE_S = "2"
MINUTE_ENV = {"FLEETSIM_LOCAL_JOBS_MINUTE_S": MINUTE_S}
DOCUMENT = '{"operation": "firmware-update", "version": "2.0.0"}'
FAST = ReconnectPolicy(base=0.05, cap=0.2)


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("jobsagents") / "state" / "localcore",
                         env=MINUTE_ENV)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def iot(core: RunningLocalCore) -> Any:
    return aws_client(core.api_url)


@pytest.fixture(scope="module")
def prov(core: RunningLocalCore, tmp_path_factory: pytest.TempPathFactory) -> Provisioner:
    return Provisioner(core, tmp_path_factory.mktemp("devices"))


@asynccontextmanager
async def agent(prov: Provisioner, thing: str, metrics: Metrics, outcome: Outcome,
                seconds: float = 0.2, progress: int = 0, step_timeout: int | None = None,
                flow: Flow = "notify-next") -> AsyncIterator[JobAgent]:
    """A connected device of `thing` (provisioned here) running the job agent with one plan
    for every job; it reconnects after a loss, as fleets do."""
    prov.device(thing)
    session = DeviceSession(prov.store.load(thing), prov.target, metrics, timeout=5,
                            reconnect=FAST)
    async with session:
        job_agent = JobAgent(session, thing, metrics, lambda _: JobPlan(outcome, seconds,
                                                                        progress),
                             flow, step_timeout, poll=0.5, timeout=5)

        def deliver(message: aiomqtt.Message) -> None:
            payload = message.payload
            job_agent.on_message(str(message.topic), payload if isinstance(payload, bytes)
                                 else str(payload).encode())

        session.on_message(deliver)
        await job_agent.start()
        try:
            yield job_agent
        finally:
            job_agent.close()


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := await asyncio.to_thread(check)):
            await asyncio.sleep(0.1)
    return value


def execution(iot: Any, job_id: str, thing: str) -> dict[str, Any]:
    return dict(iot.describe_job_execution(jobId=job_id, thingName=thing)["execution"])


def summaries(iot: Any, job_id: str) -> dict[str, dict[str, Any]]:
    """thing name -> its jobExecutionSummary (with retryAttempt)."""
    return {s["thingArn"].rpartition("/")[2]: s["jobExecutionSummary"]
            for s in iot.list_job_executions_for_job(jobId=job_id)["executionSummaries"]}


def process(iot: Any, job_id: str) -> tuple[str, dict[str, Any]]:
    job = iot.describe_job(jobId=job_id)["job"]
    return job["status"], job["jobProcessDetails"]


def errors(metrics: Metrics, op: str) -> dict[str, int]:
    return next((e["errors"] for e in metrics.snapshot()["ops"] if e["op"] == op), {})


async def test_step_timeout_then_retry_of_the_timed_out_execution(
        iot: Any, prov: Provisioner) -> None:
    """The device takes the job with stepTimeoutInMinutes 1 and never answers again: the
    step timer ends it TIMED_OUT; the retry config queues it again, the agent takes the new
    attempt (a higher version than the one it left), goes silent again, TIMED_OUT again."""
    metrics = Metrics()
    async with agent(prov, "silent", metrics, "timeout", step_timeout=1) as device:
        iot.create_job(jobId="silent-job", targets=[f"{ARN}:thing/silent"], document=DOCUMENT,
                       jobExecutionsRetryConfig={"criteriaList": [
                           {"failureType": "TIMED_OUT", "numberOfRetries": 1}]})
        _, details = await eventually(
            lambda: (s := process(iot, "silent-job"))[0] == "COMPLETED" and s)
    assert details["numberOfTimedOutThings"] == 1 and details["numberOfInProgressThings"] == 0
    assert summaries(iot, "silent-job")["silent"]["retryAttempt"] == 1
    assert execution(iot, "silent-job", "silent")["status"] == "TIMED_OUT"
    # The device's side: it abandoned both attempts, and saw the second one as a retry.
    assert metrics.counters["jobs.outcome.timeout"] == 2
    assert metrics.counters["jobs.retried"] == 1
    assert device.abandoned == {"silent-job"} and not device.finished


async def test_a_failed_execution_is_retried_and_run_again(iot: Any,
                                                             prov: Provisioner) -> None:
    """FAILED with two retries allowed: the agent runs each new attempt (three in all), the
    last one stays FAILED (retryAttempt 2); the job completes with one failed thing."""
    metrics = Metrics()
    async with agent(prov, "flaky", metrics, "fail") as device:
        iot.create_job(jobId="flaky-job", targets=[f"{ARN}:thing/flaky"], document=DOCUMENT,
                       jobExecutionsRetryConfig={"criteriaList": [
                           {"failureType": "FAILED", "numberOfRetries": 2}]})
        _, details = await eventually(
            lambda: (s := process(iot, "flaky-job"))[0] == "COMPLETED" and s)
    assert details["numberOfFailedThings"] == 1
    assert summaries(iot, "flaky-job")["flaky"]["retryAttempt"] == 2
    assert metrics.counters["jobs.outcome.fail"] == 3
    assert metrics.counters["jobs.retried"] == 2
    assert device.finished == {"flaky-job": "FAILED"}


async def test_a_device_that_drops_mid_job_resumes_and_succeeds(iot: Any,
                                                                 prov: Provisioner) -> None:
    """Outcome `disconnect`: the connection is lost half-way through (after the first of two
    progress updates); once reconnected the agent takes the IN_PROGRESS execution back with
    start-next and finishes it SUCCEEDED."""
    metrics = Metrics()
    async with agent(prov, "wobbly", metrics, "disconnect", seconds=1.0, progress=2) as device:
        iot.create_job(jobId="wobbly-job", targets=[f"{ARN}:thing/wobbly"], document=DOCUMENT)
        await eventually(lambda: device.finished)
        assert device.session.reconnects >= 1  # type: ignore[attr-defined]
    assert device.finished == {"wobbly-job": "SUCCEEDED"}
    done = execution(iot, "wobbly-job", "wobbly")
    assert done["status"] == "SUCCEEDED" and done["statusDetails"] == {
        "detailsMap": {"result": "ok"}}
    assert process(iot, "wobbly-job")[0] == "COMPLETED"
    assert metrics.counters["jobs.dropped"] == 1 and metrics.counters["jobs.resumed"] == 1
    # The drop is the device's doing, and counted as such.
    assert errors(metrics, "mqtt.publish").get("disconnected_by_server", 0) == 0


async def test_an_update_with_a_stale_expected_version_is_rejected(
        iot: Any, prov: Provisioner, core: RunningLocalCore) -> None:
    """While the agent runs the job, someone else updates the execution (iot-jobs-data over
    HTTP): the agent's next update carries the version it last saw and is rejected with
    VersionMismatch; it adopts the version the rejection carries and the job succeeds."""
    jobs_data = aws_client(core.api_url, "iot-jobs-data")
    metrics = Metrics()
    async with agent(prov, "contested", metrics, "succeed", seconds=4.0, progress=1) as device:
        iot.create_job(jobId="contested-job", targets=[f"{ARN}:thing/contested"],
                       document=DOCUMENT)
        await eventually(lambda: execution(iot, "contested-job", "contested")["status"]
                         == "IN_PROGRESS")
        jobs_data.update_job_execution(thingName="contested", jobId="contested-job",
                                       status="IN_PROGRESS", statusDetails={"by": "operator"})
        await eventually(lambda: device.finished)
    assert errors(metrics, "jobs.update") == {"VersionMismatch": 1}
    assert device.finished == {"contested-job": "SUCCEEDED"}
    assert execution(iot, "contested-job", "contested")["status"] == "SUCCEEDED"


async def test_a_continuous_job_reaches_a_thing_added_to_the_group_later(
        iot: Any, prov: Provisioner) -> None:
    """A CONTINUOUS job for a group: the member at creation runs it; a device whose thing
    joins the group afterwards is notified (notify-next) and runs it too; the job stays
    IN_PROGRESS, as continuous jobs do."""
    iot.create_thing_group(thingGroupName="line")
    early, late = Metrics(), Metrics()
    async with agent(prov, "first", early, "succeed") as first, \
            agent(prov, "newcomer", late, "succeed") as newcomer:
        iot.add_thing_to_thing_group(thingGroupName="line", thingName="first")
        iot.create_job(jobId="always-on", targets=[f"{ARN}:thinggroup/line"],
                       targetSelection="CONTINUOUS", document=DOCUMENT)
        await eventually(lambda: first.finished)
        assert not newcomer.finished and "newcomer" not in summaries(iot, "always-on")
        iot.add_thing_to_thing_group(thingGroupName="line", thingName="newcomer")
        await eventually(lambda: newcomer.finished)
    assert first.finished == newcomer.finished == {"always-on": "SUCCEEDED"}
    status, details = process(iot, "always-on")
    assert status == "IN_PROGRESS" and details["numberOfSucceededThings"] == 2
    assert {t: s["status"] for t, s in summaries(iot, "always-on").items()} == {
        "first": "SUCCEEDED", "newcomer": "SUCCEEDED"}


# --- the scenarios ---------------------------------------------------------------------------

def detail(summary: dict[str, Any], step: str) -> str:
    return next(s["detail"] for s in summary["metrics"]["steps"] if s["name"].endswith(step))


def test_the_workshop_lab_scenario(core: RunningLocalCore, iot: Any, tmp_path: Path) -> None:
    """`scenarios/jobs-workshop.yaml`: the lab's agent flow (get, describe, IN_PROGRESS,
    sys-info published, SUCCEEDED) on a document from S3; clean-up removes the job."""
    out, summary = run(core, SCENARIOS / "jobs-workshop.yaml", tmp_path, env=MINUTE_ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] is True and all(checks(summary).values())
    seen = counters(summary)
    assert seen["job.status.SUCCEEDED"] == seen["jobs.outcome.succeed"] == 1
    counted = ops(summary)
    assert counted["jobs.describe"] == 1 and counted["jobs.update"] == 2
    assert counted["jobs.get"] >= 1
    assert "could not remove" not in out.stdout
    assert not [j for j in iot.list_jobs()["jobs"] if j["jobId"].startswith("lab-")]


def rollout_scenario(tmp_path: Path) -> Path:
    """`scenarios/jobs-rollout.yaml` at test scale: 60 devices, executions of 0.2 to 0.6 s, a
    rollout of 30 a minute (15 a second here), abort once 10% of at least 20 executed failed."""
    scenario = yaml.safe_load((SCENARIOS / "jobs-rollout.yaml").read_text())
    scenario["fleets"][0]["count"] = 60
    steps = {next(iter(s)): s[next(iter(s))] for s in scenario["steps"]}
    steps["job_agent"]["execution_time"] = {"distribution": "uniform", "min": "0.2s",
                                            "max": "0.6s"}
    steps["create_job"]["rollout_config"] = {"maximumPerMinute": 30}
    steps["create_job"]["abort_config"]["criteriaList"][0]["minNumberOfExecutedThings"] = 20
    steps["wait_job"]["timeout"] = "60s"
    steps["wait_job"]["poll"] = "1s"
    steps["wait_job"].pop("expect_rate_within", None)  # a rate over seconds: the bench's
    path = tmp_path / "jobs-rollout.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


def test_a_rollout_where_20_percent_fail_is_aborted(core: RunningLocalCore, iot: Any,
                                                    tmp_path: Path) -> None:
    """The rollout scenario: 20% of the devices fail, the abort fires and cancels what is
    still queued; the final statuses the devices set agree with describe-job's counts and the
    executions listed; the summary gives the per-minute counts and the rollout rate."""
    out, summary = run(core, rollout_scenario(tmp_path), tmp_path, "--keep", env=MINUTE_ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary["passed"] is True
    seen = counters(summary)
    assert seen["job.aborted"] == 1
    job_id = next(j["jobId"] for j in iot.list_jobs()["jobs"]
                  if j["jobId"].startswith("rollout-"))
    status, details = process(iot, job_id)
    assert status == "CANCELED"
    # Statuses seen by the devices = those describe-job counts = those listed.
    assert seen["jobs.outcome.fail"] == details["numberOfFailedThings"] \
        == seen.get("job.status.FAILED", 0) > 0
    assert seen.get("jobs.outcome.reject", 0) == details["numberOfRejectedThings"] \
        == seen.get("job.status.REJECTED", 0)
    assert seen.get("jobs.outcome.timeout", 0) == details["numberOfTimedOutThings"] \
        == seen.get("job.status.TIMED_OUT", 0)
    assert seen.get("jobs.outcome.succeed", 0) + seen.get("jobs.outcome.disconnect", 0) \
        == details["numberOfSucceededThings"] == seen.get("job.status.SUCCEEDED", 0)
    assert details["numberOfInProgressThings"] == details["numberOfQueuedThings"] == 0
    executed = sum(details[k] for k in ("numberOfFailedThings", "numberOfRejectedThings",
                                        "numberOfTimedOutThings", "numberOfSucceededThings"))
    assert 20 <= executed < 60  # aborted before every target had run it
    text = detail(summary, "wait_job")
    assert "aborted" in text and f"per minute of {MINUTE_S} s" in text
    assert "against maximumPerMinute 30" in text
    for op in ("job.queued_to_in_progress", "job.in_progress_to_terminal",
               "job.queued_to_terminal"):
        assert ops(summary)[op] >= executed
