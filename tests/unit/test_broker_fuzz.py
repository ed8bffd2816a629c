"""The broker under 10,000 seeded, mutated MQTT streams, in process (see tests/mqtt_fuzz.py for
what is generated and checked; `python -m bench broker-hardening` runs 100,000). Set
FLEETSIM_FUZZ_SEED to explore other cases; a failure names its seed and case."""

from __future__ import annotations

import os

import pytest

from tests.mqtt_fuzz import Harness

CASES = 10_000
pytestmark = pytest.mark.timeout(300)


async def test_no_stream_breaks_the_broker_or_leaves_state_behind():
    seed = int(os.environ.get("FLEETSIM_FUZZ_SEED", "8"))
    stats = await Harness().run(seed, CASES)
    assert stats.failures == []
    assert stats.cases == CASES
    # The cases reached what they are meant to: served and refused clients, mutated streams,
    # and the identity whose policy breaks the evaluator.
    assert stats.accepted > CASES // 10 and stats.closed_by_broker > CASES // 10
    assert stats.accepted5 > CASES // 20  # MQTT 5 clients among them
    assert stats.mutated > CASES // 2 and stats.allowed_errors > 0
