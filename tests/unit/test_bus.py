"""The internal bus: delivery later, in order, never inside the publisher; failures logged."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetsim.localcore.bus import Bus
from fleetsim.localcore.db import Database


@dataclass(frozen=True)
class Happened:
    n: int


@dataclass(frozen=True)
class Other:
    n: int


async def test_publish_never_runs_handlers_in_the_caller() -> None:
    bus, seen = Bus(), []
    bus.subscribe(Happened, lambda e: seen.append(e.n))
    bus.publish(Happened(1))
    assert seen == []  # not re-entered synchronously
    await bus.drain()
    assert seen == [1]
    await bus.close()


async def test_order_types_chains_and_unsubscribe() -> None:
    bus, seen = Bus(), []

    def on_happened(e: Happened) -> None:
        seen.append(("h", e.n))
        if e.n == 1:
            bus.publish(Other(10))  # published from a handler: after what is queued

    async def on_other(e: Other) -> None:
        seen.append(("o", e.n))

    bus.subscribe(Happened, on_happened)
    stop = bus.subscribe(Other, on_other)
    for n in (1, 2, 3):
        bus.publish(Happened(n))
    await bus.drain()
    assert seen == [("h", 1), ("h", 2), ("h", 3), ("o", 10)]
    stop()
    bus.publish(Other(11))
    await bus.drain()
    assert seen[-1] == ("o", 10)
    await bus.close()


async def test_a_failing_handler_is_logged_and_the_next_runs(
        caplog: pytest.LogCaptureFixture) -> None:
    bus, seen = Bus(), []

    def boom(e: Happened) -> None:
        raise RuntimeError("boom")

    bus.subscribe(Happened, boom)
    bus.subscribe(Happened, lambda e: seen.append(e.n))
    with caplog.at_level(logging.ERROR):
        bus.publish(Happened(1))  # does not raise
        await bus.drain()
    assert seen == [1] and "boom" in caplog.text
    await bus.close()


async def test_events_of_a_transaction_go_out_on_commit_and_never_after_a_rollback(
        tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db", "us-east-1")
    bus, seen = Bus(after_commit=db.after_commit), []
    bus.subscribe(Happened, lambda e: seen.append(e.n))
    with db.transaction():
        with db.transaction():  # a service's own transaction, joined to the outer one
            bus.publish(Happened(1))
        await bus.drain()
        assert seen == []  # the outer transaction has not committed yet
    await bus.drain()
    assert seen == [1]
    with pytest.raises(RuntimeError), db.transaction():
        bus.publish(Happened(2))
        raise RuntimeError("half-way")
    bus.publish(Happened(3))  # outside any transaction: at once
    await bus.drain()
    assert seen == [1, 3]
    await bus.close()
    db.close()


async def test_a_handler_that_feeds_itself_does_not_starve_the_loop() -> None:
    """A topic rule that republishes to a topic its own filter matches feeds the bus forever
    (as on AWS, where nothing stops it); the rest of local core (broker, API) must keep
    running meanwhile, so delivery yields to the loop between batches."""
    bus = Bus()
    other_ran_at: list[int] = []
    delivered = 0

    def feed(e: Happened) -> None:
        nonlocal delivered
        delivered += 1
        if e.n < 20_000:
            bus.publish(Happened(e.n + 1))

    async def other() -> None:
        other_ran_at.append(delivered)

    bus.subscribe(Happened, feed)
    bus.publish(Happened(0))
    await asyncio.sleep(0)  # delivery starts
    task = asyncio.get_running_loop().create_task(other())
    await bus.drain()
    await task
    assert other_ran_at[0] < 20_000  # ran while the chain was still going
