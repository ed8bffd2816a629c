"""A live one-line view of a run: redrawn in place on a terminal, periodic lines otherwise."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

from fleetsim.metrics.histogram import Histogram
from fleetsim.metrics.recorder import Metrics
from fleetsim.runtime import cancel_and_wait


@dataclass
class ProgressState:
    elapsed_s: float
    connected: int
    connects_per_s: float
    msgs_per_s: float
    p99_ms: float | None
    p99_op: str
    errors: int
    new_errors: int


def _rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"


def render_progress_line(state: ProgressState) -> str:
    minutes, secs = divmod(int(state.elapsed_s), 60)
    p99 = f"p99 {state.p99_ms:.1f} ms ({state.p99_op})" if state.p99_ms is not None else "p99 -"
    errors = f"errors {state.errors}" + (f" (+{state.new_errors})" if state.new_errors else "")
    return (f"[{minutes:02d}:{secs:02d}] connected {state.connected}  "
            f"connects/s {_rate(state.connects_per_s)}  msgs/s {_rate(state.msgs_per_s)}  "
            f"{p99}  {errors}")


class Progress:
    """Samples `metrics` every `interval` seconds; use as `async with Progress(metrics):`.

    Rates and p99 are over the last interval; p99 is of the busiest operation in it."""

    def __init__(self, metrics: Metrics, stream: TextIO | None = None,
                 interval: float | None = None, connected_gauge: str = "devices.connected",
                 connect_op: str = "mqtt.connect",
                 message_ops: Sequence[str] = ("mqtt.publish",)):
        self.metrics = metrics
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if interval is not None else (1.0 if self.tty else 10.0)
        self.connected_gauge = connected_gauge
        self.connect_op = connect_op
        self.message_ops = tuple(message_ops)
        self._start = time.monotonic()
        self._last_t = self._start
        self._last: dict[str, Histogram] = {}
        self._last_errors = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self, now: float | None = None) -> ProgressState:
        now = time.monotonic() if now is None else now
        dt = max(now - self._last_t, 1e-9)
        current = {op: self.metrics.histogram(op)
                   for op in {op for _, op in self.metrics.latency}}
        deltas = {op: h.since(self._last.get(op, Histogram())) for op, h in current.items()}
        connects = deltas.get(self.connect_op, Histogram()).count
        msgs = sum(deltas[op].count for op in self.message_ops if op in deltas)
        busiest = max(deltas.items(), key=lambda kv: kv[1].count, default=None)
        errors = self.metrics.total_errors()
        state = ProgressState(
            elapsed_s=now - self._start,
            connected=self.metrics.gauges.get(self.connected_gauge, 0),
            connects_per_s=connects / dt,
            msgs_per_s=msgs / dt,
            p99_ms=busiest[1].percentile(99) / 1000 if busiest and busiest[1].count else None,
            p99_op=busiest[0] if busiest else "",
            errors=errors,
            new_errors=errors - self._last_errors,
        )
        self._last, self._last_t, self._last_errors = current, now, errors
        return state

    def draw(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.draw(render_progress_line(self.sample()))

    async def __aenter__(self) -> Progress:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        self.draw(render_progress_line(self.sample()))
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
