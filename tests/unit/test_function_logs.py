"""Reading a function's error back from its log group (filter-log-events), against a fake
CloudWatch Logs client that filters as the service does for a quoted term."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetsim.engine.function_logs import invocation_error
from tests.fakes import client_error, fake_context

GROUP = "/aws/lambda/jitr"


class FakeLogs:
    def __init__(self, events: list[tuple[str, str]] | None):
        """(stream, message) in the order written, one ms apart; None: no log group."""
        self.events = None if events is None else [
            {"timestamp": 1000 + i, "logStreamName": s, "message": m, "eventId": str(i)}
            for i, (s, m) in enumerate(events)]

    async def filter_log_events(self, **params: Any) -> dict[str, Any]:
        if self.events is None or params["logGroupName"] != GROUP:
            raise client_error("FilterLogEvents", "ResourceNotFoundException")
        term = params.get("filterPattern", '""').strip('"')
        streams = params.get("logStreamNames")
        return {"events": [e for e in self.events if term in e["message"]
                           and e["timestamp"] >= params.get("startTime", 0)
                           and (streams is None or e["logStreamName"] in streams)]}


def invocation(stream: str, rid: str, cert: str, *outcome: str) -> list[tuple[str, str]]:
    return [(stream, f"START RequestId: {rid} Version: $LATEST"),
            (stream, f"[INFO]\t2026-01-01T00:00:00.000Z\t{rid}\tevent: {{\"certificateId\": "
                     f"\"{cert}\"}}"),
            *((stream, o) for o in outcome), (stream, f"END RequestId: {rid}"),
            (stream, f"REPORT RequestId: {rid}\tDuration: 1.00 ms")]


async def error_for(tmp_path: Path, logs: FakeLogs, cert: str) -> str | None:
    ctx = fake_context(tmp_path, "name: t\nsteps: [{wait: 1s}]\n")
    ctx.logs = logs
    return await invocation_error(ctx, "jitr", cert, 0)


async def test_the_error_of_the_invocation_that_handled_the_certificate(tmp_path: Path) -> None:
    logs = FakeLogs(invocation("s1", "r1", "aaa", "[ERROR] RuntimeError: boom\rTraceback ...")
                    + invocation("s1", "r2", "bbb"))
    assert await error_for(tmp_path, logs, "aaa") == \
        "RuntimeError: boom (in /aws/lambda/jitr, log stream s1)"
    assert await error_for(tmp_path, logs, "bbb") is None  # the next invocation went well


async def test_a_time_out_and_the_latest_invocation(tmp_path: Path) -> None:
    logs = FakeLogs(invocation("s1", "r1", "aaa", "[ERROR] RuntimeError: first")
                    + invocation("s2", "r2", "aaa",
                                 "2026-01-01T00:00:03.000Z r2 Task timed out after 3.00 seconds"))
    assert await error_for(tmp_path, logs, "aaa") == \
        "Task timed out after 3.00 seconds (in /aws/lambda/jitr, log stream s2)"


async def test_nothing_logged_yet(tmp_path: Path) -> None:
    assert await error_for(tmp_path, FakeLogs(None), "aaa") is None
    assert await error_for(tmp_path, FakeLogs([]), "aaa") is None
