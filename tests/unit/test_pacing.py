"""Pacing: start times follow the rate curve; jitter and the concurrency cap hold."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.engine.pacing import Pacer, RateCurve, paced


def test_linear_ramp_rate() -> None:
    curve = RateCurve(start=10, end=110, over=10)
    assert curve.rate_at(0) == 10
    assert curve.rate_at(5) == pytest.approx(60)
    assert curve.rate_at(10) == 110
    assert curve.rate_at(60) == 110


def test_step_ramp_has_plateaus() -> None:
    curve = RateCurve(start=0, end=100, over=8, profile="step", steps=4)
    assert [curve.rate_at(t) for t in (0, 1.9, 2, 4.5, 7.9, 9)] == [25, 25, 50, 75, 100, 100]


def test_reserved_start_times_follow_the_rate() -> None:
    pacer = Pacer(RateCurve(start=100))
    times = [pacer._reserve(0.0) for _ in range(5)]
    assert times == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])


def test_late_start_does_not_burst() -> None:
    pacer = Pacer(RateCurve(start=10))
    assert pacer._reserve(0.0) == 0.0
    # The caller came back 5 s later: the next start is now, then 0.1 s apart again.
    assert pacer._reserve(5.0) == 5.0
    assert pacer._reserve(5.0) == pytest.approx(5.1)


async def test_jitter_stays_within_bound_and_does_not_slow_the_schedule() -> None:
    now = [0.0]
    pacer = Pacer(RateCurve(start=1000), jitter=0.05, clock=lambda: now[0])
    jitters = []
    for i in range(200):
        now[0] = i / 1000  # the caller comes back exactly when each start is due
        jitters.append(await pacer.slot())
    assert all(0 <= j <= 0.05 for j in jitters)
    assert max(jitters) - min(jitters) > 0.01  # actually spread
    assert pacer._next == pytest.approx(0.2)  # 200 starts at 1000/s: jitter added no delay


async def test_paced_respects_concurrency_cap() -> None:
    running = peak = 0

    async def action(_: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1

    await paced(range(40), action, Pacer(), concurrency=3)
    assert peak == 3


async def test_paced_cancels_started_actions_on_error() -> None:
    started: list[int] = []

    async def action(i: int) -> None:
        started.append(i)
        if i == 2:
            raise RuntimeError("boom")
        await asyncio.sleep(10)

    with pytest.raises(RuntimeError):
        await asyncio.wait_for(paced(range(5), action, Pacer(), concurrency=5), 5)
    assert 2 in started


def test_starts_due_within_a_tick_go_together_at_its_end() -> None:
    pacer = Pacer(RateCurve(start=100), tick=0.05)
    times = [pacer._reserve(0.0) for _ in range(11)]
    assert times == pytest.approx([0.0] + [0.05] * 5 + [0.10] * 5)


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(min_value=0.5, max_value=5000),
       tick=st.sampled_from([0.001, 0.02, 0.05, 0.1, 1.0]),
       starts=st.integers(min_value=1, max_value=300))
def test_a_tick_never_starts_early_nor_later_than_its_length(rate: float, tick: float,
                                                              starts: int) -> None:
    exact, ticked = Pacer(RateCurve(start=rate)), Pacer(RateCurve(start=rate), tick=tick)
    for _ in range(starts):
        at, due = exact._reserve(0.0), ticked._reserve(0.0)
        assert at - 1e-9 <= due <= at + tick + 1e-9
        assert round(due / tick, 6) == round(due / tick)  # on the tick grid


def test_a_late_start_earns_at_most_three_ticks() -> None:
    pacer = Pacer(RateCurve(start=10), tick=0.05)
    assert pacer._reserve(0.0) == 0.0
    # Back 5 s later: this start is due three ticks ago (so goes at once), the next 0.1 s
    # after that, at the end of its tick.
    assert pacer._reserve(5.0) == pytest.approx(4.85)
    assert pacer._reserve(5.0) == pytest.approx(4.95)
    assert pacer._reserve(5.0) == pytest.approx(5.05)
    # Back 0.1 s late (two ticks): the schedule is kept.
    assert pacer._reserve(5.25) == pytest.approx(5.15)
    assert pacer._reserve(5.25) == pytest.approx(5.25)
