"""CloudWatch Logs on local core's port: aioboto3's `logs` client, the AWS CLI as the
fine-grained logging lab uses it (`aws logs filter-log-events --log-group-name AWSIotLogsV2
... --filter-pattern "{$.logLevel = INFO}"`), paging over many events, AWS's errors."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from tests.awscli import AWS
from tests.conftest import aws_env

pytestmark = pytest.mark.interop


def logs_client(core: RunningLocalCore) -> Any:
    return aioboto3.Session().client(
        "logs", endpoint_url=core.api_url, region_name="us-east-1", aws_access_key_id="x",
        aws_secret_access_key="x")


def now_ms() -> int:
    return int(time.time() * 1000)


async def code(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        await call
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


async def test_groups_streams_and_errors(core: RunningLocalCore) -> None:
    async with logs_client(core) as logs:
        for name in ("/app/a", "/app/b", "/other", "AWSIotLogsV2-x"):
            await logs.create_log_group(logGroupName=name)
        assert await code(logs.create_log_group(logGroupName="/app/a")) == (
            "ResourceAlreadyExistsException", "The specified log group already exists")
        got = await logs.describe_log_groups(logGroupNamePrefix="/app/", limit=1)
        assert [g["logGroupName"] for g in got["logGroups"]] == ["/app/a"]
        assert got["logGroups"][0]["arn"] == \
            "arn:aws:logs:us-east-1:123456789012:log-group:/app/a:*"
        rest = await logs.describe_log_groups(logGroupNamePrefix="/app/",
                                              nextToken=got["nextToken"])
        assert [g["logGroupName"] for g in rest["logGroups"]] == ["/app/b"]
        assert "nextToken" not in rest
        bad = await code(logs.create_log_group(logGroupName="has space"))
        assert bad[0] == "InvalidParameterException" and "'logGroupName'" in bad[1]

        await logs.create_log_stream(logGroupName="/app/a", logStreamName="s1")
        assert (await code(logs.create_log_stream(logGroupName="/app/a",
                                                  logStreamName="s1")))[0] == \
            "ResourceAlreadyExistsException"
        assert await code(logs.create_log_stream(logGroupName="/nope", logStreamName="s")) == (
            "ResourceNotFoundException", "The specified log group does not exist.")
        assert await code(logs.get_log_events(logGroupName="/app/a", logStreamName="s9")) == (
            "ResourceNotFoundException", "The specified log stream does not exist.")
        await logs.put_retention_policy(logGroupName="/app/a", retentionInDays=7)
        assert (await code(logs.put_retention_policy(logGroupName="/app/a",
                                                     retentionInDays=2)))[0] == \
            "InvalidParameterException"
        described = await logs.describe_log_groups(logGroupNamePrefix="/app/a")
        assert described["logGroups"][0]["retentionInDays"] == 7
        await logs.delete_retention_policy(logGroupName="/app/a")
        described = await logs.describe_log_groups(logGroupNamePrefix="/app/a")
        assert "retentionInDays" not in described["logGroups"][0]

        await logs.delete_log_stream(logGroupName="/app/a", logStreamName="s1")
        await logs.delete_log_group(logGroupName="/app/b")
        assert (await code(logs.delete_log_group(logGroupName="/app/b")))[0] == \
            "ResourceNotFoundException"


async def test_streams_ordered_by_name_or_last_event_and_paged(core: RunningLocalCore) -> None:
    async with logs_client(core) as logs:
        await logs.create_log_group(logGroupName="order")
        t = now_ms()
        for name, offset in (("c", 3), ("a", 2), ("b", 1)):
            await logs.create_log_stream(logGroupName="order", logStreamName=name)
            await logs.put_log_events(logGroupName="order", logStreamName=name,
                                      logEvents=[{"timestamp": t - offset, "message": name}])

        async def names(**kw: Any) -> list[str]:
            got = await logs.describe_log_streams(logGroupName="order", **kw)
            return [s["logStreamName"] for s in got["logStreams"]]

        assert await names() == ["a", "b", "c"]
        assert await names(descending=True) == ["c", "b", "a"]
        assert await names(orderBy="LastEventTime") == ["c", "a", "b"]
        assert await names(orderBy="LastEventTime", descending=True) == ["b", "a", "c"]
        assert await names(logStreamNamePrefix="b") == ["b"]
        paginator = logs.get_paginator("describe_log_streams")
        pages = [p async for p in paginator.paginate(logGroupName="order",
                                                      PaginationConfig={"PageSize": 2})]
        assert [[s["logStreamName"] for s in p["logStreams"]] for p in pages] == \
            [["a", "b"], ["c"]]
        assert await code(logs.describe_log_streams(
            logGroupName="order", orderBy="LastEventTime", logStreamNamePrefix="a")) == (
            "InvalidParameterException", "Cannot order by LastEventTime with a "
                                         "logStreamNamePrefix.")
        stream = (await logs.describe_log_streams(logGroupName="order",
                                                  logStreamNamePrefix="a"))["logStreams"][0]
        assert stream["firstEventTimestamp"] == stream["lastEventTimestamp"] == t - 2


async def test_put_and_get_log_events_with_tokens(core: RunningLocalCore) -> None:
    async with logs_client(core) as logs:
        await logs.create_log_group(logGroupName="get")
        await logs.create_log_stream(logGroupName="get", logStreamName="s")
        t = now_ms() - 60_000
        events = [{"timestamp": t + i, "message": f"line {i}"} for i in range(25)]
        old = [{"timestamp": t - 15 * 86_400_000, "message": "too old"}]
        new = [{"timestamp": t + 3 * 3_600_000, "message": "too new"}]
        put = await logs.put_log_events(logGroupName="get", logStreamName="s",
                                        logEvents=old + events + new)
        assert put["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1,
                                                "tooNewLogEventStartIndex": 26}
        unordered = [events[1], events[0]]
        assert await code(logs.put_log_events(logGroupName="get", logStreamName="s",
                                              logEvents=unordered)) == (
            "InvalidParameterException",
            "Log events in a single PutLogEvents request must be in chronological order.")

        latest = await logs.get_log_events(logGroupName="get", logStreamName="s", limit=10)
        assert [e["message"] for e in latest["events"]] == [f"line {i}" for i in range(15, 25)]
        earlier = await logs.get_log_events(logGroupName="get", logStreamName="s", limit=10,
                                            nextToken=latest["nextBackwardToken"])
        assert [e["message"] for e in earlier["events"]] == [f"line {i}" for i in range(5, 15)]

        seen, token = [], None
        while True:
            kw = {"nextToken": token} if token else {}
            page = await logs.get_log_events(logGroupName="get", logStreamName="s", limit=10,
                                             startFromHead=True, **kw)
            if page["nextForwardToken"] == token:
                assert page["events"] == []  # the end: the same token comes back
                break
            seen += [e["message"] for e in page["events"]]
            token = page["nextForwardToken"]
        assert seen == [e["message"] for e in events]

        window = await logs.get_log_events(logGroupName="get", logStreamName="s",
                                           startTime=t + 5, endTime=t + 8, startFromHead=True)
        assert [e["message"] for e in window["events"]] == ["line 5", "line 6", "line 7"]
        assert all(e["ingestionTime"] >= t for e in window["events"])


async def test_filter_log_events_patterns_streams_and_paging(core: RunningLocalCore) -> None:
    async with logs_client(core) as logs:
        await logs.create_log_group(logGroupName="filter")
        t = now_ms() - 60_000
        for stream, level in (("dev-1", "INFO"), ("dev-2", "ERROR"), ("gw-1", "INFO")):
            await logs.create_log_stream(logGroupName="filter", logStreamName=stream)
            await logs.put_log_events(logGroupName="filter", logStreamName=stream, logEvents=[
                {"timestamp": t + i, "message": json.dumps({"logLevel": level, "n": i})}
                for i in range(300)])

        async def count(**kw: Any) -> int:
            paginator = logs.get_paginator("filter_log_events")
            total = 0
            async for page in paginator.paginate(logGroupName="filter", **kw):
                total += len(page["events"])
            return total

        assert await count() == 900
        assert await count(filterPattern="{$.logLevel = INFO}") == 600
        assert await count(filterPattern='{$.logLevel = "ERROR" && $.n >= 290}') == 10
        assert await count(filterPattern="{$.n < 5 || $.n > 297}", logStreamNames=["gw-1"]) == 7
        assert await count(logStreamNamePrefix="dev-", startTime=t + 100, endTime=t + 110) == 20
        first = await logs.filter_log_events(logGroupName="filter", limit=4,
                                             filterPattern="{$.logLevel = ERROR}")
        assert [e["logStreamName"] for e in first["events"]] == ["dev-2"] * 4
        assert len({e["eventId"] for e in first["events"]}) == 4
        second = await logs.filter_log_events(logGroupName="filter", limit=4,
                                              filterPattern="{$.logLevel = ERROR}",
                                              nextToken=first["nextToken"])
        assert [json.loads(e["message"])["n"] for e in second["events"]] == [4, 5, 6, 7]
        bad = await code(logs.filter_log_events(logGroupName="filter",
                                                filterPattern="{$.logLevel = INFO"))
        assert bad == ("InvalidParameterException",
                       "If a filter pattern starts with '{' it must end with '}'")
        assert (await code(logs.filter_log_events(logGroupName="nope")))[0] == \
            "ResourceNotFoundException"


def test_the_fine_grained_logging_labs_cli_commands(core: RunningLocalCore,
                                                    tmp_path: Path) -> None:
    """The lab's own shell lines, run by bash with the AWS CLI, over AWSIotLogsV2 entries
    written through PutLogEvents as AWS IoT writes them."""
    env = {**aws_env(core), "PATH": f"{AWS.parent}:{os.environ['PATH']}",
           "THING_NAME": "lab-thing"}
    t = now_ms() - 5_000
    entries = [{"timestamp": t + i, "message": json.dumps(
        {"timestamp": "2024-01-01 00:00:00.000", "logLevel": level, "traceId": str(i),
         "accountId": "123456789012", "status": status, "eventType": "Publish-In",
         "protocol": "MQTT", "topicName": "lab/topic", "clientId": client,
         "principalId": "abc", "sourceIp": "127.0.0.1", "sourcePort": 40000 + i})}
        for i, (level, status, client) in enumerate([
            ("INFO", "Success", "lab-thing"), ("ERROR", "Failure", "lab-thing"),
            ("INFO", "Success", "other-thing")])]
    setup = [
        "aws logs create-log-group --log-group-name AWSIotLogsV2",
        "aws logs create-log-stream --log-group-name AWSIotLogsV2 --log-stream-name s1",
        f"aws logs put-log-events --log-group-name AWSIotLogsV2 --log-stream-name s1 "
        f"--log-events '{json.dumps(entries)}'",
    ]
    lab = """
        starttime=$(($(($(date '+%s') - 3600)) * 1000))
        echo ---; aws logs filter-log-events --log-group-name AWSIotLogsV2 \\
          --start-time $starttime
        echo ---; aws logs filter-log-events --log-group-name AWSIotLogsV2 \\
          --start-time $starttime --filter-pattern "{$.logLevel = INFO}"
        echo ---; aws logs filter-log-events --log-group-name AWSIotLogsV2 \\
          --start-time $starttime --filter-pattern "{$.logLevel = ERROR}"
        echo ---; aws logs filter-log-events --log-group-name AWSIotLogsV2 \\
          --start-time $starttime --filter-pattern "{$.clientId = $THING_NAME}"
    """
    for line in setup:
        subprocess.run(["bash", "-c", line], env=env, cwd=tmp_path, check=True,
                       capture_output=True, timeout=60)
    out = subprocess.run(["bash", "-ec", lab], env=env, cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    answers = [json.loads(part) for part in out.split("---")[1:]]
    traces = [[json.loads(e["message"])["traceId"] for e in a["events"]] for a in answers]
    assert traces == [["0", "1", "2"], ["0", "2"], ["1"], ["0", "1"]]
