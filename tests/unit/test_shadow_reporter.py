"""The shadow reporter behaviour, fed messages through a fake session: what it publishes,
how it answers deltas, and what it measures."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from fleetsim.device.behaviours.shadow import (
    ShadowRejected,
    ShadowReporter,
    contains,
    merge_state,
    shadow_topic,
)
from fleetsim.metrics import Metrics
from tests.fakes import FakeIot, FakeSession, FakeShadowService

PREFIX = "$aws/things/t1/shadow"


def reporter(session: FakeSession, metrics: Metrics | None = None,
             shadow: str | None = None) -> ShadowReporter:
    r = ShadowReporter(session, "t1", metrics or Metrics(), shadow)
    session.on_message(lambda m: r.on_message(m.topic, m.payload))
    return r


def errors(metrics: Metrics, op: str) -> dict[str, int]:
    return dict(metrics.op_errors.get(("", op), {}))


def count(metrics: Metrics, op: str) -> int:
    return sum(h.count for (_, o), h in metrics.latency.items() if o == op)


def test_topics_classic_and_named() -> None:
    assert shadow_topic("t1") == PREFIX
    assert shadow_topic("t1", "cfg") == f"{PREFIX}/name/cfg"


async def test_start_subscribes_reports_and_gets() -> None:
    iot = FakeIot()
    session = FakeSession("t1", FakeShadowService(iot))
    metrics = Metrics()
    r = reporter(session, metrics, "cfg")
    await r.start({"temp": 21}, get=True, timeout=1)
    prefix = f"{PREFIX}/name/cfg"
    assert session.subscriptions == [f"{prefix}/update/delta", f"{prefix}/update/accepted",
                                     f"{prefix}/update/rejected", f"{prefix}/get/accepted",
                                     f"{prefix}/get/rejected"]
    (update_topic, update, qos), (get_topic, get, _) = session.published
    assert update_topic == f"{prefix}/update" and qos == 0
    assert update["state"] == {"reported": {"temp": 21}}
    assert get_topic == f"{prefix}/get" and set(get) == {"clientToken"}
    assert len(update["clientToken"].encode()) <= 64
    assert update["clientToken"] != get["clientToken"]
    assert r.reported == {"temp": 21} and r.version == 1
    assert count(metrics, "shadow.update") == 1 and count(metrics, "shadow.get") == 1


async def test_answers_each_delta_with_its_desired_values() -> None:
    session = FakeSession("t1")
    metrics = Metrics()
    r = reporter(session, metrics)
    session.deliver(f"{PREFIX}/update/delta", {
        "version": 7, "timestamp": 1700000000, "state": {"mode": "eco", "fan": {"speed": 2}},
        "metadata": {"mode": {"timestamp": 1700000000}}})
    ((topic, body, _),) = session.published
    assert topic == f"{PREFIX}/update"
    assert body["state"] == {"reported": {"mode": "eco", "fan": {"speed": 2}}}
    assert "version" not in body  # an unconditional update: no 409 for a concurrent change
    assert r.delta_version == 7 and metrics.counters["shadow.deltas"] == 1
    # Its acceptance is timed as a shadow.update and recorded as the reported state.
    session.deliver(f"{PREFIX}/update/accepted", {
        "state": body["state"], "version": 8, "timestamp": 1700000001,
        "clientToken": body["clientToken"]})
    assert r.reported == {"mode": "eco", "fan": {"speed": 2}}
    assert count(metrics, "shadow.update") == 1


async def test_an_older_delta_is_not_answered() -> None:
    session = FakeSession("t1")
    metrics = Metrics()
    reporter(session, metrics)
    session.deliver(f"{PREFIX}/update/delta", {"version": 5, "state": {"a": 2}})
    session.deliver(f"{PREFIX}/update/delta", {"version": 4, "state": {"a": 1}})
    assert [b["state"]["reported"] for _, b, _ in session.published] == [{"a": 2}]
    assert metrics.counters["shadow.deltas.stale"] == 1


async def test_others_accepted_updates_and_other_topics_are_ignored() -> None:
    session = FakeSession("t1")
    metrics = Metrics()
    r = reporter(session, metrics)
    session.deliver(f"{PREFIX}/update/accepted", {"state": {"desired": {"a": 1}},
                                                  "version": 3, "clientToken": "not-ours"})
    session.deliver("$aws/things/t2/shadow/update/delta", {"version": 9, "state": {"a": 1}})
    session.deliver(f"{PREFIX}/update/delta", b"not json")
    assert session.published == [] and r.reported == {} and r.version == 3
    assert count(metrics, "shadow.update") == 0


@pytest.mark.parametrize(("code", "kind"), [(400, "shadow_bad_request"),
                                            (409, "shadow_version_conflict"),
                                            (429, "throttled"), (503, "shadow_503")])
async def test_rejections_are_counted_by_kind(code: int, kind: str) -> None:
    session = FakeSession("t1", FakeShadowService(FakeIot(), reject={
        "update": (code, "no")}))
    metrics = Metrics()
    r = reporter(session, metrics)
    with pytest.raises(ShadowRejected) as caught:
        await r.report({"a": 1}, timeout=1)
    assert caught.value.code == code and caught.value.kind == kind
    assert errors(metrics, "shadow.update") == {kind: 1}
    assert count(metrics, "shadow.update") == 0


async def test_get_of_a_missing_shadow_is_none_and_not_an_error() -> None:
    session = FakeSession("t1", FakeShadowService(FakeIot()))
    metrics = Metrics()
    r = reporter(session, metrics)
    assert await r.get(timeout=1) is None
    assert errors(metrics, "shadow.get") == {}


async def test_a_delta_in_the_document_is_answered() -> None:
    iot = FakeIot()
    iot._op_update_thing_shadow("t1", b'{"state": {"desired": {"a": 2}, "reported": {"a": 1}}}')
    session = FakeSession("t1", FakeShadowService(iot))
    r = reporter(session)
    await r.start(None, get=True, timeout=1)
    assert session.published[-1][1]["state"] == {"reported": {"a": 2}}
    assert iot.shadows[("t1", "")]["state"]["reported"] == {"a": 2}
    assert r.reported == {"a": 2}


async def test_no_answer_is_a_timeout() -> None:
    session = FakeSession("t1")
    metrics = Metrics()
    r = reporter(session, metrics)
    with pytest.raises(TimeoutError, match="update/accepted"):
        await r.report({"a": 1}, timeout=0)
    assert errors(metrics, "shadow.update") == {"timeout": 1}


async def test_convergence_from_desired_accepted_to_report_accepted() -> None:
    now = [100.0]
    session = FakeSession("t1", FakeShadowService(FakeIot()))
    metrics = Metrics()
    r = ShadowReporter(session, "t1", metrics, clock=lambda: now[0])
    session.on_message(lambda m: r.on_message(m.topic, m.payload))
    convergence = r.expect({"mode": "eco"})
    convergence.desired_accepted(at=100.0)
    now[0] = 100.25
    session.deliver(f"{PREFIX}/update/delta", {"version": 2, "state": {"mode": "eco"}})
    assert await convergence.wait(1) == pytest.approx(0.25)
    hist = metrics.histogram("shadow.converge")
    assert hist.count == 1 and 240_000 <= hist.max <= 260_000


async def test_a_report_accepted_before_the_api_returned_counts_as_no_time() -> None:
    now = [5.0]
    session = FakeSession("t1", FakeShadowService(FakeIot()))
    r = ShadowReporter(session, "t1", Metrics(), clock=lambda: now[0])
    session.on_message(lambda m: r.on_message(m.topic, m.payload))
    convergence = r.expect({"x": 1})
    session.deliver(f"{PREFIX}/update/delta", {"version": 2, "state": {"x": 1}})
    assert not convergence.future.done()  # the API call has not returned yet
    convergence.desired_accepted(at=6.0)
    assert await convergence.wait(1) == 0.0


async def test_a_new_expectation_replaces_one_not_met() -> None:
    session = FakeSession("t1")
    r = reporter(session)
    first = r.expect({"x": 1})
    second = r.expect({"x": 2})
    assert first.future.cancelled() and not second.future.done()
    r.close()
    assert second.future.cancelled()
    await asyncio.sleep(0)


async def test_already_reported_converges_at_once() -> None:
    session = FakeSession("t1", FakeShadowService(FakeIot()))
    r = reporter(session)
    await r.report({"x": 1, "y": {"z": 2}}, timeout=1)
    convergence = r.expect({"y": {"z": 2}})
    convergence.desired_accepted()
    assert await convergence.wait(0) == 0.0


def test_merge_state_as_the_service_does() -> None:
    state: dict[str, Any] = {"a": 1, "b": {"c": 2, "d": 3}}
    merge_state(state, {"a": None, "b": {"c": None, "e": 4}, "f": {"g": 5}})
    assert state == {"b": {"d": 3, "e": 4}, "f": {"g": 5}}


def _value(rng: random.Random, depth: int = 0) -> Any:
    if depth < 2 and rng.random() < 0.3:
        return _state(rng, depth + 1)
    return rng.choice([rng.randint(-3, 3), rng.choice("abc"), rng.random() < 0.5, None])


def _state(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    return {rng.choice("wxyz"): _value(rng, depth) for _ in range(rng.randint(0, 4))}


def _without_nulls(state: dict[str, Any]) -> dict[str, Any]:
    return {k: _without_nulls(v) if isinstance(v, dict) else v
            for k, v in state.items() if v is not None}


@pytest.mark.parametrize("seed", range(200))
def test_a_merged_update_is_contained(seed: int) -> None:
    """Seeded fuzz: after merging an update (nulls remove keys), the state holds it."""
    rng = random.Random(seed)
    state, update = _without_nulls(_state(rng)), _state(rng)
    merge_state(state, update)
    assert contains(state, update)
    assert contains(state, {})
    assert "None" not in repr(state)  # a null is never stored
