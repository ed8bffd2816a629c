"""PutLogEvents' batch rules ("PutLogEvents", CloudWatch Logs API reference) and the
GetLogEvents / FilterLogEvents tokens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.features.logs import tokens
from fleetsim.localcore.features.logs.batch import (
    DAY_MS,
    MAX_FUTURE_MS,
    MAX_PAST_MS,
    InvalidBatch,
    check_batch,
)

NOW = 1_700_000_000_000


def test_too_old_expired_and_too_new_events_are_rejected_the_rest_accepted() -> None:
    events = [(NOW - MAX_PAST_MS - 1, "old"), (NOW - 2 * DAY_MS, "expired"), (NOW, "ok"),
              (NOW + 1, "ok"), (NOW + MAX_FUTURE_MS + 1, "new")]
    accepted = check_batch(events, NOW, retention_days=1)
    assert (accepted.start, accepted.end) == (2, 4)
    assert accepted.rejected == {"tooOldLogEventEndIndex": 1, "expiredLogEventEndIndex": 2,
                                 "tooNewLogEventStartIndex": 4}
    assert check_batch(events[2:4], NOW, None).rejected == {}


@pytest.mark.parametrize(("events", "message"), [
    ([(NOW, "b"), (NOW - 1, "a")], "Log events in a single PutLogEvents request must be in "
                                   "chronological order."),
    ([(NOW - DAY_MS - 1, "a"), (NOW, "b")], "The batch of log events in a single "
                                            "PutLogEvents request cannot span more than 24 "
                                            "hours."),
    ([(NOW, "x" * 1_048_551)], "Upload too large: 1048577 bytes exceeds limit of 1048576"),
])
def test_batches_refused_as_a_whole(events: list[tuple[int, str]], message: str) -> None:
    with pytest.raises(InvalidBatch) as e:
        check_batch(events, NOW, None)
    assert str(e.value) == message


def test_a_batch_at_the_size_limit_is_accepted() -> None:
    assert check_batch([(NOW, "x" * 1_048_550)], NOW, None).end == 1


@given(st.lists(st.integers(NOW - 20 * DAY_MS, NOW + DAY_MS), max_size=30))
def test_accepted_events_are_exactly_those_within_the_window(times: list[int]) -> None:
    times.sort()
    if times and times[-1] - times[0] > DAY_MS:
        times = [t for t in times if t >= times[-1] - DAY_MS]
    events = [(t, "m") for t in times]
    accepted = check_batch(events, NOW, None)
    kept = [t for t, _ in events[accepted.start:accepted.end]]
    assert kept == [t for t in times if NOW - MAX_PAST_MS <= t <= NOW + MAX_FUTURE_MS]


@given(st.booleans(), st.integers(0, 2**62 - 1), st.integers(0, 2**62 - 1))
def test_tokens_round_trip(forward: bool, ts: int, event_id: int) -> None:
    cursor = tokens.Cursor(forward, (ts, event_id))
    assert tokens.parse(cursor.token()) == cursor
    assert tokens.parse_filter_token(tokens.filter_token((ts, event_id))) == (ts, event_id)


@pytest.mark.parametrize("token", ["", "x/1", "f/12", "b/" + "1" * 41])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(tokens.BadToken):
        tokens.parse(token)
