"""The clean-up engine's own logic, without a service: retries on throttling (by code and by
HTTP 429) and on AWS's eventual consistency, what is deferred or waited for (`NotYet`), nested
kinds undone deepest first, entries named in reports, and a dry run's plan."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.control import cleanup as engine
from fleetsim.control.cleanup import (
    JournalKind,
    NotYet,
    Phase,
    cleanup,
    entry_name,
    plan,
    with_retry,
)
from fleetsim.control.clients import AwsClients
from fleetsim.control.journal import Entry

NO_CLIENTS = AwsClients(None, None, None)


def error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code}!"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    async def instantly(_: float) -> None:
        return None
    monkeypatch.setattr(engine.asyncio, "sleep", instantly)


class Flaky:
    """Raises `errors` one per call, then succeeds."""

    def __init__(self, *errors: ClientError):
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, *_: Any) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


@pytest.mark.parametrize("throttle", [
    error("ThrottlingException"), error("TooManyRequestsException", 429),
    error("LimitExceededException"), error("SlowDown", 503), error("Whatever", 429)])
async def test_throttling_is_retried_until_it_passes(throttle: ClientError) -> None:
    call = Flaky(*[throttle] * (engine.THROTTLE_ATTEMPTS - 1))
    assert await with_retry(call) is True
    assert call.calls == engine.THROTTLE_ATTEMPTS


async def test_throttling_that_does_not_stop_is_raised() -> None:
    call = Flaky(*[error("ThrottlingException")] * engine.THROTTLE_ATTEMPTS)
    with pytest.raises(ClientError, match="ThrottlingException"):
        await with_retry(call)


async def test_other_errors_are_not_retried_and_gone_is_not_an_error() -> None:
    denied = Flaky(error("AccessDeniedException", 403))
    with pytest.raises(ClientError):
        await with_retry(denied)
    assert denied.calls == 1
    assert await with_retry(Flaky(error("ResourceNotFoundException", 404))) is False
    assert await with_retry(Flaky(error("NoSuchBucket", 404))) is False


@given(st.integers(min_value=0, max_value=60))
def test_backoff_is_jittered_and_bounded(attempt: int) -> None:
    assert 0 <= engine.backoff(attempt) <= engine.MAX_BACKOFF_S


def _later(after: float, then: int = 1) -> Any:
    """An undo AWS refuses (`NotYet`) `then` times before it goes."""
    state = {"left": then}

    async def undo(_: AwsClients, d: dict[str, Any]) -> None:
        if state["left"]:
            state["left"] -= 1
            raise NotYet(after, f"{d['name']} is not deletable yet")
    return undo


async def test_not_yet_is_deferred_without_wait_and_waited_for_with_it() -> None:
    after = time.time() + 300
    kind = JournalKind("thing_type", Phase.AFTER_DELETE, _later(after))
    report = await cleanup(NO_CLIENTS, [Entry("thing_type", {"name": "t"})], [kind], wait=False)
    assert not report.ok and report.removed == {} and len(report.deferred) == 1
    assert str(report.deferred[0]).startswith("thing_type t: deletable after ")
    kind = JournalKind("thing_type", Phase.AFTER_DELETE, _later(after, then=3))
    report = await cleanup(NO_CLIENTS, [Entry("thing_type", {"name": "t"})], [kind])
    assert report.ok and report.removed == {"thing_type": 1}


async def test_not_yet_long_past_its_time_is_a_failure() -> None:
    kind = JournalKind("thing_type", Phase.AFTER_DELETE,
                       _later(time.time() - engine.NOT_YET_SLACK_S - 1, then=99))
    report = await cleanup(NO_CLIENTS, [Entry("thing_type", {"name": "t"})], [kind])
    assert report.failed == ["thing_type t: InvalidRequestException: t is not deletable yet"]


async def test_nested_kinds_are_undone_deepest_first_and_planned_in_that_order() -> None:
    order: list[str] = []

    async def delete(_: AwsClients, d: dict[str, Any]) -> None:
        order.append(d["name"])

    async def depths(_: AwsClients, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**g, "depth": g["name"].count("/")} for g in groups]

    kind = JournalKind("thing_group", Phase.DELETE, delete, resolve=depths, wave_key="depth")
    entries = [Entry("thing_group", {"name": n}) for n in ("a", "a/b/c", "a/b", "x")]
    assert [n for _, n in await plan(NO_CLIENTS, entries, [kind])] == ["a/b/c", "a/b", "a", "x"]
    assert order == []  # a plan changes nothing
    report = await cleanup(NO_CLIENTS, entries, [kind])
    assert report.removed == {"thing_group": 4}
    assert order.index("a/b/c") < order.index("a/b") < min(order.index("a"), order.index("x"))


async def test_markers_are_expanded_never_undone() -> None:
    async def made(_: AwsClients, tasks: list[dict[str, Any]], may_change: bool
                   ) -> list[Entry]:
        return [Entry("thing", {"name": f"from-{t['key']}"}) for t in tasks]

    async def boom(*_: Any) -> None:
        raise AssertionError("a marker is not undone")

    removed: list[str] = []

    async def delete(_: AwsClients, d: dict[str, Any]) -> None:
        removed.append(d["name"])

    kinds = [JournalKind("task", Phase.DETACH, boom, expand=made, marker=True),
             JournalKind("thing", Phase.DELETE, delete)]
    report = await cleanup(NO_CLIENTS, [Entry("task", {"bucket": "b", "key": "k"})], kinds)
    assert report.ok and removed == ["from-k"] and report.removed == {"thing": 1}


def test_entries_are_named_by_what_names_them() -> None:
    assert entry_name(Entry("thing", {"name": "t"})) == "t"
    assert entry_name(Entry("job", {"job_id": "j"})) == "j"
    assert entry_name(Entry("s3_object", {"bucket": "b", "key": "k/x"})) == "s3://b/k/x"
    assert entry_name(Entry("s3_bucket", {"bucket": "b"})) == "s3://b"
    assert entry_name(Entry("shadow", {"thing": "t", "shadow": "s"})) == "thing=t, shadow=s"
