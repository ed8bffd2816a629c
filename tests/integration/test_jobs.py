"""IoT Jobs through the real local core process: the control plane over the AWS CLI and boto3,
devices over MQTT/TLS with a stock client (aiomqtt, i.e. paho) and over HTTP (`iot-jobs-data`),
with the payloads of AWS's "Jobs device MQTT API operations". A minute of rollout rates and
timeouts lasts 2 s in this core (`FLEETSIM_LOCAL_JOBS_MINUTE_S`), so timeouts and retries are
seen in seconds."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from tests.awscli import aws_json
from tests.conftest import start_core
from tests.device_testing import Connect, Device, devices
from tests.device_testing import provision as provision_device
from tests.helpers import aws_client, code_of

pytestmark = pytest.mark.timeout(120)
ARN = "arn:aws:iot:us-east-1:123456789012"
WORKSHOP_DOCUMENT = Path("/work/shared/reference/workshop/job-document.json")
MINUTE_S = 2.0


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("jobs") / "core",
                         env={"FLEETSIM_LOCAL_JOBS_MINUTE_S": str(MINUTE_S)})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def jobs_data(core: RunningLocalCore) -> Any:
    return aws_client(core.api_url, "iot-jobs-data")


def provision(iot: Any, tmp: Path, root_ca: Path, thing: str) -> ssl.SSLContext:
    return provision_device(iot, tmp, root_ca, thing)[0]


async def request(device: Device, topic: str, body: dict[str, Any]
                  ) -> tuple[str, dict[str, Any]]:
    """Publish a Jobs request; its /accepted or /rejected answer (never subscribed to)."""
    await device.publish(topic, body)
    got, payload = await device.expect(f"{topic}/accepted", f"{topic}/rejected")
    return got.rpartition("/")[2], payload


async def expect(device: Device, topic: str) -> dict[str, Any]:
    return (await device.expect(topic))[1]


@pytest.fixture
async def connect(core: RunningLocalCore) -> AsyncIterator[Connect]:
    async with devices(core) as open_device:
        yield open_device


async def call(fn: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, **kwargs)


async def eventually(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


def job_status(iot: Any, job_id: str) -> tuple[str, dict[str, Any]]:
    job = iot.describe_job(jobId=job_id)["job"]
    return job["status"], job["jobProcessDetails"]


async def test_workshop_lab_by_hand(iot: Any, core: RunningLocalCore, connect: Any,
                                    tmp_path: Path) -> None:
    """The lab's agent flow with a stock client: get (no jobs), create-job with the AWS CLI,
    notify, get, describe with the document, IN_PROGRESS, a stale expectedVersion rejected,
    SUCCEEDED; the job COMPLETED; /accepted reaches the requester (never subscribed to it) and
    no one else; the jobExecution event when enabled."""
    thing = "job-agent"
    ctx = provision(iot, tmp_path, core.root_ca, thing)
    agent = await connect(thing, ctx, f"$aws/things/{thing}/jobs/notify",
                          f"$aws/things/{thing}/jobs/notify-next")
    watcher_ctx = provision(iot, tmp_path, core.root_ca, "watcher")
    watcher = await connect("watcher", watcher_ctx, f"$aws/things/{thing}/jobs/#",
                            "$aws/events/jobExecution/#")
    await call(iot.update_event_configurations,
               eventConfigurations={"JOB_EXECUTION": {"Enabled": True}})
    base = f"$aws/things/{thing}/jobs"

    verdict, empty = await request(agent, f"{base}/get", {"clientToken": "t0"})
    assert verdict == "accepted"
    assert empty["inProgressJobs"] == [] and empty["queuedJobs"] == []
    assert empty["clientToken"] == "t0" and isinstance(empty["timestamp"], int)

    document = tmp_path / "job-document.json"
    shutil.copy(WORKSHOP_DOCUMENT, document)
    created = await asyncio.to_thread(
        aws_json, core, tmp_path, "iot", "create-job", "--job-id", "468", "--targets",
        f"{ARN}:thing/{thing}", "--document", "file://job-document.json")
    assert created == {"jobArn": f"{ARN}:job/468", "jobId": "468"}

    notify = await expect(agent, f"{base}/notify")
    assert [j["jobId"] for j in notify["jobs"]["QUEUED"]] == ["468"]
    assert notify["jobs"]["QUEUED"][0]["versionNumber"] == 1
    nxt = await expect(agent, f"{base}/notify-next")
    assert nxt["execution"]["jobDocument"] == json.loads(WORKSHOP_DOCUMENT.read_text())

    verdict, pending = await request(agent, f"{base}/get", {"clientToken": "t1"})
    assert verdict == "accepted" and pending["inProgressJobs"] == []
    assert [(j["jobId"], j["executionNumber"]) for j in pending["queuedJobs"]] == [("468", 1)]

    verdict, described = await request(agent, f"{base}/468/get", {"clientToken": "t2"})
    execution = described["execution"]
    assert verdict == "accepted" and described["clientToken"] == "t2"
    assert execution["jobId"] == "468" and execution["thingName"] == thing
    assert execution["status"] == "QUEUED" and execution["versionNumber"] == 1
    assert execution["jobDocument"] == json.loads(WORKSHOP_DOCUMENT.read_text())

    verdict, started = await request(agent, f"{base}/468/update", {
        "status": "IN_PROGRESS", "expectedVersion": "1", "includeJobExecutionState": True,
        "statusDetails": {"step": "uptime"}, "clientToken": "t3"})
    assert verdict == "accepted"
    assert started["executionState"] == {"status": "IN_PROGRESS", "versionNumber": 2,
                                         "statusDetails": {"step": "uptime"}}

    verdict, stale = await request(agent, f"{base}/468/update", {
        "status": "SUCCEEDED", "expectedVersion": 1, "clientToken": "t4"})
    assert verdict == "rejected"
    assert stale["code"] == "VersionMismatch" and stale["clientToken"] == "t4"
    assert stale["executionState"]["status"] == "IN_PROGRESS"
    assert stale["executionState"]["versionNumber"] == 2

    verdict, done = await request(agent, f"{base}/468/update", {
        "status": "SUCCEEDED", "expectedVersion": 2, "includeJobDocument": True})
    assert verdict == "accepted" and done["jobDocument"]["operation"] == "sys-info"
    verdict, again = await request(agent, f"{base}/468/update", {"status": "IN_PROGRESS"})
    assert verdict == "rejected" and again["code"] == "InvalidStateTransition"

    status, details = await eventually(
        lambda: (s := job_status(iot, "468"))[0] == "COMPLETED" and s)
    assert status == "COMPLETED" and details["numberOfSucceededThings"] == 1
    assert details["numberOfQueuedThings"] == details["numberOfInProgressThings"] == 0

    # The watcher saw the notifications (ordinary messages) and the event, never a request
    # or an answer, though it subscribed to $aws/things/job-agent/jobs/#.
    seen: list[str] = []
    while "$aws/events/jobExecution/468/succeeded" not in seen:
        topic, payload = await watcher.next(10)
        seen.append(topic)
    assert payload["thingArn"] == f"{ARN}:thing/{thing}" and payload["status"] == "SUCCEEDED"
    await asyncio.sleep(0.5)
    while not watcher.received.empty():
        seen.append(watcher.received.get_nowait()[0])
    assert f"{base}/notify" in seen and f"{base}/notify-next" in seen
    assert not [t for t in seen if t.endswith(("/accepted", "/rejected", "/get", "/update"))]


async def test_invalid_requests_get_the_documented_codes(iot: Any, core: RunningLocalCore,
                                                         connect: Any, tmp_path: Path) -> None:
    thing = "picky"
    ctx = provision(iot, tmp_path, core.root_ca, thing)
    device = await connect(thing, ctx)
    base = f"$aws/things/{thing}/jobs"
    await device.publish(f"{base}/get", b"{not json")
    bad_json = await expect(device, f"{base}/get/rejected")
    assert bad_json["code"] == "InvalidJson"
    verdict, missing = await request(device, f"{base}/nope/get", {"clientToken": "x"})
    assert verdict == "rejected" and missing["code"] == "ResourceNotFound"
    assert missing["clientToken"] == "x"
    verdict, invalid = await request(device, f"{base}/$next/update", {"status": "QUEUED"})
    assert verdict == "rejected" and invalid["code"] == "ResourceNotFound"
    verdict, none = await request(device, f"{base}/start-next", {"clientToken": "n"})
    assert verdict == "accepted" and "execution" not in none and none["clientToken"] == "n"


async def test_presigned_document_from_s3_is_fresh_per_fetch(iot: Any, jobs_data: Any,
                                                             core: RunningLocalCore) -> None:
    s3 = aws_client(core.api_url, "s3")
    s3.create_bucket(Bucket="firmware")
    s3.put_object(Bucket="firmware", Key="fw-1.0.bin", Body=b"firmware bytes")
    s3.put_object(Bucket="firmware", Key="doc.json", Body=json.dumps({
        "operation": "update",
        "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/fw-1.0.bin}",
    }).encode())
    iot.create_thing(thingName="ota-1")
    iot.create_job(jobId="ota", targets=[f"{ARN}:thing/ota-1"],
                   documentSource="https://s3.amazonaws.com/firmware/doc.json",
                   presignedUrlConfig={"roleArn": "arn:aws:iam::123456789012:role/x",
                                       "expiresInSec": 300})
    assert json.loads(iot.get_job_document(jobId="ota", beforeSubstitution=True)["document"])[
        "url"].startswith("${aws:iot:s3-presigned-url:")
    assert iot.describe_job(jobId="ota")["documentSource"] == \
        "https://s3.amazonaws.com/firmware/doc.json"
    urls = []
    for _ in range(2):
        execution = jobs_data.describe_job_execution(thingName="ota-1", jobId="ota")["execution"]
        urls.append(json.loads(execution["jobDocument"])["url"])
    assert urls[0] != urls[1] and "X-Amz-Expires=300" in urls[0]
    body = await asyncio.to_thread(_get, urls[1])
    assert body == b"firmware bytes"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


async def test_continuous_job_reaches_a_thing_added_later(iot: Any, core: RunningLocalCore,
                                                          connect: Any, tmp_path: Path) -> None:
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_thing_group(thingGroupName="fleet-eu", parentGroupName="fleet")
    iot.create_thing(thingName="early")
    iot.add_thing_to_thing_group(thingGroupName="fleet-eu", thingName="early")
    iot.create_job(jobId="always", targets=[f"{ARN}:thinggroup/fleet"],
                   targetSelection="CONTINUOUS", document=WORKSHOP_DOCUMENT.read_text())
    assert iot.describe_job_execution(jobId="always", thingName="early")["execution"][
        "status"] == "QUEUED"
    late = "late-comer"
    ctx = provision(iot, tmp_path, core.root_ca, late)
    device = await connect(late, ctx, f"$aws/things/{late}/jobs/notify-next")
    await call(iot.add_thing_to_thing_group, thingGroupName="fleet-eu", thingName=late)
    nxt = await expect(device, f"$aws/things/{late}/jobs/notify-next")
    assert nxt["execution"]["jobId"] == "always"
    assert nxt["execution"]["status"] == "QUEUED"
    assert iot.describe_job(jobId="always")["job"]["status"] == "IN_PROGRESS"
    # Leaving the group removes the pending execution of the continuous job.
    await call(iot.remove_thing_from_thing_group, thingGroupName="fleet-eu", thingName=late)
    removed = await eventually(lambda: iot.describe_job_execution(
        jobId="always", thingName=late)["execution"]["status"] == "REMOVED")
    assert removed


async def test_timeout_then_retry(iot: Any, jobs_data: Any, core: RunningLocalCore) -> None:
    """An IN_PROGRESS execution past its in-progress timeout becomes TIMED_OUT; the retry
    configuration queues it again (retryAttempt 1), once."""
    iot.create_thing(thingName="slow")
    iot.create_job(jobId="slow-job", targets=[f"{ARN}:thing/slow"],
                   document=WORKSHOP_DOCUMENT.read_text(),
                   timeoutConfig={"inProgressTimeoutInMinutes": 1},
                   jobExecutionsRetryConfig={"criteriaList": [
                       {"failureType": "TIMED_OUT", "numberOfRetries": 1}]})
    started = jobs_data.start_next_pending_job_execution(thingName="slow")["execution"]
    assert started["status"] == "IN_PROGRESS"
    assert 0 < started["approximateSecondsBeforeTimedOut"] <= MINUTE_S

    def retried() -> dict[str, Any] | None:
        summary = iot.list_job_executions_for_job(jobId="slow-job")["executionSummaries"][0]
        s = summary["jobExecutionSummary"]
        return s if s.get("retryAttempt") == 1 and s["status"] == "QUEUED" else None

    assert await eventually(retried)
    jobs_data.start_next_pending_job_execution(thingName="slow")
    timed_out = await eventually(lambda: iot.describe_job_execution(
        jobId="slow-job", thingName="slow")["execution"]["status"] == "TIMED_OUT")
    assert timed_out
    status, details = await eventually(
        lambda: (s := job_status(iot, "slow-job"))[0] == "COMPLETED" and s)
    assert details["numberOfTimedOutThings"] == 1 and status == "COMPLETED"
    with pytest.raises(ClientError) as e:
        jobs_data.describe_job_execution(thingName="slow", jobId="slow-job")
    assert code_of(e) == "TerminalStateException"


async def test_abort_at_20_percent_failures(iot: Any, jobs_data: Any,
                                            core: RunningLocalCore) -> None:
    """2 of the first 5 executed fail (40% >= 20%): the job is canceled, its QUEUED executions
    CANCELED, the IN_PROGRESS one runs on and may still succeed."""
    things = [f"unit-{i}" for i in range(10)]
    iot.create_thing_group(thingGroupName="units")
    for t in things:
        iot.create_thing(thingName=t)
        iot.add_thing_to_thing_group(thingGroupName="units", thingName=t)
    iot.create_job(jobId="risky", targets=[f"{ARN}:thinggroup/units"],
                   document=WORKSHOP_DOCUMENT.read_text(),
                   abortConfig={"criteriaList": [{
                       "failureType": "FAILED", "action": "CANCEL",
                       "thresholdPercentage": 20.0, "minNumberOfExecutedThings": 5}]})
    jobs_data.start_next_pending_job_execution(thingName="unit-9")
    for t, outcome in zip(things[:5], ["FAILED", "SUCCEEDED", "FAILED", "SUCCEEDED",
                                       "SUCCEEDED"], strict=True):
        jobs_data.update_job_execution(thingName=t, jobId="risky", status="IN_PROGRESS")
        jobs_data.update_job_execution(thingName=t, jobId="risky", status=outcome)
    status, details = await eventually(
        lambda: (s := job_status(iot, "risky"))[0] == "CANCELED" and s)
    assert status == "CANCELED"
    assert details["numberOfFailedThings"] == 2 and details["numberOfSucceededThings"] == 3
    assert details["numberOfCanceledThings"] == 4 and details["numberOfInProgressThings"] == 1
    with pytest.raises(ClientError) as e:
        jobs_data.start_next_pending_job_execution(thingName="unit-5") and \
            jobs_data.describe_job_execution(thingName="unit-5", jobId="risky")
    assert code_of(e) == "TerminalStateException"
    done = jobs_data.update_job_execution(thingName="unit-9", jobId="risky",
                                          status="SUCCEEDED", includeJobExecutionState=True)
    assert done["executionState"]["status"] == "SUCCEEDED"


def test_control_plane_errors_and_templates(iot: Any) -> None:
    iot.create_thing(thingName="plain")
    target = [f"{ARN}:thing/plain"]
    doc = WORKSHOP_DOCUMENT.read_text()
    iot.create_job(jobId="dup", targets=target, document=doc)
    with pytest.raises(ClientError) as e:
        iot.create_job(jobId="dup", targets=target, document=doc)
    assert code_of(e) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        iot.create_job(jobId="bad-doc", targets=target, document="not json")
    assert code_of(e) == "InvalidRequestException"
    with pytest.raises(ClientError) as e:
        iot.delete_job(jobId="dup")
    assert code_of(e) == "InvalidStateTransitionException"
    with pytest.raises(ClientError) as e:
        iot.describe_job(jobId="ghost")
    assert code_of(e) == "ResourceNotFoundException"
    iot.cancel_job(jobId="dup", reasonCode="OOPS", comment="wrong version")
    job = iot.describe_job(jobId="dup")["job"]
    assert (job["status"], job["reasonCode"], job["comment"]) == ("CANCELED", "OOPS",
                                                                  "wrong version")
    assert iot.describe_job_execution(jobId="dup", thingName="plain")["execution"][
        "status"] == "CANCELED"
    assert "dup" in [j["jobId"] for j in iot.list_jobs(status="CANCELED")["jobs"]]
    iot.delete_job(jobId="dup")

    iot.create_job_template(jobTemplateId="tpl", description="sys-info everywhere",
                            document=doc, timeoutConfig={"inProgressTimeoutInMinutes": 30})
    assert iot.describe_job_template(jobTemplateId="tpl")["timeoutConfig"] == {
        "inProgressTimeoutInMinutes": 30}
    assert [t["jobTemplateId"] for t in iot.list_job_templates()["jobTemplates"]] == ["tpl"]
    iot.create_job(jobId="from-tpl", targets=target,
                   jobTemplateArn=f"{ARN}:jobtemplate/tpl")
    job = iot.describe_job(jobId="from-tpl")["job"]
    assert job["timeoutConfig"] == {"inProgressTimeoutInMinutes": 30}
    assert json.loads(iot.get_job_document(jobId="from-tpl")["document"]) == json.loads(doc)
    iot.delete_job_template(jobTemplateId="tpl")
    with pytest.raises(ClientError) as e:
        iot.describe_job_template(jobTemplateId="tpl")
    assert code_of(e) == "ResourceNotFoundException"


def test_jobs_survive_a_restart(tmp_path: Path) -> None:
    """A rollout of 1 per minute: one execution at once, the job's state and executions kept
    across a restart, and the rollout timer re-armed (the next execution comes after it)."""
    env = {"FLEETSIM_LOCAL_JOBS_MINUTE_S": "1"}
    running = start_core(tmp_path / "core", env=env)
    try:
        iot = aws_client(running.api_url)
        for i in range(3):
            iot.create_thing(thingName=f"r-{i}")
        iot.create_job(jobId="slowly", targets=[f"{ARN}:thing/r-{i}" for i in range(3)],
                       document=WORKSHOP_DOCUMENT.read_text(),
                       jobExecutionsRolloutConfig={"maximumPerMinute": 1})
        aws_client(running.api_url, "iot-jobs-data").update_job_execution(
            thingName="r-0", jobId="slowly", status="IN_PROGRESS",
            statusDetails={"progress": "10%"})
    finally:
        running.stop()
    running = start_core(tmp_path / "core", env=env)
    try:
        iot = aws_client(running.api_url)
        e = iot.describe_job_execution(jobId="slowly", thingName="r-0")["execution"]
        assert (e["status"], e["versionNumber"], e["statusDetails"]["detailsMap"]) == (
            "IN_PROGRESS", 2, {"progress": "10%"})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listed = iot.list_job_executions_for_job(jobId="slowly")["executionSummaries"]
            if len(listed) == 3:
                break
            time.sleep(0.2)
        assert len(listed) == 3
        assert iot.describe_job(jobId="slowly")["job"]["status"] == "IN_PROGRESS"
    finally:
        running.stop()


def test_the_jobs_endpoint_serves_the_device_http_api(iot: Any,
                                                      core: RunningLocalCore) -> None:
    address = iot.describe_endpoint(endpointType="iot:Jobs")["endpointAddress"]
    assert address == core.api_url.removeprefix("http://")
    assert iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"] != address
    iot.create_thing(thingName="http-device")
    iot.create_job(jobId="over-http", targets=[f"{ARN}:thing/http-device"],
                   document=WORKSHOP_DOCUMENT.read_text())
    data = aws_client(f"http://{address}", "iot-jobs-data")
    pending = data.get_pending_job_executions(thingName="http-device")
    assert [j["jobId"] for j in pending["queuedJobs"]] == ["over-http"]


async def test_the_device_policy_decides_which_jobs_topics_it_may_use(
        iot: Any, core: RunningLocalCore, connect: Any, tmp_path: Path) -> None:
    """A policy that lets a device use its own thing's jobs topics only: its own requests are
    answered; a request for another thing is a denied publish, which closes an MQTT 3.1.1
    connection."""
    own = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
         "Resource": f"{ARN}:topic/$aws/things/${{iot:Connection.Thing.ThingName}}/jobs/*"}]})
    ctx, _, _ = provision_device(iot, tmp_path, core.root_ca, "scoped", policy=own)
    device = await connect("scoped", ctx)
    verdict, _ = await request(device, "$aws/things/scoped/jobs/get", {})
    assert verdict == "accepted"
    with pytest.raises(aiomqtt.MqttError):
        await device.publish("$aws/things/someone-else/jobs/get", {})
        await device.publish("$aws/things/someone-else/jobs/get", {})
