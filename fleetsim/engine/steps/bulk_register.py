"""`bulk_register`: the workshop's "Bulk Device Provisioning" lab for a whole fleet: every
device makes its key and CSR, one parameters line each goes into a file uploaded to S3, one
start-thing-registration-task provisions them all, and each device takes its certificate from
the RESULTS report by its line's offset; a line in the ERRORS report fails its device."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import Field, field_validator

from fleetsim.engine import bulk
from fleetsim.engine import devices as dev
from fleetsim.engine import provisioning as prov
from fleetsim.engine.context import Device, RunContext
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
    started = time.perf_counter()
    devices = ctx.fleet_devices(step.fleet)
    params_t = StructTemplate(step.parameters, DEVICE_NAMES)
    keys: dict[int, tuple[bytes, dict[str, str]]] = {}

    async def make_line(d: Device) -> None:
        key_pem, csr = await prov.new_key_and_csr(ctx, d)
        line = {k: str(v) for k, v in params_t.render(d.names).items()}
        keys[d.index] = key_pem, {**line, step.csr_parameter: csr}

    await for_each_device(ctx, devices, make_line, step.pacing)
    devices = [d for d in devices if d.index in keys]  # offset = position in the file
    bucket = Template(step.bucket, RUN_NAMES).render({"run_id": ctx.run_id})
    key = Template(step.key, RUN_NAMES).render({"run_id": ctx.run_id})
    if step.create_bucket:
        await bulk.create_bucket(ctx, bucket)
    await bulk.upload(ctx, bucket, key, bulk.parameters_file([keys[d.index][1]
                                                              for d in devices]))
    with ctx.metrics.time(bulk.TASK_OP):
        out = await api_call(ctx, "StartThingRegistrationTask", key,
                             templateBody=Path(step.template).read_text(),
                             inputFileBucket=bucket, inputFileKey=key, roleArn=step.role_arn)
        task = await _wait(ctx, step, out["taskId"])
    try:
        reports = await bulk.read_reports(ctx, out["taskId"])
    except (aiohttp.ClientError, ValueError, KeyError) as e:
        raise StepFailed(f"the reports of registration task {out['taskId']} could not be "
                         f"read: {e}") from e
    _hand_out(ctx, devices, keys, reports, started)
    if task["status"] != "Completed":
        raise StepFailed(f"registration task {out['taskId']} ended {task['status']}: "
                         f"{task.get('message') or 'no message'}")
    if devices and all(d.failed for d in devices):
        raise StepFailed(f"no device was provisioned: {devices[0].failed}")


def _hand_out(ctx: RunContext, devices: list[Device],
              keys: dict[int, tuple[bytes, dict[str, str]]], reports: bulk.Reports,
              started: float) -> None:
    """Each device its certificate (RESULTS) or its error (ERRORS), by offset."""
    for offset, d in enumerate(devices):
        response = reports.results.get(offset)
        if response is not None:
            prov.journal_registered(ctx, d, response.get("ResourceArns", {}))
            d.identity = dev.save_identity(ctx, d, keys[d.index][0], response["CertificatePem"])
            ctx.metrics.record(prov.CERTIFICATE_OP, (time.perf_counter() - started) * 1e6)
            continue
        code, message = reports.errors.get(offset, ("NotReported",
                                                    "its line is in neither report"))
        ctx.metrics.error(code, op=bulk.TASK_OP)
        d.failed = f"{d.thing_name}: line {offset} of the bulk file: {code}: {message}"


KIND = StepKind(BulkRegisterStep, run,
                journals=(*prov.REGISTERED, bulk.S3_BUCKET, bulk.S3_OBJECT))
