"""CloudWatch Logs' JSON API (`Logs_20140328.<Operation>`): thin handlers over `LogsService`."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.logs.records import LogEvent, LogGroup, LogStream
from fleetsim.localcore.features.logs.service import LogsService, invalid_parameter
from fleetsim.localcore.scope import Scope

operations = Operations()
Params = dict[str, Any]


def group_arn(scope: Scope, name: str) -> str:
    return f"arn:aws:logs:{scope.region}:{scope.account_id}:log-group:{name}"


def _group_name(p: Params) -> str:
    """logGroupName, or the name in logGroupIdentifier (a name or a log group ARN)."""
    name, identifier = p.get("logGroupName"), p.get("logGroupIdentifier")
    if name is not None and identifier is not None:
        raise invalid_parameter("LogGroup name and LogGroup ARN are mutually exclusive "
                                "parameters.")
    if identifier is not None:
        if identifier.startswith("arn:"):
            return str(identifier.partition(":log-group:")[2].removesuffix(":*"))
        return str(identifier)
    if name is None:
        raise invalid_parameter("Should provide either logGroupName or logGroupIdentifier.")
    return str(name)


def _page_offset(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise invalid_parameter("The specified nextToken is not valid.")
    return int(token)


def _group(scope: Scope, g: LogGroup) -> Params:
    out: Params = {"logGroupName": g.name, "creationTime": g.created, "metricFilterCount": 0,
                   "arn": group_arn(scope, g.name) + ":*", "storedBytes": g.stored_bytes,
                   "logGroupClass": "STANDARD", "logGroupArn": group_arn(scope, g.name)}
    if g.retention_days is not None:
        out["retentionInDays"] = g.retention_days
    return out


def _stream(scope: Scope, group: str, s: LogStream) -> Params:
    out: Params = {"logStreamName": s.name, "creationTime": s.created,
                   "arn": f"{group_arn(scope, group)}:log-stream:{s.name}",
                   "storedBytes": s.stored_bytes}
    for key, value in (("firstEventTimestamp", s.first_event),
                       ("lastEventTimestamp", s.last_event),
                       ("lastIngestionTime", s.last_ingestion)):
        if value is not None:
            out[key] = value
    return out


def _event(e: LogEvent) -> Params:
    return {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion}


@operations.logs("CreateLogGroup")
def create_log_group(call: Call[LogsService], p: Params) -> None:
    call.service.create_group(call.scope.region, p["logGroupName"])


@operations.logs("DescribeLogGroups")
def describe_log_groups(call: Call[LogsService], p: Params) -> Params:
    prefix, contains = p.get("logGroupNamePrefix"), p.get("logGroupNamePattern")
    if prefix is not None and contains is not None:
        raise invalid_parameter("LogGroup name prefix and LogGroup name pattern are mutually "
                                "exclusive parameters.")
    token = p.get("nextToken")
    groups, last = call.service.describe_groups(call.scope.region, prefix or "",
                                                contains or "", token or "",
                                                p.get("limit") or 50)
    out: Params = {"logGroups": [_group(call.scope, g) for g in groups]}
    if last is not None:
        out["nextToken"] = last
    return out


@operations.logs("DeleteLogGroup")
def delete_log_group(call: Call[LogsService], p: Params) -> None:
    call.service.delete_group(call.scope.region, p["logGroupName"])


@operations.logs("PutRetentionPolicy")
def put_retention_policy(call: Call[LogsService], p: Params) -> None:
    call.service.put_retention(call.scope.region, p["logGroupName"], p["retentionInDays"])


@operations.logs("DeleteRetentionPolicy")
def delete_retention_policy(call: Call[LogsService], p: Params) -> None:
    call.service.delete_retention(call.scope.region, p["logGroupName"])


@operations.logs("CreateLogStream")
def create_log_stream(call: Call[LogsService], p: Params) -> None:
    call.service.create_stream(call.scope.region, p["logGroupName"], p["logStreamName"])


@operations.logs("DescribeLogStreams")
def describe_log_streams(call: Call[LogsService], p: Params) -> Params:
    group = _group_name(p)
    streams, offset = call.service.describe_streams(
        call.scope.region, group, p.get("logStreamNamePrefix") or "",
        p.get("orderBy") or "LogStreamName", bool(p.get("descending")),
        _page_offset(p.get("nextToken")), p.get("limit") or 50)
    out: Params = {"logStreams": [_stream(call.scope, group, s) for s in streams]}
    if offset is not None:
        out["nextToken"] = str(offset)
    return out


@operations.logs("DeleteLogStream")
def delete_log_stream(call: Call[LogsService], p: Params) -> None:
    call.service.delete_stream(call.scope.region, p["logGroupName"], p["logStreamName"])


@operations.logs("PutLogEvents")
def put_log_events(call: Call[LogsService], p: Params) -> Params:
    events = [(e["timestamp"], e["message"]) for e in p["logEvents"]]
    accepted = call.service.put_log_events(call.scope.region, p["logGroupName"],
                                           p["logStreamName"], events)
    # The sequence token is ignored now ("PutLogEvents"), but still answered.
    out: Params = {"nextSequenceToken": f"{accepted.end:056d}"}
    if accepted.rejected:
        out["rejectedLogEventsInfo"] = accepted.rejected
    return out


@operations.logs("GetLogEvents")
def get_log_events(call: Call[LogsService], p: Params) -> Params:
    page = call.service.get_log_events(
        call.scope.region, _group_name(p), p["logStreamName"], p.get("startTime"),
        p.get("endTime"), p.get("nextToken"), p.get("limit"), bool(p.get("startFromHead")))
    return {"events": [_event(e) for e in page.events],
            "nextForwardToken": page.forward_token, "nextBackwardToken": page.backward_token}


@operations.logs("FilterLogEvents")
def filter_log_events(call: Call[LogsService], p: Params) -> Params:
    page = call.service.filter_log_events(
        call.scope.region, _group_name(p), p.get("logStreamNames"),
        p.get("logStreamNamePrefix"), p.get("startTime"), p.get("endTime"),
        p.get("filterPattern"), p.get("nextToken"), p.get("limit"))
    out: Params = {"events": [{"logStreamName": e.stream_name, **_event(e),
                               "eventId": f"{e.timestamp:020d}{e.id:036d}"}
                              for e in page.events],
                   "searchedLogStreams": []}
    if page.next_token is not None:
        out["nextToken"] = page.next_token
    return out

