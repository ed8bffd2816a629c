"""`bench.peer.memory_line`: fixed RSS and RSS per device as the line of RSS against connected
devices, so that a one-time cost paid at the first connect is fixed, wherever a sample falls."""

from __future__ import annotations

import pytest

from bench.peer import memory_line


class Samples:
    """RSS (KB) at an epoch second: `fixed` + `per_device` per device connected by then, and
    `once` from the first connect on."""

    def __init__(self, connects_per_s: dict[int, int], fixed: float, per_device: float,
                 once: float):
        self.connects, self.fixed, self.per_device, self.once = (
            connects_per_s, fixed, per_device, once)

    def at(self, when: float) -> tuple[float, float]:
        connected = sum(n for s, n in self.connects.items() if s + 1 <= when)
        return 0.0, self.fixed + (self.once if connected else 0) + self.per_device * connected


def test_a_one_time_cost_at_the_first_connect_is_fixed_not_per_device() -> None:
    ramp = {1000 + s: 100 for s in range(10)}
    samples = Samples(ramp, fixed=50_000, per_device=33.0, once=4_000)
    line = memory_line(samples, ramp, 1000, settled=1013.0)  # type: ignore[arg-type]
    assert line is not None
    fixed, per_device = line
    assert per_device == pytest.approx(33.0)
    assert fixed == pytest.approx(54_000)


def test_too_short_a_ramp_gives_no_line() -> None:
    ramp = {1000: 1000}
    samples = Samples(ramp, fixed=50_000, per_device=33.0, once=0)
    assert memory_line(samples, ramp, 1000, settled=1004.0) is None  # type: ignore[arg-type]
