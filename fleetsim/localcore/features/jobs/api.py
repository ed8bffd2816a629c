"""IoT Jobs over HTTP: the `iot` control-plane operations (jobs, job executions, job
templates) and the `iot-jobs-data` device operations ("Jobs device HTTP API"), thin over
`JobsService`. Device errors become the data plane's HTTP errors."""

from __future__ import annotations

import json
from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.jobs import payloads
from fleetsim.localcore.features.jobs import states as st
from fleetsim.localcore.features.jobs.records import ExecutionRecord, JobRecord, TemplateRecord
from fleetsim.localcore.features.jobs.service import DeviceError, JobsService, Update

operations = Operations()
J = Call[JobsService]


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# --- control plane (iot) ---------------------------------------------------------------------

def _job(job: JobRecord, counts: dict[str, int]) -> dict[str, Any]:
    return _clean({
        "jobArn": job.arn, "jobId": job.job_id, "targetSelection": job.target_selection,
        "status": job.status, "forceCanceled": job.force_canceled,
        "reasonCode": job.reason_code, "comment": job.comment, "targets": list(job.targets),
        "description": job.description, "createdAt": job.created,
        "lastUpdatedAt": job.updated, "completedAt": job.completed,
        # processingTargets: "The target devices to which the job execution is being rolled
        # out. This value will be null after the job execution has finished rolling out to all
        # the target devices." (API reference, "JobProcessDetails")
        "jobProcessDetails": st.process_details(
            counts, job.targets if job.targets_waiting else ()),
        "jobTemplateArn": job.template_arn,
        "isConcurrent": False, **job.config})


@operations.iot("CreateJob")
def create_job(call: J, p: dict[str, Any]) -> dict[str, Any]:
    job = call.service.create_job(call.scope, p)
    return _clean({"jobArn": job.arn, "jobId": job.job_id, "description": job.description})


@operations.iot("DescribeJob")
def describe_job(call: J, p: dict[str, Any]) -> dict[str, Any]:
    job, counts = call.service.describe_job(call.scope, p["jobId"])
    return _clean({"job": _job(job, counts), "documentSource": job.document_source})


@operations.iot("ListJobs")
def list_jobs(call: J, p: dict[str, Any]) -> dict[str, Any]:
    jobs, last = call.service.list_jobs(
        call.scope, paging.decode_int(p.get("nextToken")), paging.page_size(p),
        p.get("status"), p.get("targetSelection"), p.get("thingGroupName"))
    return _clean({"jobs": [_clean({
        "jobArn": j.arn, "jobId": j.job_id, "targetSelection": j.target_selection,
        "status": j.status, "createdAt": j.created, "lastUpdatedAt": j.updated,
        "completedAt": j.completed, "isConcurrent": False}) for j in jobs],
        "nextToken": paging.next_token(last)})


@operations.iot("GetJobDocument")
def get_job_document(call: J, p: dict[str, Any]) -> dict[str, Any]:
    return {"document": call.service.get_job_document(call.scope, p["jobId"],
                                                      bool(p.get("beforeSubstitution")))}


@operations.iot("UpdateJob")
def update_job(call: J, p: dict[str, Any]) -> None:
    call.service.update_job(call.scope, p["jobId"], p)


@operations.iot("CancelJob")
def cancel_job(call: J, p: dict[str, Any]) -> dict[str, Any]:
    job = call.service.cancel_job(call.scope, p["jobId"], bool(p.get("force")),
                                  p.get("reasonCode"), p.get("comment"))
    return _clean({"jobArn": job.arn, "jobId": job.job_id, "description": job.description})


@operations.iot("DeleteJob")
def delete_job(call: J, p: dict[str, Any]) -> None:
    call.service.delete_job(call.scope, p["jobId"], bool(p.get("force")))


def _summary(e: ExecutionRecord) -> dict[str, Any]:
    return _clean({"status": e.status, "queuedAt": e.queued_at, "startedAt": e.started_at,
                   "lastUpdatedAt": e.updated_at, "executionNumber": e.execution_number,
                   "retryAttempt": e.retry_attempt})


@operations.iot("DescribeJobExecution")
def describe_job_execution(call: J, p: dict[str, Any]) -> dict[str, Any]:
    e = call.service.describe_execution(call.scope, p["jobId"], p["thingName"],
                                        p.get("executionNumber"))
    return {"execution": _clean({
        "jobId": e.job_id, "status": e.status, "forceCanceled": e.force_canceled,
        "statusDetails": {"detailsMap": dict(e.status_details)},
        "thingArn": call.scope.arn("thing", e.thing_name), "queuedAt": e.queued_at,
        "startedAt": e.started_at, "lastUpdatedAt": e.updated_at,
        "executionNumber": e.execution_number, "versionNumber": e.version,
        "approximateSecondsBeforeTimedOut": payloads.seconds_left(e, call.service.now())})}


@operations.iot("ListJobExecutionsForJob")
def list_job_executions_for_job(call: J, p: dict[str, Any]) -> dict[str, Any]:
    size = paging.page_size(p)
    page = call.service.executions_for_job(call.scope, p["jobId"], p.get("status"),
                                           paging.decode_int(p.get("nextToken")), size + 1)
    return _clean({"executionSummaries": [
        {"thingArn": call.scope.arn("thing", e.thing_name), "jobExecutionSummary": _summary(e)}
        for e in page[:size]],
        "nextToken": paging.next_token(page[size - 1].seq if len(page) > size else None)})


@operations.iot("ListJobExecutionsForThing")
def list_job_executions_for_thing(call: J, p: dict[str, Any]) -> dict[str, Any]:
    executions = call.service.executions_for_thing(call.scope, p["thingName"], p.get("status"),
                                                   p.get("jobId"))
    page, token = paging.slice_page(executions, p.get("nextToken"), paging.page_size(p))
    return _clean({"executionSummaries": [
        {"jobId": e.job_id, "jobExecutionSummary": _summary(e)} for e in page],
        "nextToken": token})


@operations.iot("CancelJobExecution")
def cancel_job_execution(call: J, p: dict[str, Any]) -> None:
    call.service.cancel_execution(call.scope, p["jobId"], p["thingName"], bool(p.get("force")),
                                  p.get("expectedVersion"), p.get("statusDetails"))


@operations.iot("DeleteJobExecution")
def delete_job_execution(call: J, p: dict[str, Any]) -> None:
    call.service.delete_execution(call.scope, p["jobId"], p["thingName"],
                                  p["executionNumber"], bool(p.get("force")))


def _template(t: TemplateRecord) -> dict[str, Any]:
    return _clean({"jobTemplateArn": t.arn, "jobTemplateId": t.template_id,
                   "description": t.description, "documentSource": t.document_source,
                   "document": t.document, "createdAt": t.created, **t.config})


@operations.iot("CreateJobTemplate")
def create_job_template(call: J, p: dict[str, Any]) -> dict[str, Any]:
    t = call.service.create_template(call.scope, p)
    return {"jobTemplateArn": t.arn, "jobTemplateId": t.template_id}


@operations.iot("DescribeJobTemplate")
def describe_job_template(call: J, p: dict[str, Any]) -> dict[str, Any]:
    return _template(call.service.describe_template(call.scope, p["jobTemplateId"]))


@operations.iot("ListJobTemplates")
def list_job_templates(call: J, p: dict[str, Any]) -> dict[str, Any]:
    size = paging.page_size(p)
    page = call.service.list_templates(call.scope, paging.decode_str(p.get("nextToken")),
                                       size + 1)
    return _clean({"jobTemplates": [
        {"jobTemplateArn": t.arn, "jobTemplateId": t.template_id, "description": t.description,
         "createdAt": t.created} for t in page[:size]],
        "nextToken": paging.next_token(page[size - 1].template_id if len(page) > size
                                       else None)})


@operations.iot("DeleteJobTemplate")
def delete_job_template(call: J, p: dict[str, Any]) -> None:
    call.service.delete_template(call.scope, p["jobTemplateId"])


# --- data plane (iot-jobs-data) --------------------------------------------------------------

_HTTP_ERRORS = {"ResourceNotFound": "ResourceNotFoundException",
                "InvalidStateTransition": "InvalidStateTransitionException",
                "VersionMismatch": "InvalidStateTransitionException",
                "InvalidRequest": "InvalidRequestException",
                "TerminalStateReached": "TerminalStateException"}


def _http_error(e: DeviceError) -> AwsError:
    return AwsError(_HTTP_ERRORS.get(e.code, "InvalidRequestException"), e.message)


def _document(call: J, e: ExecutionRecord) -> Any:
    return call.service.document_for_device(call.service.job_of(e))


@operations.iot_jobs_data("GetPendingJobExecutions")
def get_pending_job_executions(call: J, p: dict[str, Any]) -> dict[str, Any]:
    in_progress, queued = call.service.pending(call.scope.region, p["thingName"])
    return {"inProgressJobs": [payloads.summary(e) for e in in_progress],
            "queuedJobs": [payloads.summary(e) for e in queued]}


@operations.iot_jobs_data("StartNextPendingJobExecution")
def start_next_pending_job_execution(call: J, p: dict[str, Any]) -> dict[str, Any]:
    try:
        e = call.service.start_next(call.scope.region, p["thingName"], p.get("statusDetails"),
                                    p.get("stepTimeoutInMinutes"))
    except DeviceError as err:
        raise _http_error(err) from None
    if e is None:
        return {}
    return {"execution": _wire_document(payloads.execution(e, _document(call, e),
                                                           call.service.now()))}


def _wire_document(execution: dict[str, Any]) -> dict[str, Any]:
    """The HTTP data plane carries jobDocument as a string (botocore `JobDocument`)."""
    if "jobDocument" in execution:
        execution["jobDocument"] = json.dumps(execution["jobDocument"])
    return execution


@operations.iot_jobs_data("DescribeJobExecution")
def describe_job_execution_data(call: J, p: dict[str, Any]) -> dict[str, Any]:
    job_id = p["jobId"]
    try:
        e = call.service.device_describe(call.scope.region, p["thingName"], job_id,
                                         p.get("executionNumber"))
    except DeviceError as err:
        raise _http_error(err) from None
    if e is None:
        raise AwsError("ResourceNotFoundException",
                       f"Thing {p['thingName']} has no pending job execution.")
    if job_id != "$next" and e.status in st.TERMINAL:
        raise AwsError("TerminalStateException",
                       f"The job execution of job {job_id} is {e.status}, a terminal state.")
    include = p.get("includeJobDocument")
    document = _document(call, e) if include is None or include else None
    return {"execution": _wire_document(payloads.execution(e, document, call.service.now()))}


@operations.iot_jobs_data("UpdateJobExecution")
def update_job_execution(call: J, p: dict[str, Any]) -> dict[str, Any]:
    try:
        e = call.service.update(call.scope.region, p["thingName"], p["jobId"], Update(
            p.get("status"), p.get("statusDetails"), p.get("expectedVersion"),
            p.get("executionNumber"), p.get("stepTimeoutInMinutes")))
    except DeviceError as err:
        raise _http_error(err) from None
    out: dict[str, Any] = {}
    if p.get("includeJobExecutionState"):
        out["executionState"] = payloads.state(e)
    if p.get("includeJobDocument"):
        out["jobDocument"] = _document(call, e)
    return out
