"""The reserved-topic router's patterns: parsing, matching, precedence; wide inputs with
hypothesis."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.broker.router import Reply, Request, Router, parse_pattern

SHADOW = "$aws/things/{thingName}/shadow/name/{shadowName}/update"


async def nothing(request: Request, reply: Reply) -> None:
    return None


def router_with(*patterns: str) -> Router:
    router = Router()
    for pattern in patterns:
        router.register(pattern, nothing)
    return router


def test_captures_and_literals():
    router = router_with(SHADOW)
    found = router.match("$aws/things/lamp-1/shadow/name/cfg/update")
    assert found is not None and found[0].pattern == SHADOW
    assert found[1] == {"thingName": "lamp-1", "shadowName": "cfg"}
    for topic in ("$aws/things/lamp-1/shadow/name/cfg/update/accepted",
                  "$aws/things/lamp-1/shadow/name/cfg/get",
                  "$aws/things/lamp-1/shadow/update",
                  "$aws/things//shadow/name/cfg/update",  # a capture is never empty
                  "other/things/lamp/shadow/name/cfg/update"):
        assert router.match(topic) is None, topic


def test_most_literal_pattern_wins_whatever_the_registration_order():
    router = router_with("$aws/things/{thingName}/jobs/{jobId}/get",
                         "$aws/things/{thingName}/jobs/start-next/get")
    found = router.match("$aws/things/t/jobs/start-next/get")
    assert found is not None and found[1] == {"thingName": "t"}
    found = router.match("$aws/things/t/jobs/job-7/get")
    assert found is not None and found[1] == {"thingName": "t", "jobId": "job-7"}


@pytest.mark.parametrize("pattern", [
    "things/{x}/update",  # not reserved
    "$aws/things/+/shadow/update",  # MQTT wildcards are not patterns
    "$aws/things/#",
    "$aws/things/{x}/a/{x}",  # the same capture twice
    "$aws/things/{x-y}/update",  # not an identifier
    "$aws/things/pre{x}/update",  # a capture is a whole level
    "$aws//update",  # empty level
])
def test_invalid_patterns_are_refused(pattern: str):
    with pytest.raises(ValueError):
        Router().register(pattern, nothing)


def test_a_second_registration_of_the_same_topics_is_refused():
    router = router_with(SHADOW)
    with pytest.raises(ValueError):
        router.register("$aws/things/{t}/shadow/name/{s}/update", nothing)
    with pytest.raises(ValueError):
        router.register("$aws/things/{t}/jobs/get", nothing, delivery="everyone")  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_any_topic_string_never_crashes_the_matcher(topic: str):
    router = router_with(SHADOW, "$aws/things/{thingName}/jobs/get", "$aws/rules/{rule}")
    found = router.match(topic)
    if found is not None:
        route, params = found
        assert all(value and "/" not in value for value in params.values())
        assert set(params) == {n for n in route.names if n is not None}


_LEVEL = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
                 min_size=1, max_size=20)
_LITERAL = st.text("abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=8)


@st.composite
def patterns_with_values(draw: st.DrawFn) -> tuple[str, dict[str, str], str]:
    shape = draw(st.lists(st.booleans(), min_size=1, max_size=6))  # True: a capture
    levels, values = ["$aws"], {}
    for i, capture in enumerate(shape):
        if capture:
            levels.append(f"{{p{i}}}")
            values[f"p{i}"] = draw(_LEVEL)
        else:
            levels.append(draw(_LITERAL))
    pattern = "/".join(levels)
    topic = "/".join(values.get(level[1:-1], level) if level.startswith("{") else level
                     for level in levels)
    return pattern, values, topic


@given(patterns_with_values())
def test_a_topic_built_from_a_pattern_matches_and_captures_its_values(
        case: tuple[str, dict[str, str], str]):
    pattern, values, topic = case
    levels, names = parse_pattern(pattern)
    assert len(levels) == len(names) == topic.count("/") + 1
    found = router_with(pattern).match(topic)
    assert found is not None and found[0].pattern == pattern and found[1] == values


async def test_submit_runs_later_per_origin_in_order_with_in_flight():
    router = Router()
    seen: list[tuple[str, bytes, int]] = []
    release = asyncio.Event()

    async def handler(request: Request, reply: Reply) -> None:
        await release.wait()
        seen.append((request.client_id, request.payload, request.in_flight))

    route = router.register("$aws/things/{thingName}/jobs/get", handler)

    class NoReply:
        def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
            raise AssertionError("unused")

    def request(client: str, payload: bytes) -> Request:
        return Request("$aws/things/t/jobs/get", payload, 0, client, "c" * 64, None, {})

    for payload in (b"1", b"2"):
        router.submit(route, "conn-a", request("a", payload), NoReply())
    router.submit(route, "conn-b", request("b", b"1"), NoReply())
    assert seen == []  # nothing runs inside submit
    release.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert [s for s in seen if s[0] == "a"] == [("a", b"1", 1), ("a", b"2", 2)]
    assert ("b", b"1", 1) in seen
    await router.close()
