"""`create_job`: one AWS IoT job (CreateJob) for a fleet's things or a thing group.

The document is given inline (`document`), read from a file (`document_file`), or either of
them uploaded to S3 (`upload`) and referenced by its URL (`documentSource`), as the workshop's
"IoT Jobs" lab does; a document may hold `${aws:iot:s3-presigned-url:https://...}`
placeholders, which AWS IoT replaces with presigned URLs (`presigned_url_config`) each time a
device gets the document. Rollout, abort, timeout and retry configurations are passed as
CreateJob takes them (`jobExecutionsRolloutConfig`, `abortConfig`, `timeoutConfig`,
`jobExecutionsRetryConfig`, their members spelled as in the API). The job is journaled before
the call; clean-up cancels it with `force` and deletes it with `force`.

Reconciling: the job id names the resource. A job id that carries `{run_id}` is new on every
run. Otherwise the job is described first (DescribeJob): absent, created (AWS lets an id be
used again once its job is deleted: API reference, "DeleteJob"); there, reused whatever its
status (a COMPLETED job's executions stay SUCCEEDED, so `wait_job` finds it ended), nothing
uploaded; its targets, or its inline document (GetJobDocument), differing from the step's is
drift that cannot be fixed (a job's targets and document are fixed at CreateJob): the step
fails, naming the difference."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from botocore.exceptions import ClientError
from pydantic import Field, model_validator

from fleetsim.control.cleanup import GONE, JournalKind, Phase, with_retry
from fleetsim.engine import bulk
from fleetsim.engine.context import RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import StepFailed, api_call
from fleetsim.engine.provisioning import journaled
from fleetsim.engine.reconcile import document_item
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.scenario.model import StepBase, Strict
from fleetsim.scenario.semantics import Loc, Problem, Scope, template_problems
from fleetsim.scenario.templating import StructTemplate, Template

RUN_NAMES = {"run_id"}
# CreateJob's jobId pattern (API reference, "CreateJob").
JOB_ID = r"^[a-zA-Z0-9_{}-]{1,64}$"


# How long clean-up waits for a job AWS is deleting (DELETION_IN_PROGRESS) to be gone.
DELETION_WAIT_S = 300.0


async def _cancel_and_delete(c: Any, d: dict[str, Any]) -> bool:
    """Canceled with force, deleted with force, then waited for: "Deleting a job may take
    time ... the status of the job will be shown as DELETION_IN_PROGRESS. Attempting to
    delete or cancel a job whose status is already DELETION_IN_PROGRESS will result in an
    error" (API reference, "DeleteJob")."""
    job_id = d["job_id"]
    try:  # a job that ended already cannot be canceled: delete it all the same
        await c.iot.cancel_job(jobId=job_id, force=True)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code in GONE:
            return False
        # CancelJob's errors (API reference, "CancelJob") name no InvalidStateTransition: a
        # COMPLETED job is refused with InvalidRequestException.
        if code not in ("InvalidRequestException", "InvalidStateTransitionException"):
            raise
    if await _status(c, job_id) != "DELETION_IN_PROGRESS":
        await with_retry(lambda: c.iot.delete_job(jobId=job_id, force=True))
    deadline = time.monotonic() + DELETION_WAIT_S
    delay = 0.1
    while (status := await _status(c, job_id)) is not None:
        if time.monotonic() > deadline:
            raise ClientError({"Error": {"Code": "JobNotDeleted", "Message": (
                f"job {job_id} is still {status} after {DELETION_WAIT_S:g} s")}}, "DeleteJob")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
    return True


async def _status(c: Any, job_id: str) -> str | None:
    """The job's status; None once it is gone."""
    try:
        return str((await c.iot.describe_job(jobId=job_id))["job"]["status"])
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in GONE:
            return None
        raise


JOB = JournalKind("job", Phase.DETACH, _cancel_and_delete)


class JobUpload(Strict):
    bucket: str  # may use {run_id}
    key: str = "fleetsim/{run_id}/job-document.json"
    create_bucket: bool = False


class PresignedUrlConfig(Strict):
    role_arn: str  # the role AWS IoT assumes to read the S3 objects
    expires_in_sec: int = Field(default=3600, ge=60, le=3600)


class CreateJobStep(StepBase):
    kind: Literal["create_job"]
    job_id: str = "fleetsim-{run_id}"
    fleet: str | None = None  # targets: every thing of this fleet
    group: str | None = None  # or this thing group (and its child groups)
    document: dict[str, Any] | None = None  # string values may use {run_id}
    document_file: str | None = None  # a JSON file, relative to the scenario
    upload: JobUpload | None = None  # put the document in S3, the job references its URL
    presigned_url_config: PresignedUrlConfig | None = None
    target_selection: Literal["SNAPSHOT", "CONTINUOUS"] = "SNAPSHOT"
    description: str | None = None
    rollout_config: dict[str, Any] | None = None  # jobExecutionsRolloutConfig
    abort_config: dict[str, Any] | None = None  # abortConfig
    timeout_config: dict[str, Any] | None = None  # timeoutConfig
    retry_config: dict[str, Any] | None = None  # jobExecutionsRetryConfig

    file_fields: ClassVar[tuple[str, ...]] = ("document_file",)

    @model_validator(mode="after")
    def _one_of_each(self) -> CreateJobStep:
        if (self.fleet is None) == (self.group is None):
            raise ValueError("give the job's targets as either 'fleet' or 'group'")
        if (self.document is None) == (self.document_file is None):
            raise ValueError("give the job document as either 'document' or 'document_file'")
        return self

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        problems = scope.unknown_fleet(self.fleet, (*at, "fleet"))
        problems += template_problems((*at, "job_id"), self.job_id, RUN_NAMES)
        if self.document is not None:
            problems += template_problems((*at, "document"), self.document, RUN_NAMES)
        if self.upload is not None:
            problems += template_problems((*at, "upload", "bucket"), self.upload.bucket,
                                          RUN_NAMES)
            problems += template_problems((*at, "upload", "key"), self.upload.key, RUN_NAMES)
        return problems


def job_id_of(template: str, ctx: RunContext) -> str:
    job_id = Template(template, RUN_NAMES).render({"run_id": ctx.run_id})
    if not re.match(JOB_ID, job_id):
        raise UserError(f"job id {job_id!r} does not match CreateJob's pattern {JOB_ID} "
                        "(letters, digits, '-', '_', at most 64)")
    return job_id


def _document(ctx: RunContext, step: CreateJobStep) -> bytes:
    if step.document_file is not None:
        path = Path(step.document_file)
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: the job document is not readable JSON ({e})") from e
        return path.read_bytes()
    doc = StructTemplate(step.document, RUN_NAMES).render({"run_id": ctx.run_id})
    return json.dumps(doc).encode()


async def _targets(ctx: RunContext, step: CreateJobStep) -> list[str]:
    if step.group is not None:
        described = await api_call(ctx, "DescribeThingGroup", step.group,
                                   thingGroupName=step.group)
        return [described["thingGroupArn"]]
    assert step.fleet is not None
    caller = await api_call(ctx, "GetCallerIdentity", client=ctx.sts)
    partition = str(caller.get("Arn", "arn:aws:")).split(":")[1] or "aws"
    prefix = f"arn:{partition}:iot:{ctx.target.region}:{caller['Account']}:thing/"
    return [prefix + d.thing_name for d in ctx.fleet_devices(step.fleet)]


async def _reused(ctx: RunContext, step: CreateJobStep, job_id: str, targets: list[str],
                  body: bytes) -> bool:
    """True if job `job_id` is there as declared (reused); StepFailed if it is there but
    differs in what cannot be changed."""
    have = await describe(ctx, "DescribeJob", job_id, jobId=job_id)
    if have is None:
        return False
    job = have["job"]
    if job.get("status") == "DELETION_IN_PROGRESS":
        raise StepFailed(f"job {job_id} is being deleted (DELETION_IN_PROGRESS): run again "
                         "once it is gone, or give the step another job_id")
    items = [] if sorted(job.get("targets") or []) == sorted(targets) else [
        f"targets are {', '.join(job.get('targets') or [])} (want {', '.join(targets)})"]
    if step.upload is None:  # an uploaded document is read by AWS at CreateJob: not compared
        got = await api_call(ctx, "GetJobDocument", job_id, jobId=job_id)
        items += document_item("document", got.get("document") or "", body.decode())
    if items:
        ctx.reconcile.drifted(JOB.name, job_id, items, fixable=False)
        raise StepFailed(f"job {job_id} exists with other {' and '.join(items)}: a job's "
                         "targets and document cannot be changed; remove it (fleetsim "
                         "cleanup) or give the step another job_id")
    ctx.reconcile.reuse(JOB.name, job_id)
    ctx.jobs[job_id] = {"jobId": job_id, "targets": targets,
                        "targetSelection": job.get("targetSelection", step.target_selection)}
    return True


async def run(ctx: RunContext, step: CreateJobStep) -> None:
    job_id = job_id_of(step.job_id, ctx)
    body = _document(ctx, step)
    targets = await _targets(ctx, step)
    if "{run_id}" not in step.job_id and await _reused(ctx, step, job_id, targets, body):
        return
    params: dict[str, Any] = {"jobId": job_id, "targets": targets,
                              "targetSelection": step.target_selection}
    if step.upload is not None:
        names = {"run_id": ctx.run_id}
        bucket = Template(step.upload.bucket, RUN_NAMES).render(names)
        key = Template(step.upload.key, RUN_NAMES).render(names)
        if step.upload.create_bucket:
            await bulk.create_bucket(ctx, bucket)
        await bulk.upload(ctx, bucket, key, body)
        # The lab's form of the URL (the job then reads the object with the role's rights).
        params["documentSource"] = f"https://s3.amazonaws.com/{bucket}/{key}"
    else:
        params["document"] = body.decode()
    if step.presigned_url_config is not None:
        params["presignedUrlConfig"] = {"roleArn": step.presigned_url_config.role_arn,
                                        "expiresInSec": step.presigned_url_config.expires_in_sec}
    for name, value in (("description", step.description),
                        ("jobExecutionsRolloutConfig", step.rollout_config),
                        ("abortConfig", step.abort_config),
                        ("timeoutConfig", step.timeout_config),
                        ("jobExecutionsRetryConfig", step.retry_config)):
        if value is not None:
            params[name] = value
    await journaled(ctx.journal, JOB.name, {"job_id": job_id},
                    api_call(ctx, "CreateJob", job_id, **params))
    ctx.jobs[job_id] = params
    ctx.reconcile.create(JOB.name, job_id)


KIND = StepKind(CreateJobStep, run, journals=(JOB, bulk.S3_OBJECT, bulk.S3_BUCKET))
