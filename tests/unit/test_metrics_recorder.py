from __future__ import annotations

import asyncio
import json

import pytest

from fleetsim.metrics import Histogram, Metrics, error_kind, merge


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class ClientError(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.response = {"Error": {"Code": code, "Message": "..."}}


class KindError(Exception):
    kind = "connack_5"


@pytest.mark.parametrize(("exc", "kind"), [
    (KindError(), "connack_5"),
    (ClientError("ResourceNotFoundException"), "ResourceNotFoundException"),
    (ClientError("ThrottlingException"), "throttled"),
    (TimeoutError(), "timeout"),
    (ValueError("x"), "ValueError"),
])
def test_error_kind(exc: BaseException, kind: str) -> None:
    assert error_kind(exc) == kind


def test_sync_timer_records_latency_and_timeline() -> None:
    clock = FakeClock()
    m = Metrics(clock=clock)
    with m.time("api.CreateThing", step="provision"):
        pass
    clock.t += 1
    with m.time("api.CreateThing", step="provision"):
        pass
    snap = m.snapshot()
    [entry] = snap["ops"]
    assert (entry["step"], entry["op"], entry["errors"]) == ("provision", "api.CreateThing", {})
    assert Histogram.from_dict(entry["latency_us"]).count == 2
    assert snap["timeline"]["api.CreateThing"] == [[1_700_000_000, 1], [1_700_000_001, 1]]


async def test_async_timer_counts_errors_by_kind_and_reraises() -> None:
    m = Metrics()
    with pytest.raises(KindError):
        async with m.time("mqtt.connect", step="connect"):
            raise KindError
    async with m.time("mqtt.connect", step="connect") as t:
        t.error = "closed_before_connack"
    [entry] = m.snapshot()["ops"]
    assert entry["errors"] == {"closed_before_connack": 1, "connack_5": 1}
    assert entry["latency_us"]["count"] == 0
    assert m.total_errors() == 2


async def test_cancellation_is_not_an_error() -> None:
    m = Metrics()

    async def slow() -> None:
        async with m.time("mqtt.publish"):
            await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert m.total_errors() == 0
    assert m.snapshot()["ops"] == []


async def test_step_attributes_operations_in_tasks_started_inside_it() -> None:
    m = Metrics()

    async def device() -> None:
        with m.time("mqtt.publish"):
            pass

    with m.step("telemetry") as record:
        await asyncio.gather(*(asyncio.create_task(device()) for _ in range(3)))
    with m.time("mqtt.publish"):
        pass
    ops = {(e["step"], e["op"]): e["latency_us"]["count"] for e in m.snapshot()["ops"]}
    assert ops == {("telemetry", "mqtt.publish"): 3, ("", "mqtt.publish"): 1}
    assert record.status == "ok"
    assert m.histogram("mqtt.publish").count == 4


def test_failed_and_skipped_steps() -> None:
    m = Metrics()
    with pytest.raises(ClientError), m.step("provision"):
        raise ClientError("ThrottlingException")
    with m.step("cleanup") as record:
        record.status = "skipped"
    steps = {s["name"]: (s["status"], s["detail"]) for s in m.snapshot()["steps"]}
    assert steps == {"provision": ("failed", "throttled"), "cleanup": ("skipped", "")}


def test_counters_gauges_checks() -> None:
    clock = FakeClock()
    m = Metrics(clock=clock)
    m.incr("messages.sent", 3)
    m.gauge("devices.connected", 5)
    m.gauge("devices.connected", -2)
    m.check("all devices connected", False, "3 of 5")
    snap = m.snapshot()
    assert snap["counters"] == {"messages.sent": 3}
    assert snap["gauges"] == {"devices.connected": 3}
    assert snap["timeline"]["messages.sent"] == [[1_700_000_000, 3]]
    assert snap["checks"] == [{"name": "all devices connected", "passed": False,
                               "detail": "3 of 5"}]


def _shard(clock_t: float, values: list[int], errors: int, connected: int) -> dict:
    m = Metrics(clock=FakeClock(clock_t))
    with m.step("load"):
        for v in values:
            m.record("mqtt.publish", v)
        for _ in range(errors):
            m.error("disconnected_by_server", "mqtt.publish")
    m.incr("messages.sent", len(values))
    m.gauge("devices.connected", connected)
    m.check("no errors", errors == 0)
    return json.loads(json.dumps(m.snapshot()))


def test_merge_of_snapshots_is_exact() -> None:
    a = _shard(1_700_000_000.0, [100, 2000, 30_000], 0, 10)
    b = _shard(1_700_000_001.5, [5, 70_000], 2, 7)
    merged = merge([a, b])
    [entry] = merged["ops"]
    expected = Histogram()
    for v in [100, 2000, 30_000, 5, 70_000]:
        expected.record(v)
    assert Histogram.from_dict(entry["latency_us"]) == expected
    assert entry["errors"] == {"disconnected_by_server": 2}
    assert merged["counters"] == {"messages.sent": 5}
    assert merged["gauges"] == {"devices.connected": 17}
    assert merged["timeline"]["mqtt.publish"] == [[1_700_000_000, 3], [1_700_000_001, 2]]
    assert merged["checks"] == [{"name": "no errors", "passed": False, "detail": ""}]
    [step] = merged["steps"]
    assert step["name"] == "load"
    assert step["started_at"] == 1_700_000_000.0
    assert step["duration_s"] >= 1.5
    # merging is associative: a merged snapshot merges again like its parts
    assert merge([merge([a]), b])["ops"] == merged["ops"]


def test_merge_rejects_unknown_version() -> None:
    with pytest.raises(ValueError, match="version"):
        merge([{"version": 99}])
