"""Bulk registration tasks ("Bulk registration", StartThingRegistrationTask and the other
ThingRegistrationTask operations of the AWS IoT API reference).

A task reads its newline-delimited JSON input file from S3 and provisions one device a line
with the template, through the provisioning feature's `provision_from_template`, in the
background (an asyncio task in local core). Each line is provisioned and its report line stored
in one transaction, so a line either provisioned and is reported or left nothing behind; one
bad line becomes one ERRORS line and the others still provision. At the end the RESULTS and
ERRORS reports are written to S3 and listed as presigned URLs.

"Only one bulk registration operation task can run at a time (per account)": a second start
while one is InProgress is refused. A task that was InProgress (or Cancelling) when local core
stopped resumes at its next unprocessed line when local core starts again."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from fleetsim.localcore.errors import AwsError, found, invalid
from fleetsim.localcore.features.bulk import report
from fleetsim.localcore.features.bulk.store import TaskRow, TaskStore
from fleetsim.localcore.scope import Scope

log = logging.getLogger(__name__)

IN_PROGRESS, COMPLETED, FAILED = "InProgress", "Completed", "Failed"
CANCELLED, CANCELLING = "Cancelled", "Cancelling"
REPORT_TYPES = ("RESULTS", "ERRORS")
LINK_SECONDS = 3600  # how long a report link stays valid


class BulkService:
    def __init__(self, store: TaskStore, services: Any, api_url: Callable[[], str],
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._services = services  # looked up at use: s3, provisioning
        self._api_url = api_url
        self._clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}
        self._resumed = False

    # --- operations --------------------------------------------------------------------------

    def start(self, scope: Scope, template_body: str, bucket: str, key: str,
              role_arn: str) -> str:
        self.resume()
        try:
            json.loads(template_body)
        except ValueError as e:
            raise invalid(f"The template body is not valid JSON: {e}") from None
        busy = [t for t in self._store.tasks_in(IN_PROGRESS, CANCELLING)
                if t.account_id == scope.account_id]
        if busy:
            raise invalid("Only one bulk registration task can run at a time in an account: "
                          f"task {busy[0].task_id} is {busy[0].status}")
        now = self._clock()
        task_id = str(uuid.uuid4())
        self._store.create(TaskRow(task_id, scope.account_id, scope.region, IN_PROGRESS,
                                   template_body, bucket, key, role_arn, now, now, None, 0, 0,
                                   None))
        self._launch(task_id)
        return task_id

    def describe(self, scope: Scope, task_id: str) -> dict[str, Any]:
        self.resume()
        task = self._require(scope, task_id)
        out: dict[str, Any] = {
            "taskId": task.task_id, "creationDate": task.created,
            "lastModifiedDate": task.last_modified, "templateBody": task.template_body,
            "inputFileBucket": task.input_bucket, "inputFileKey": task.input_key,
            "roleArn": task.role_arn, "status": task.status,
            "successCount": task.success_count, "failureCount": task.failure_count,
            "percentageProgress": _progress(task)}
        if task.message:
            out["message"] = task.message
        return out

    def list_ids(self, scope: Scope, status: str | None) -> list[str]:
        self.resume()
        return self._store.task_ids(scope.region, status)

    def stop(self, scope: Scope, task_id: str) -> None:
        """An InProgress task becomes Cancelling, then Cancelled once its current line is
        done; the lines processed so far stay provisioned and reported."""
        self.resume()
        task = self._require(scope, task_id)
        if task.status != IN_PROGRESS:
            raise invalid(f"Task {task_id} is {task.status}; only an InProgress task can be "
                          "stopped")
        self._store.set_status(task_id, CANCELLING, self._clock())

    def report_links(self, scope: Scope, task_id: str, report_type: str) -> list[str]:
        self.resume()
        task = self._require(scope, task_id)
        if task.status in (IN_PROGRESS, CANCELLING):
            return []
        s3 = self._services.get("s3")
        bucket, key = _report_location(task, report_type)
        try:
            s3.head_object(bucket, key)
        except Exception:  # no report of this type (no line of it)
            return []
        return [self._presigned(task.region, bucket, key)]

    # --- running -----------------------------------------------------------------------------

    def resume(self) -> None:
        """Start again every task local core was running when it stopped (once)."""
        if self._resumed:
            return
        self._resumed = True
        for task in self._store.tasks_in(IN_PROGRESS, CANCELLING):
            log.info("resuming bulk registration task %s", task.task_id)
            self._launch(task.task_id)

    def _launch(self, task_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(task_id),
                                                      name=f"bulk-{task_id}")
        self._running[task_id] = task
        task.add_done_callback(lambda _: self._running.pop(task_id, None))

    async def _run(self, task_id: str) -> None:
        task = self._store.task(task_id)
        assert task is not None
        scope = Scope(task.account_id, task.region)
        try:
            data = self._services.get("s3").read_object(task.input_bucket, task.input_key)
        except Exception as e:
            self._store.set_status(task_id, FAILED, self._clock(), "The input file "
                                   f"s3://{task.input_bucket}/{task.input_key} cannot be read: "
                                   f"{getattr(e, 'message', e)}")
            return
        lines = list(report.input_lines(data))
        self._store.set_total(task_id, len(lines), self._clock())
        done = self._store.done_offsets(task_id)
        for offset, text in lines:
            await asyncio.sleep(0)  # let the API answer between lines
            current = self._store.task(task_id)
            if current is None or current.status == CANCELLING:
                break
            if offset not in done:
                self._provision_line(scope, task, offset, text)
        self._write_reports(task)
        final = self._store.task(task_id)
        status = CANCELLED if final is not None and final.status == CANCELLING else COMPLETED
        self._store.set_status(task_id, status, self._clock())

    def _provision_line(self, scope: Scope, task: TaskRow, offset: int, text: str) -> None:
        provisioning = self._services.get("provisioning")
        db = self._store.db
        try:
            params = report.parameters(text)
            with db.transaction():
                result = provisioning.provision_from_template(
                    scope, task.template_body, params, certificate_pem_out=True)
                self._store.record_line(task.task_id, offset, "RESULTS", report.result_line(
                    offset, result.certificate_pem, result.resource_arns), self._clock())
            return
        except report.LineError as e:
            code, message = "InvalidRequestException", str(e)
        except AwsError as e:
            code, message = e.code, e.message
        except Exception as e:  # a bug must not stop the other lines
            log.exception("bulk task %s, offset %d", task.task_id, offset)
            code, message = "InternalFailureException", f"An unexpected error has occurred: {e}"
        self._store.record_line(task.task_id, offset, "ERRORS",
                                report.error_line(offset, code, message), self._clock())

    def _write_reports(self, task: TaskRow) -> None:
        s3 = self._services.get("s3")
        for report_type in REPORT_TYPES:
            lines = self._store.lines(task.task_id, report_type)
            if not lines:
                continue
            bucket, key = _report_location(task, report_type)
            s3.ensure_bucket(bucket, task.region)
            s3.put_object(bucket, key, ("\n".join(lines) + "\n").encode(), "application/json")

    # --- helpers -----------------------------------------------------------------------------

    def _require(self, scope: Scope, task_id: str) -> TaskRow:
        task = self._store.task(task_id)
        if task is not None and (task.account_id, task.region) != (scope.account_id,
                                                                      scope.region):
            task = None
        return found(task, f"Task {task_id} cannot be found.")

    def _presigned(self, region: str, bucket: str, key: str) -> str:
        return str(self._services.get("s3").presigned_get(self._api_url(), region, bucket, key,
                                                          LINK_SECONDS))


def report_bucket(account_id: str, region: str) -> str:
    """Where local core keeps task reports (AWS keeps them in a bucket of its own)."""
    return f"iot-registration-reports-{account_id}-{region}"


def _report_location(task: TaskRow, report_type: str) -> tuple[str, str]:
    return (report_bucket(task.account_id, task.region),
            f"{task.task_id}/{report_type.lower()}.json")


def _progress(task: TaskRow) -> int:
    if task.status == COMPLETED:
        return 100
    if not task.total:
        return 0
    return min(100, (task.success_count + task.failure_count) * 100 // task.total)
