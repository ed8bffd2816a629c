"""`Metrics`: latency per (step, operation), counters, gauges, errors by kind, a 1 s timeline.

Snapshots are plain JSON-able dicts; `merge` adds snapshots from several processes exactly
(histograms by bucket, timelines by absolute epoch second).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from fleetsim.metrics.histogram import Histogram

SNAPSHOT_VERSION = 1
ERRORS_SERIES = "errors"
_THROTTLE_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException",
                   "RequestLimitExceeded", "SlowDown"}
_current_step: ContextVar[str] = ContextVar("fleetsim_step", default="")


def error_kind(exc: BaseException) -> str:
    """A short, stable name for what went wrong: an exception's own `kind`, the AWS error code
    of a botocore-style `ClientError` (throttling codes all become `throttled`), `timeout`, or
    the exception's class name."""
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return "throttled" if code in _THROTTLE_CODES else str(code)
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


@dataclass
class StepRecord:
    name: str
    status: str = "running"  # running | ok | failed | skipped
    started_at: float = 0.0  # epoch seconds
    duration_s: float = 0.0
    detail: str = ""


@dataclass
class Check:
    name: str
    passed: bool
    detail: str = ""


class Timer:
    """Times one operation; usable as `with` or `async with`. An exception leaving the block is
    counted as an error of its `error_kind` and re-raised."""

    __slots__ = ("_metrics", "_op", "_start", "_step", "error")

    def __init__(self, metrics: Metrics, op: str, step: str | None):
        self._metrics = metrics
        self._op = op
        self._step = step
        self._start = 0
        self.error: str | None = None  # set to record a failure without raising

    def __enter__(self) -> Timer:
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None and not isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self._metrics.error(error_kind(exc), self._op, self._step)
        elif exc is None and self.error:
            self._metrics.error(self.error, self._op, self._step)
        elif exc is None:
            elapsed_us = (time.perf_counter_ns() - self._start) // 1000
            self._metrics.record(self._op, elapsed_us, self._step)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


class Metrics:
    """Everything one process measures. Not thread-safe: use it from the event loop."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.op_errors: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        self.counters: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, int] = defaultdict(int)
        self.timeline: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.steps: dict[str, StepRecord] = {}
        self.checks: list[Check] = []
        # The step most recently started: for what long-lived tasks (an observer started in
        # an earlier step) measure, which belongs to the step running when it happens.
        self.active_step = ""

    # --- recording -------------------------------------------------------------------------

    def time(self, op: str, step: str | None = None) -> Timer:
        return Timer(self, op, step)

    def record(self, op: str, micros: float, step: str | None = None) -> None:
        """A successful `op` that took `micros` microseconds; also counted on the timeline."""
        key = (_current_step.get() if step is None else step, op)
        hist = self.latency.get(key)
        if hist is None:
            hist = self.latency[key] = Histogram()
        hist.record(micros)
        self.timeline[op][int(self._clock())] += 1

    def error(self, kind: str, op: str = "", step: str | None = None, n: int = 1) -> None:
        errors = self.op_errors[(_current_step.get() if step is None else step, op)]
        errors[kind] = errors.get(kind, 0) + n
        self.timeline[ERRORS_SERIES][int(self._clock())] += n

    def incr(self, counter: str, n: int = 1) -> None:
        self.counters[counter] += n
        self.timeline[counter][int(self._clock())] += n

    def incr_at(self, counter: str, at: float, n: int = 1) -> None:
        """Count `n` events that happened at epoch second `at` (a time another system
        reports, e.g. a job execution's `startedAt`), on the timeline at that second."""
        self.counters[counter] += n
        self.timeline[counter][int(at)] += n

    def gauge(self, name: str, delta: int) -> None:
        """Move a level up or down (e.g. devices connected); merged by adding."""
        self.gauges[name] += delta

    def check(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append(Check(name, passed, detail))

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[StepRecord]:
        """Run a scenario step: its status and duration are recorded, and operations timed
        inside it (including in tasks started inside it) are attributed to it. Set
        `record.status = "skipped"` to mark a step that did nothing."""
        record = self.steps[name] = StepRecord(name, started_at=self._clock())
        self.active_step = name
        token = _current_step.set(name)
        start = time.perf_counter()
        try:
            yield record
        except BaseException as exc:
            record.status = "failed"
            record.detail = record.detail or error_kind(exc)
            raise
        else:
            if record.status == "running":
                record.status = "ok"
        finally:
            record.duration_s = time.perf_counter() - start
            _current_step.reset(token)

    # --- reading ---------------------------------------------------------------------------

    def total_errors(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.op_errors.values())

    def histogram(self, op: str) -> Histogram:
        """All samples of `op`, whichever step recorded them."""
        merged = Histogram()
        for (_, name), hist in self.latency.items():
            if name == op:
                merged.merge(hist)
        return merged

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> Metrics:
        """The metrics a snapshot was taken of (e.g. a merge of several processes'), to read
        (a live view, a report) as one process's: `from_snapshot(s).snapshot() == s`."""
        metrics = cls()
        metrics.restore(snap)
        return metrics

    def restore(self, snap: dict[str, Any]) -> None:
        """Hold what `snap` holds instead of what this holds (the metrics of the process
        that ran a run's API steps, handed to the one that runs its devices)."""
        fresh = Metrics(self._clock)
        fresh.steps = {s["name"]: StepRecord(**s) for s in snap["steps"]}
        for entry in snap["ops"]:
            key = (entry["step"], entry["op"])
            hist = Histogram.from_dict(entry["latency_us"])
            if hist.count:
                fresh.latency[key] = hist
            if entry["errors"]:
                fresh.op_errors[key] = dict(entry["errors"])
        fresh.counters.update(snap["counters"])
        fresh.gauges.update(snap["gauges"])
        for name, points in snap["timeline"].items():
            fresh.timeline[name].update({t: n for t, n in points})
        fresh.checks = [Check(**c) for c in snap["checks"]]
        fresh.active_step = next(reversed(fresh.steps), "")
        self.__dict__.update(fresh.__dict__)

    def snapshot(self) -> dict[str, Any]:
        return _assemble([vars(s).copy() for s in self.steps.values()], self.latency,
                         self.op_errors, self.counters, self.gauges, self.timeline,
                         [vars(c).copy() for c in self.checks])


def _assemble(steps: list[dict[str, Any]], hists: dict[tuple[str, str], Histogram],
              errors: dict[tuple[str, str], dict[str, int]], counters: dict[str, int],
              gauges: dict[str, int], timeline: dict[str, dict[int, int]],
              checks: list[dict[str, Any]]) -> dict[str, Any]:
    keys = sorted(set(hists) | {k for k, v in errors.items() if v})
    return {
        "version": SNAPSHOT_VERSION,
        "steps": steps,
        "ops": [{"step": step, "op": op,
                 "latency_us": (hists.get((step, op)) or Histogram()).to_dict(),
                 "errors": dict(sorted(errors.get((step, op), {}).items()))}
                for step, op in keys],
        "counters": dict(sorted(counters.items())),
        "gauges": dict(sorted(gauges.items())),
        "timeline": {name: [[t, n] for t, n in sorted(series.items())]
                     for name, series in sorted(timeline.items())},
        "checks": checks,
    }


# A step's status in a merge is the worst of its processes'.
_STATUS_RANK = {"failed": 5, "interrupted": 4, "running": 3, "partial": 2, "ok": 1,
                "skipped": 0}


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Combine snapshots of several processes (e.g. shards of one run) into one, exactly."""
    steps: dict[str, dict[str, Any]] = {}
    hists: dict[tuple[str, str], Histogram] = {}
    errors: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    counters: dict[str, int] = defaultdict(int)
    gauges: dict[str, int] = defaultdict(int)
    timeline: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    checks: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snap.get('version')!r} is not "
                             f"{SNAPSHOT_VERSION}")
        for s in snap["steps"]:
            if s["name"] not in steps:
                steps[s["name"]] = dict(s)
                continue
            m = steps[s["name"]]
            end = max(m["started_at"] + m["duration_s"], s["started_at"] + s["duration_s"])
            m["started_at"] = min(m["started_at"], s["started_at"])
            m["duration_s"] = end - m["started_at"]
            if _STATUS_RANK.get(s["status"], 0) > _STATUS_RANK.get(m["status"], 0):
                m["status"], m["detail"] = s["status"], s["detail"]
        for entry in snap["ops"]:
            key = (entry["step"], entry["op"])
            hists.setdefault(key, Histogram()).merge(Histogram.from_dict(entry["latency_us"]))
            for kind, n in entry["errors"].items():
                errors[key][kind] += n
        for name, n in snap["counters"].items():
            counters[name] += n
        for name, n in snap["gauges"].items():
            gauges[name] += n
        for name, points in snap["timeline"].items():
            for t, n in points:
                timeline[name][t] += n
        for c in snap["checks"]:
            prev = checks.get(c["name"])
            if prev is None or (prev["passed"] and not c["passed"]):
                checks[c["name"]] = dict(c)
    return _assemble(sorted(steps.values(), key=lambda s: s["started_at"]), hists, errors,
                     counters, gauges, timeline, list(checks.values()))
