"""The ThingRegistrationTask operations of the `iot` API, bound to `BulkService`."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.api.paging import listing, page_size, slice_page
from fleetsim.localcore.features.bulk.service import BulkService

operations = Operations()
iot = operations.iot
B = Call[BulkService]
DEFAULT_PAGE = 250  # AWS documents maxResults 1-250 and no default; ours is the maximum


def _page(items: list[str], p: dict[str, Any]) -> tuple[list[str], str | None]:
    return slice_page(items, p.get("nextToken"), page_size(p, default=DEFAULT_PAGE))


@iot("StartThingRegistrationTask")
def start_thing_registration_task(call: B, p: dict[str, Any]) -> dict[str, Any]:
    return {"taskId": call.service.start(call.scope, p["templateBody"], p["inputFileBucket"],
                                         p["inputFileKey"], p["roleArn"])}


@iot("DescribeThingRegistrationTask")
def describe_thing_registration_task(call: B, p: dict[str, Any]) -> dict[str, Any]:
    return call.service.describe(call.scope, p["taskId"])


@iot("ListThingRegistrationTasks")
def list_thing_registration_tasks(call: B, p: dict[str, Any]) -> dict[str, Any]:
    ids, token = _page(call.service.list_ids(call.scope, p.get("status")), p)
    return listing("taskIds", ids, "nextToken", token)


@iot("StopThingRegistrationTask")
def stop_thing_registration_task(call: B, p: dict[str, Any]) -> None:
    call.service.stop(call.scope, p["taskId"])


@iot("ListThingRegistrationTaskReports")
def list_thing_registration_task_reports(call: B, p: dict[str, Any]) -> dict[str, Any]:
    links, token = _page(call.service.report_links(call.scope, p["taskId"], p["reportType"]), p)
    return {**listing("resourceLinks", links, "nextToken", token), "reportType": p["reportType"]}
