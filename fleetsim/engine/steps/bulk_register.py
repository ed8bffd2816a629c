"""`bulk_register`: the workshop's "Bulk Device Provisioning" lab for a whole fleet: every
device makes its key and CSR, one parameters line each goes into a file uploaded to S3, one
start-thing-registration-task provisions them all, and each device takes its certificate from
the RESULTS report by its line's offset; a line in the ERRORS report fails its device.
Devices with a stored identity still live (an earlier kept run's) are reused and left out of
the file; when every device is, there is no file, bucket or task at all."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

from botocore.exceptions import ClientError
from pydantic import Field, field_validator

from fleetsim.control.cleanup import GONE, JournalKind, Phase, error_code
from fleetsim.control.clients import AwsClients
from fleetsim.control.journal import Entry
from fleetsim.engine import bulk
from fleetsim.engine import devices as dev
from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import StepFailed, api_call, for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import Duration, FleetStep, parse_duration
from fleetsim.scenario.semantics import DEVICE_NAMES, Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate, Template

RUN_NAMES = {"run_id"}


class BulkRegisterStep(FleetStep):
    kind: Literal["bulk_register"]
    template: str  # a template body file, relative to the scenario
    parameters: dict[str, str] = Field(default_factory=dict)  # templates per device
    csr_parameter: str = "CSR"
    bucket: str  # may use {run_id}
    create_bucket: bool = False
    key: str = "fleetsim/{run_id}/bulk.json"
    role_arn: str  # the role AWS IoT assumes to read the file and provision
    timeout: Duration = 600.0
    poll: Duration = 1.0

    file_fields: ClassVar[tuple[str, ...]] = ("template",)
    _duration = field_validator("timeout", "poll", mode="before")(parse_duration)

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        return (template_problems((*at, "parameters"), self.parameters, DEVICE_NAMES)
                + template_problems((*at, "bucket"), self.bucket, RUN_NAMES)
                + template_problems((*at, "key"), self.key, RUN_NAMES))


# How long clean-up waits for a stopped task to end before reading what it made.
STOP_WAIT_S = 120.0


async def _task_made(clients: AwsClients, started: list[dict[str, Any]],
                     may_change: bool) -> list[Entry]:
    """What the registration tasks started from these input files made, as journal entries,
    from their RESULTS reports (each line's `ResourceArns`): a run killed while its task ran
    has journaled none of it. A task still running is stopped and waited for first (reports
    exist once a task has ended); with `may_change` False it is only looked at."""
    iot = clients.iot
    inputs = {(d["bucket"], d["key"]) for d in started}
    since = min(float(d.get("at", 0)) for d in started) - prov.WINDOW_SLACK_S
    entries: list[Entry] = []
    async for page in iot.get_paginator("list_thing_registration_tasks").paginate():
        for task_id in page.get("taskIds", []):
            task = await iot.describe_thing_registration_task(taskId=task_id)
            if (task.get("inputFileBucket"), task.get("inputFileKey")) not in inputs or \
                    task["creationDate"].timestamp() < since:
                continue
            if task["status"] in bulk.RUNNING:
                if not may_change:
                    continue
                await _stop(clients, task_id)
            reports = await bulk.fetch_reports(partial(_report_page, iot, task_id))
            for response in reports.results.values():
                entries += _made(response.get("ResourceArns", {}))
            entries = await _own_policies(iot, entries, task["creationDate"])
    return entries


async def _own_policies(iot: Any, entries: list[Entry], task_created: datetime) -> list[Entry]:
    """`entries` without the policies made before the task: a template's policy named by
    its document's hash is shared with whoever has that document, and the task only used it."""
    older: set[str] = set()
    for name in {e.data["name"] for e in entries if e.kind == prov.POLICY.name}:
        try:
            if (await iot.get_policy(policyName=name))["creationDate"] < task_created:
                older.add(name)
        except ClientError as e:
            if error_code(e) not in GONE:
                raise
    return [e for e in entries if not (e.kind == prov.POLICY.name and e.data["name"] in older)]


async def _report_page(iot: Any, task_id: str, report_type: str, more: dict[str, str]
                       ) -> dict[str, Any]:
    return dict(await iot.list_thing_registration_task_reports(
        taskId=task_id, reportType=report_type, **more))


async def _stop(clients: AwsClients, task_id: str) -> None:
    iot = clients.iot
    try:
        await iot.stop_thing_registration_task(taskId=task_id)
    except ClientError as e:  # it ended meanwhile
        if error_code(e) != "InvalidRequestException":
            raise
    deadline = time.monotonic() + STOP_WAIT_S
    while (await iot.describe_thing_registration_task(taskId=task_id))["status"] \
            in bulk.RUNNING:
        if time.monotonic() > deadline:
            raise ClientError({"Error": {"Code": "TaskNotStopped", "Message": (
                f"registration task {task_id} did not end within {STOP_WAIT_S:g} s of "
                "StopThingRegistrationTask")}}, "StopThingRegistrationTask")
        await asyncio.sleep(0.5)


def _made(arns: dict[str, str]) -> list[Entry]:
    names = prov.resource_names(arns)
    cert_arn = next((a for a in arns.values() if ":cert/" in a), None)
    return ([Entry(prov.THING.name, {"name": t}) for t in names.get("thing", [])]
            + [Entry(prov.CERTIFICATE.name, {"id": c, "arn": cert_arn})
               for c in names.get("cert", [])]
            + [Entry(prov.POLICY.name, {"name": p}) for p in names.get("policy", [])])


# Journaled before StartThingRegistrationTask: its input file names the task clean-up reads.
REGISTRATION_TASK = JournalKind("thing_registration_task", Phase.DETACH,
                                lambda c, d: asyncio.sleep(0), expand=_task_made,
                                marker=True)


async def _wait(ctx: RunContext, step: BulkRegisterStep, task_id: str) -> dict[str, Any]:
    """Describe the task until it ends; progress counted as `bulk.provisioned` and
    `bulk.failed`. A task still running at the timeout is stopped."""
    deadline = time.monotonic() + step.timeout
    seen = {"successCount": 0, "failureCount": 0}
    while True:
        task = await api_call(ctx, "DescribeThingRegistrationTask", task_id, taskId=task_id)
        for count, counter in (("successCount", "bulk.provisioned"),
                               ("failureCount", "bulk.failed")):
            delta = int(task.get(count, 0)) - seen[count]
            if delta > 0:
                ctx.metrics.incr(counter, delta)
                seen[count] += delta
        if task["status"] not in bulk.RUNNING:
            return task
        if time.monotonic() > deadline:
            await api_call(ctx, "StopThingRegistrationTask", task_id, taskId=task_id)
            raise StepFailed(f"registration task {task_id} did not end within "
                             f"{step.timeout:g} s ({task.get('percentageProgress', 0)}% done); "
                             "it was stopped")
        await asyncio.sleep(step.poll)


async def run(ctx: RunContext, step: BulkRegisterStep) -> None:
    import aiohttp  # its errors, as the reports are read: not imported by every run

    started = time.perf_counter()
    devices = ctx.fleet_devices(step.fleet)
    params_t = StructTemplate(step.parameters, DEVICE_NAMES)
    keys: dict[int, tuple[bytes, dict[str, str]]] = {}
    found: set[str] = set()  # things there before the task (a kept run's): reused

    async def make_line(d: Device) -> None:
        if await prov.reuse_registered(ctx, d):
            return
        if await describe(ctx, "DescribeThing", d.thing_name, thingName=d.thing_name):
            found.add(d.thing_name)
        key_pem, csr = await prov.new_key_and_csr(ctx, d)
        line = {k: str(v) for k, v in params_t.render(d.names).items()}
        keys[d.index] = key_pem, {**line, step.csr_parameter: csr}

    await for_each_device(ctx, devices, make_line, step.pacing)
    devices = [d for d in devices if d.index in keys]  # offset = position in the file
    if not devices:
        return  # every device reused (or dropped out): nothing to register
    bucket = Template(step.bucket, RUN_NAMES).render({"run_id": ctx.run_id})
    key = Template(step.key, RUN_NAMES).render({"run_id": ctx.run_id})
    if step.create_bucket:
        await bulk.create_bucket(ctx, bucket)
    await bulk.upload(ctx, bucket, key, bulk.parameters_file([keys[d.index][1]
                                                              for d in devices]))
    task_entry = {"bucket": bucket, "key": key, "at": time.time()}
    ctx.journal.record(REGISTRATION_TASK.name, **task_entry)
    body = Path(step.template).read_text()
    with ctx.metrics.time(bulk.TASK_OP):
        out = await api_call(ctx, "StartThingRegistrationTask", key, templateBody=body,
                             inputFileBucket=bucket, inputFileKey=key, roleArn=step.role_arn)
        task = await _wait(ctx, step, out["taskId"])
    try:
        reports = await bulk.read_reports(ctx, out["taskId"])
    except (aiohttp.ClientError, ValueError, KeyError) as e:
        raise StepFailed(f"the reports of registration task {out['taskId']} could not be "
                         f"read: {e}") from e
    await _hand_out(ctx, devices, keys, reports, started, frozenset(found),
                    prov.sets_package_versions(body))
    # What the task made is journaled now, item by item (what it found there is not): the
    # marker, there for a run killed before this, is no longer needed.
    ctx.journal.void(REGISTRATION_TASK.name, **task_entry)
    if task["status"] != "Completed":
        raise StepFailed(f"registration task {out['taskId']} ended {task['status']}: "
                         f"{task.get('message') or 'no message'}")
    if devices and all(d.failed for d in devices):
        raise StepFailed(f"no device was provisioned: {devices[0].failed}")


async def _hand_out(ctx: RunContext, devices: list[Device],
                    keys: dict[int, tuple[bytes, dict[str, str]]], reports: bulk.Reports,
                    started: float, found: frozenset[str], package_shadow: bool) -> None:
    """Each device its certificate (RESULTS) or its error (ERRORS), by offset."""
    for offset, d in enumerate(devices):
        response = reports.results.get(offset)
        if response is not None:
            await prov.journal_registered(ctx, d, response.get("ResourceArns", {}),
                                          found_things=found, package_shadow=package_shadow)
            d.identity = dev.save_identity(ctx, d, keys[d.index][0], response["CertificatePem"])
            ctx.metrics.record(prov.CERTIFICATE_OP, (time.perf_counter() - started) * 1e6)
            continue
        code, message = reports.errors.get(offset, ("NotReported",
                                                    "its line is in neither report"))
        ctx.metrics.error(code, op=bulk.TASK_OP)
        d.failed = f"{d.thing_name}: line {offset} of the bulk file: {code}: {message}"


KIND = StepKind(BulkRegisterStep, run,
                journals=(*prov.REGISTERED, bulk.S3_BUCKET, bulk.S3_OBJECT, REGISTRATION_TASK))
