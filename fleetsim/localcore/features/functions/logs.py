"""What an invocation writes to its log group `/aws/lambda/<name>` ("Sending Lambda function
logs to CloudWatch Logs", "Using CloudWatch Logs with Lambda"): the init phase's output, then
`START RequestId: <id> Version: $LATEST`, the function's output a line an event, a platform
line (timeout, exited runtime), `END RequestId: <id>` and the REPORT line. Delivered through
the logs feature's `put_events`; without it, kept only for `LogType: Tail` (one warning)."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from fleetsim.localcore.features.functions.runner import Line, Outcome

log = logging.getLogger(__name__)
TAIL_BYTES = 4096  # LogResult: "The last 4 KB of the execution log, which is base64-encoded"


def _iso(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def invocation_lines(request_id: str, started_ms: int, outcome: Outcome, memory_mb: int,
                     init_ms: float | None, init_output: Sequence[Line] = ()) -> list[Line]:
    end_ms = started_ms + math.ceil(outcome.duration_ms)
    lines: list[Line] = [*init_output, (started_ms, f"START RequestId: {request_id} "
                                                    "Version: $LATEST")]
    lines += outcome.output
    if outcome.platform_line is not None:
        text = outcome.platform_line
        if text.startswith("Task timed out"):
            text = f"{_iso(end_ms)} {request_id} {text}"
        lines.append((end_ms, text))
    lines.append((end_ms, f"END RequestId: {request_id}"))
    report = (f"REPORT RequestId: {request_id}\tDuration: {outcome.duration_ms:.2f} ms\t"
              f"Billed Duration: {max(1, math.ceil(outcome.duration_ms))} ms\t"
              f"Memory Size: {memory_mb} MB\tMax Memory Used: {outcome.max_memory_mb} MB\t")
    if init_ms is not None:
        report += f"Init Duration: {init_ms:.2f} ms\t"
    lines.append((end_ms, report))
    return lines


def tail(lines: Sequence[Line]) -> str:
    """X-Amz-Log-Result: the last 4 KB of the log text, base64-encoded."""
    text = "".join(f"{t}\n" for _, t in lines).encode()
    return base64.b64encode(text[-TAIL_BYTES:]).decode()


class LogSink:
    """Hands lines to the logs feature, looked up at each delivery (install order)."""

    def __init__(self, logs: Callable[[], Any]):
        self._logs = logs
        self._warned = False

    def deliver(self, region: str, group: str, stream: str, lines: Sequence[Line]) -> None:
        try:
            logs = self._logs()
        except LookupError:
            if not self._warned:
                self._warned = True
                log.warning("the logs feature is not installed: Lambda function output is "
                            "kept only for invoke --log-type Tail")
            return
        try:
            logs.put_events(region, group, stream, list(lines))
        except Exception:
            log.exception("writing to log group %s failed", group)
