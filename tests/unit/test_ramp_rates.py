"""`bench.fleet.ramp_rates`: a paced ramp's rate apart from the latency of its last connects,
which connected devices over the ramp's wall time also count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.fleet import ramp_rates


def test_a_slow_last_connect_is_the_tail_not_a_lower_rate() -> None:
    starts = [i / 500 for i in range(20_000)]  # 500/s for 40 s
    connacks = [t + 0.03 for t in starts[:-1]] + [starts[-1] + 0.3]
    rates = ramp_rates(starts, connacks)
    assert rates["starts_per_s"] == pytest.approx(500)
    # Of the CONNACKs, those of the last 30 ms of starts come after the last start.
    assert rates["connacks_per_s_while_starting"] == pytest.approx(500 * (40 - 0.03) / 40,
                                                                   rel=1e-3)
    assert rates["tail_s"] == pytest.approx(0.3)
    wall = max(connacks) - min(starts)
    assert len(connacks) / wall < 497  # what the wall time alone said


def test_refused_devices_keep_their_starts_but_bring_no_connack() -> None:
    starts = [i / 100 for i in range(1000)]
    connacks = [t + 0.01 for i, t in enumerate(starts) if i % 10]
    rates = ramp_rates(starts, connacks)
    assert rates["starts_per_s"] == pytest.approx(100)
    assert rates["connacks_per_s_while_starting"] == pytest.approx(90, rel=0.01)


def test_nothing_to_measure_gives_no_rates() -> None:
    assert ramp_rates([1.0], [1.1]) == {}
    assert ramp_rates([1.0, 2.0], []) == {}


@given(rate=st.floats(10, 5000), n=st.integers(2, 3000),
       latency=st.floats(0, 0.5))
def test_evenly_spaced_starts_are_their_rate(rate: float, n: int, latency: float) -> None:
    starts = [100.0 + i / rate for i in range(n)]
    rates = ramp_rates(starts, [t + latency for t in starts])
    assert rates["starts_per_s"] == pytest.approx(rate, rel=1e-6)
    assert rates["connacks_per_s_while_starting"] <= rates["starts_per_s"] * n / (n - 1) + 1e-6
    assert rates["tail_s"] == pytest.approx(latency, abs=1e-9)
