"""Connections whose CONNECT is incomplete after a read take turns to be read again: each waits
its interval, and no more than `per_interval` are read in an interval however many there are
(a flat-out dribbler opening connection after connection, issue 8)."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.localcore.broker.slowlane import SlowLane

INTERVAL = 0.05


async def reads_of(waiting: int, per_interval: int, ) -> tuple[list[tuple[int, float]], float]:
    loop = asyncio.get_running_loop()
    lane = SlowLane(lambda: loop, INTERVAL, per_interval)
    reads: list[tuple[int, float]] = []
    done = asyncio.Event()

    def read_again(i: int) -> bool:
        reads.append((i, loop.time()))
        if len(reads) == waiting:
            done.set()
        return True

    start = loop.time()
    for i in range(waiting):
        lane.wait(lambda i=i: read_again(i))
    await asyncio.wait_for(done.wait(), 30)
    lane.close()
    return reads, start


async def test_one_connection_is_read_again_after_its_interval() -> None:
    reads, start = await reads_of(1, 4)
    assert [i for i, _ in reads] == [0]
    assert reads[0][1] - start >= INTERVAL - 0.002


@settings(max_examples=15, deadline=None)
@given(waiting=st.integers(2, 24), per_interval=st.integers(1, 6))
async def test_many_take_turns_oldest_first_at_most_per_interval(waiting: int,
                                                                 per_interval: int) -> None:
    reads, start = await reads_of(waiting, per_interval)
    assert [i for i, _ in reads] == list(range(waiting))  # each once, oldest first
    gaps = [b - a for (_, a), (_, b) in pairwise(reads)]
    # (2 ms of slack: uvloop's timers have millisecond resolution)
    assert all(g >= INTERVAL / per_interval - 0.002 for g in gaps), gaps
    assert reads[0][1] - start >= INTERVAL - 0.002


async def test_a_connection_gone_meanwhile_does_not_use_up_a_turn() -> None:
    loop = asyncio.get_running_loop()
    lane = SlowLane(lambda: loop, 0.0, 1)  # every one due at once: one read per turn
    read: list[int] = []
    for i in range(4):
        lane.wait(lambda i=i: i >= 2 and not read.append(i))  # 0 and 1 have gone
    lane._turn()  # one turn
    assert read == [2] and len(lane) == 1
    lane.close()
