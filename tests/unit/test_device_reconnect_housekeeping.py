"""Device-side parts of fleets that need no broker: the reconnect policy, the shared paho
housekeeping, and error kinds."""

from __future__ import annotations

import asyncio
import random

import pytest

from fleetsim.device import ReconnectPolicy
from fleetsim.device.errors import connect_failure_kind
from fleetsim.device.housekeeping import Housekeeper
from fleetsim.device.reconnect import as_policy


class _Top(random.Random):
    """Always draws the top of the range, to see the back-off ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = ReconnectPolicy(base=0.5, cap=5.0)
    assert [policy.delay(n, _Top()) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_is_jittered_within_the_ceiling() -> None:
    policy = ReconnectPolicy(base=1.0, cap=8.0)
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 150  # spread, not one value for every device


def test_attempt_limit_and_construction() -> None:
    assert not ReconnectPolicy().gives_up_after(10_000)
    limited = ReconnectPolicy(max_attempts=3)
    assert [limited.gives_up_after(n) for n in (2, 3)] == [False, True]
    assert as_policy(True) == ReconnectPolicy()
    assert as_policy(False) is None and as_policy(None) is None
    with pytest.raises(ValueError):
        ReconnectPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        ReconnectPolicy(base=-1)


def test_unprefixed_ragged_eof_is_a_tls_refusal() -> None:
    # OpenSSL leaves out "[SSL: ...]" when its error queue is empty at the failed read.
    assert connect_failure_kind("failed to receive on socket: EOF occurred in violation of "
                                "protocol (_ssl.c:2580)") == "tls_refused"
    assert connect_failure_kind("[Errno 104] Connection reset by peer") == "closed_before_connack"


class _Client:
    def __init__(self, fail: bool = False):
        self.visits = 0
        self.fail = fail

    def loop_misc(self) -> int:
        self.visits += 1
        if self.fail:
            raise RuntimeError("broken client")
        return 0


async def _until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_one_task_visits_every_client_and_survives_a_broken_one() -> None:
    keeper = Housekeeper(period=0.1, tick=0.02)
    clients = [_Client() for _ in range(50)]
    broken = _Client(fail=True)
    for c in [broken, *clients]:
        keeper.add(c)
    await _until(lambda: all(c.visits >= 2 for c in clients))
    assert broken.visits >= 2  # still visited: its exception stopped nothing
    tasks = [t for t in asyncio.all_tasks() if "Housekeeper._run" in repr(t.get_coro())]
    assert len(tasks) == 1

    gone = clients.pop()
    keeper.discard(gone)
    before = gone.visits
    await _until(lambda: all(c.visits >= before + 2 for c in clients))
    assert gone.visits == before


async def test_the_task_ends_with_its_last_client_and_restarts() -> None:
    keeper = Housekeeper(period=0.05, tick=0.01)
    first = _Client()
    keeper.add(first)
    await _until(lambda: first.visits >= 1)
    keeper.discard(first)
    await _until(lambda: keeper._task is not None and keeper._task.done())
    second = _Client()
    keeper.add(second)
    await _until(lambda: second.visits >= 1)


async def test_a_short_keepalive_shortens_the_period() -> None:
    keeper = Housekeeper(period=2.0, tick=0.1)
    keeper.add(_Client(), keepalive=60)
    assert keeper.period == 2.0
    keeper.add(_Client(), keepalive=1)
    assert keeper.period == 0.5
    keeper.add(_Client(), keepalive=0.05)
    assert keeper.period == 0.1  # never below a tick
    for c in list(keeper._clients.values()):
        keeper.discard(c)
