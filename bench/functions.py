"""`python -m bench functions`: Lambda invocations through local core, for a trivial function.

Local core runs in its own process (pinned to CPU 0) with its worker processes; the client is
aioboto3 in this process.

- *warm RequestResponse*: invocations per second with `--lambda-concurrency` in flight (at
  most the pool's environments per function), after one warm-up, and their latency.
- *cold*: each invocation preceded by update-function-configuration (a new revision: the
  environment is replaced), so each starts a worker and imports the handler; latency of the
  invocation alone.
- *Event*: invocations accepted per second (202), and completed per second (each run appends a
  byte to a file the bench watches).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import aioboto3

from bench.core_process import CoreProcess, measure_on_core
from bench.report import Row
from fleetsim.metrics.histogram import Histogram

ROLE = "arn:aws:iam::123456789012:role/bench"
SOURCE = """
def handler(event, context):
    path = event.get("path")
    if path:
        with open(path, "ab") as f:
            f.write(b"x")
    return {"ok": True}
"""


def _package() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("fn.py", SOURCE)
    return out.getvalue()


def _latency(h: Histogram) -> dict[str, float]:
    return {"p50_ms": round(h.percentile(50) / 1000, 2),
            "p99_ms": round(h.percentile(99) / 1000, 2)}


async def _warm(lam: Any, duration: float, concurrency: int) -> dict[str, Any]:
    h = Histogram()
    count = 0
    end = time.perf_counter() + duration

    async def loop() -> None:
        nonlocal count
        while time.perf_counter() < end:
            t = time.perf_counter()
            r = await lam.invoke(FunctionName="bench", Payload=b"{}")
            await r["Payload"].read()
            h.record(int((time.perf_counter() - t) * 1e6))
            count += 1
    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"invocations": count, "per_second": round(count / elapsed, 1),
            "concurrency": concurrency, "latency": _latency(h)}


async def _cold(lam: Any, n: int) -> dict[str, Any]:
    h = Histogram()
    for i in range(n):
        await lam.update_function_configuration(FunctionName="bench", Description=f"cold {i}")
        t = time.perf_counter()
        r = await lam.invoke(FunctionName="bench", Payload=b"{}")
        await r["Payload"].read()
        h.record(int((time.perf_counter() - t) * 1e6))
    return {"invocations": n, "per_second": round(1000 / max(h.percentile(50) / 1000, 1e-3), 2),
            "latency": _latency(h)}


async def _events(lam: Any, n: int, workdir: Path) -> dict[str, Any]:
    path = workdir / "events"
    payload = json.dumps({"path": str(path)}).encode()
    started = time.perf_counter()
    await asyncio.gather(*(lam.invoke(FunctionName="bench", InvocationType="Event",
                                      Payload=payload) for _ in range(n)))
    accepted = time.perf_counter() - started
    deadline = time.perf_counter() + 120
    while (not path.exists() or path.stat().st_size < n) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    done = time.perf_counter() - started
    ran = path.stat().st_size if path.exists() else 0
    return {"invocations": n, "accepted_per_second": round(n / accepted, 1),
            "completed": ran, "completed_per_second": round(ran / done, 1)}


async def _measure(args: argparse.Namespace, core: CoreProcess) -> dict[str, Any]:
    session = aioboto3.Session(aws_access_key_id="x", aws_secret_access_key="x",
                               region_name="us-east-1")
    async with session.client("lambda", endpoint_url=core.api_url) as lam:
        await lam.create_function(FunctionName="bench", Runtime="python3.12", Role=ROLE,
                                  Handler="fn.handler", Code={"ZipFile": _package()})
        await lam.invoke(FunctionName="bench", Payload=b"{}")  # warm-up
        warm = await _warm(lam, args.lambda_duration, args.lambda_concurrency)
        cold = await _cold(lam, args.lambda_cold)
        with tempfile.TemporaryDirectory() as tmp:
            events = await _events(lam, args.lambda_events, Path(tmp))
    return {"warm": warm, "cold": cold, "event": events}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lambda-duration", type=float, default=10.0, metavar="S",
                        help="functions bench: seconds of warm invocations")
    parser.add_argument("--lambda-concurrency", type=int, default=4, metavar="N",
                        help="functions bench: warm invocations in flight")
    parser.add_argument("--lambda-cold", type=int, default=10, metavar="N",
                        help="functions bench: cold invocations")
    parser.add_argument("--lambda-events", type=int, default=500, metavar="N",
                        help="functions bench: Event invocations")


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    data = measure_on_core("functions", lambda core: _measure(args, core))
    return data, _rows(data)


def _rows(data: dict[str, Any]) -> list[Row]:
    if "warm" not in data:
        return []
    warm, cold, event = data["warm"], data["cold"], data["event"]
    return [
        Row(f"warm RequestResponse ({warm['concurrency']} in flight)", warm["per_second"], "/s"),
        Row("warm latency p50", warm["latency"]["p50_ms"], "ms"),
        Row("warm latency p99", warm["latency"]["p99_ms"], "ms"),
        Row("cold RequestResponse latency p50", cold["latency"]["p50_ms"], "ms"),
        Row("cold RequestResponse latency p99", cold["latency"]["p99_ms"], "ms"),
        Row("cold RequestResponse (sequential)", cold["per_second"], "/s"),
        Row("Event accepted", event["accepted_per_second"], "/s"),
        Row("Event completed", event["completed_per_second"], "/s",
            note=f"{event['completed']}/{event['invocations']} ran"),
    ]
