"""`python -m bench logs`: CloudWatch Logs in local core.

- *put_events*: what AWS IoT logging and Lambda do: `LogsService.put_events` in batches of
  100 entries (AWSIotLogsV2-like JSON, 1,000 streams in one group), in process on a fresh
  database: entries per second.
- *filter-log-events*: a local core process holding 100,000 events (100 streams, written
  with PutLogEvents in batches of 10,000), queried over HTTP with boto3: the latency of one
  FilterLogEvents call (limit 100, a JSON pattern) and of reading every page of a query
  (JSON pattern matching 10 %, a term matching 10 %, no pattern).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from bench.fleet_provision import start_core
from bench.report import Row
from bench.system import machine_info, utc_now
from fleetsim.localcore.db import Database
from fleetsim.localcore.features.logs import clock_ms
from fleetsim.localcore.features.logs.service import LogsService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--logs-entries", type=int, default=200_000, metavar="N",
                        help="logs bench: entries written through put_events")
    parser.add_argument("--logs-filter-events", type=int, default=100_000, metavar="N",
                        help="logs bench: events filter-log-events searches")


def _entry(i: int) -> str:
    return json.dumps({"timestamp": "2024-01-01 00:00:00.000",
                       "logLevel": "ERROR" if i % 10 == 0 else "INFO", "traceId": str(i),
                       "eventType": "Publish-In", "clientId": f"dev-{i % 1000}",
                       "topicName": f"dt/dev-{i % 1000}/telemetry", "status": "Success"})


def _put_events_rate(workdir: Path, entries: int) -> dict[str, Any]:
    db = Database(workdir / "put.db", "us-east-1")
    service = LogsService(db, clock_ms)
    now = clock_ms()
    batches = [[(now + j, _entry(i + j)) for j in range(100)] for i in range(0, entries, 100)]
    started = time.perf_counter()
    for n, batch in enumerate(batches):
        service.put_events("us-east-1", "AWSIotLogsV2", f"stream-{n % 1000}", batch)
    elapsed = time.perf_counter() - started
    db.close()
    return {"entries": entries, "batch": 100, "seconds": round(elapsed, 3),
            "entries_per_s": round(entries / elapsed)}


def _filter_latency(workdir: Path, events: int) -> dict[str, Any]:
    core = start_core(workdir / "state", workdir / "localcore.log")
    try:
        logs = boto3.client("logs", endpoint_url=core.api_url, region_name="us-east-1",
                            aws_access_key_id="x", aws_secret_access_key="x")
        logs.create_log_group(logGroupName="bench")
        now = clock_ms() - 3_600_000
        per_stream = events // 100
        for s in range(100):
            logs.create_log_stream(logGroupName="bench", logStreamName=f"s{s}")
            for start in range(0, per_stream, 10_000):
                n = min(10_000, per_stream - start)
                logs.put_log_events(logGroupName="bench", logStreamName=f"s{s}", logEvents=[
                    {"timestamp": now + start + i, "message": _entry(s * per_stream + start + i)}
                    for i in range(n)])

        def one_call() -> float:
            started = time.perf_counter()
            logs.filter_log_events(logGroupName="bench", limit=100,
                                   filterPattern="{$.logLevel = ERROR}")
            return (time.perf_counter() - started) * 1000

        def all_pages(pattern: str) -> tuple[float, int, int]:
            started, found, pages = time.perf_counter(), 0, 0
            for page in logs.get_paginator("filter_log_events").paginate(
                    logGroupName="bench", filterPattern=pattern):
                found += len(page["events"])
                pages += 1
            return (time.perf_counter() - started) * 1000, found, pages

        calls = [one_call() for _ in range(20)]
        out: dict[str, Any] = {"events": per_stream * 100,
                               "one_call_limit_100_ms_p50": round(statistics.median(calls), 1)}
        for name, pattern in (("json", "{$.logLevel = ERROR}"), ("term", "ERROR"),
                              ("none", "")):
            ms, found, pages = all_pages(pattern)
            out[f"all_pages_{name}"] = {"ms": round(ms), "events": found, "pages": pages}
        return out
    finally:
        core.stop()


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.perf_counter()
    data: dict[str, Any] = {"benchmark": "logs", "started": utc_now(),
                            "machine": machine_info(), "errors": {}}
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-logs-") as tmp:
        workdir = Path(tmp)
        data["put_events"] = _put_events_rate(workdir, args.logs_entries)
        data["filter"] = _filter_latency(workdir, args.logs_filter_events)
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    put, flt = data["put_events"], data["filter"]
    rows = [Row("put_events, batches of 100", put["entries_per_s"], "entries/s"),
            Row(f"filter-log-events over {flt['events']:,}: one call (limit 100, JSON)",
                flt["one_call_limit_100_ms_p50"], "ms p50")]
    rows += [Row(f"filter-log-events over {flt['events']:,}: all pages, {name} "
                 f"({flt[f'all_pages_{name}']['events']:,} events)",
                 flt[f"all_pages_{name}"]["ms"], "ms") for name in ("json", "term", "none")]
    return data, rows
