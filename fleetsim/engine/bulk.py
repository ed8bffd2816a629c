"""Bulk registration as AWS runs it ("Bulk registration" in the AWS IoT developer guide): a
newline-delimited JSON parameters file in S3, one line per device; the task's RESULTS and
ERRORS reports name each line by its `offset` (0-based line number)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fleetsim.control.cleanup import JournalKind, Phase, retried, with_retry
from fleetsim.control.clients import AwsClients
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import api_call

S3_OBJECT = JournalKind("s3_object", Phase.DETACH,  # before its bucket
                        lambda c, d: c.s3.delete_object(Bucket=d["bucket"], Key=d["key"]))


async def _empty_and_delete(clients: AwsClients, d: dict[str, Any]) -> None:
    """A bucket the run made: what is still in it (objects the run put there and did not
    journal one by one), then the bucket, which S3 deletes only empty (BucketNotEmpty)."""
    s3, bucket = clients.s3, d["bucket"]
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            await retried(s3.delete_object, Bucket=bucket, Key=obj["Key"])
    await with_retry(lambda: s3.delete_bucket(Bucket=bucket))


S3_BUCKET = JournalKind("s3_bucket", Phase.DELETE, _empty_and_delete)
TASK_OP = "provision.task"  # a registration task, from start until it ends
# What describe-thing-registration-task reports while the task has not ended.
RUNNING = {"InProgress", "Cancelling"}


def parameters_file(lines: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()


@dataclass
class Reports:
    """What a task's reports say, by offset."""

    results: dict[int, dict[str, Any]] = field(default_factory=dict)  # offset -> response
    errors: dict[int, tuple[str, str]] = field(default_factory=dict)  # offset -> code, message

    def add_lines(self, report_type: str, text: str) -> None:
        for raw in text.splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            offset = int(line["offset"])
            if report_type == "RESULTS":
                self.results[offset] = line["response"]
            else:
                self.errors[offset] = (str(line.get("errorCode", "Error")),
                                       str(line.get("errorMessage", "")))


async def create_bucket(ctx: RunContext, bucket: str) -> None:
    """A bucket in the target's region (us-east-1 takes no LocationConstraint), journaled."""
    params: dict[str, Any] = {"Bucket": bucket}
    if ctx.target.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.target.region}
    await api_call(ctx, "CreateBucket", bucket, client=ctx.s3, **params)
    ctx.journal.record(S3_BUCKET.name, bucket=bucket)


async def upload(ctx: RunContext, bucket: str, key: str, body: bytes) -> None:
    ctx.journal.record(S3_OBJECT.name, bucket=bucket, key=key)  # an overwrite is ours too
    await api_call(ctx, "PutObject", key, client=ctx.s3, Bucket=bucket, Key=key, Body=body)


async def read_reports(ctx: RunContext, task_id: str) -> Reports:
    """Both reports, each from the presigned links list-thing-registration-task-reports gives
    (as the lab downloads them with wget)."""
    return await fetch_reports(lambda report_type, more: api_call(
        ctx, "ListThingRegistrationTaskReports", task_id, taskId=task_id,
        reportType=report_type, **more))


async def fetch_reports(list_page: Callable[[str, dict[str, str]], Awaitable[dict[str, Any]]]
                        ) -> Reports:
    """Both reports of a task; `list_page(report_type, {"nextToken": ...} or {})` is one page
    of ListThingRegistrationTaskReports."""
    import aiohttp  # only bulk registration needs it: not imported by every run

    reports = Reports()
    async with aiohttp.ClientSession() as http:
        for report_type in ("RESULTS", "ERRORS"):
            token: str | None = None
            while True:
                page = await list_page(report_type, {"nextToken": token} if token else {})
                for link in page.get("resourceLinks", []):
                    async with http.get(link) as response:
                        response.raise_for_status()
                        reports.add_lines(report_type, await response.text())
                token = page.get("nextToken")
                if not token:
                    break
    return reports
