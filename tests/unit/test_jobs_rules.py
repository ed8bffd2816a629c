"""The pure rules of IoT Jobs: execution state transitions, abort and retry criteria, timeout
deadlines, rollout arithmetic, job documents and the device payloads."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as s

from fleetsim.localcore.features.jobs import criteria, payloads, rollout
from fleetsim.localcore.features.jobs import states as st
from fleetsim.localcore.features.jobs.document import (
    DocumentError,
    check_document,
    s3_location,
    substitute,
)
from fleetsim.localcore.features.jobs.records import ExecutionRecord


@given(s.sampled_from(st.EXECUTION_STATUSES), s.sampled_from(st.EXECUTION_STATUSES))
def test_devices_move_pending_executions_only_to_what_they_may_set(current: str,
                                                                   new: str) -> None:
    try:
        assert st.check_device_update(current, new) == new
    except st.TransitionError as e:
        assert new not in st.DEVICE_STATUSES or current in st.TERMINAL
        assert e.code == ("InvalidStateTransition" if new in st.DEVICE_STATUSES
                          else "InvalidRequest")
    else:
        assert current in st.PENDING and new in st.DEVICE_STATUSES


def test_process_details_name_every_count() -> None:
    details = st.process_details({st.SUCCEEDED: 3, st.QUEUED: 1})
    assert details["numberOfSucceededThings"] == 3 and details["numberOfQueuedThings"] == 1
    assert details["numberOfTimedOutThings"] == 0 and len(details) == 8


ABORT_20 = {"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",
                              "thresholdPercentage": 20.0, "minNumberOfExecutedThings": 5}]}


def test_abort_waits_for_the_minimum_then_compares_the_share() -> None:
    assert not criteria.abort_triggered(ABORT_20, {st.FAILED: 4})  # 4 executed < 5
    assert criteria.abort_triggered(ABORT_20, {st.FAILED: 1, st.SUCCEEDED: 4})  # 20%
    assert not criteria.abort_triggered(ABORT_20, {st.FAILED: 1, st.SUCCEEDED: 5})
    assert not criteria.abort_triggered(ABORT_20, {st.TIMED_OUT: 5})  # not FAILED
    assert not criteria.abort_triggered(ABORT_20, {st.FAILED: 3, st.QUEUED: 100})
    assert not criteria.abort_triggered(None, {st.FAILED: 100})


@given(s.integers(0, 50), s.integers(0, 50), s.integers(0, 50), s.integers(1, 30),
       s.floats(0, 100))
def test_abort_matches_its_definition(failed: int, succeeded: int, timed_out: int,
                                      minimum: int, threshold: float) -> None:
    config = {"criteriaList": [{"failureType": "ALL", "action": "CANCEL",
                                "thresholdPercentage": threshold,
                                "minNumberOfExecutedThings": minimum}]}
    counts = {st.FAILED: failed, st.SUCCEEDED: succeeded, st.TIMED_OUT: timed_out}
    executed = failed + succeeded + timed_out
    expected = executed >= minimum and executed > 0 and \
        (failed + timed_out) * 100 >= threshold * executed
    assert criteria.abort_triggered(config, counts) == expected


def test_retries_follow_the_failure_type() -> None:
    config = {"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 2},
                               {"failureType": "ALL", "numberOfRetries": 1}]}
    assert criteria.retries_allowed(config, st.TIMED_OUT) == 2
    assert criteria.retries_allowed(config, st.FAILED) == 1
    assert criteria.retries_allowed(config, st.REJECTED) == 0  # never retried
    assert criteria.retries_allowed(None, st.FAILED) == 0


@given(s.floats(0, 1e6), s.integers(1, 10080), s.floats(0, 1e6), s.integers(1, 10080))
def test_a_step_timeout_never_extends_the_in_progress_timeout(
        started: float, in_progress: int, step_started: float, step: int) -> None:
    deadline = criteria.timeout_deadline(started, in_progress, step_started, step)
    assert deadline is not None and deadline <= started + in_progress * 60
    assert deadline <= step_started + step * 60
    assert criteria.timeout_deadline(None, None, None, None) is None
    assert criteria.timeout_deadline(started, None, None, -1) is None


@given(s.integers(1, 1000), s.lists(s.floats(0.001, 30), min_size=1, max_size=200))
def test_rollout_releases_at_the_maximum_rate_whatever_the_ticks(
        per_minute: int, gaps: list[float]) -> None:
    config = rollout.RolloutConfig.of({"maximumPerMinute": per_minute})
    state = rollout.start(config, 0.0)
    released, now = 0, 0.0
    for gap in gaps:
        now += gap
        count, state = rollout.due(config, state, now, released, 0)
        released += count
        assert rollout.next_at(config, state) > now
    expected = 1 + per_minute * now / 60
    assert math.floor(expected) - 1 <= released <= math.floor(expected + 1e-9)


def test_exponential_rate_grows_by_its_factor_on_its_criteria_up_to_the_maximum() -> None:
    config = rollout.RolloutConfig.of({"maximumPerMinute": 100, "exponentialRate": {
        "baseRatePerMinute": 10, "incrementFactor": 2.0,
        "rateIncreaseCriteria": {"numberOfNotifiedThings": 5}}})
    state = rollout.start(config, 0.0)
    assert state.rate == 10
    _, state = rollout.due(config, state, 1.0, 4, 0)
    assert state.rate == 10
    _, state = rollout.due(config, state, 2.0, 5, 0)
    assert state.rate == 20
    _, state = rollout.due(config, state, 3.0, 30, 0)
    assert state.rate == 100  # 40, 80, then capped
    by_success = rollout.RolloutConfig.of({"exponentialRate": {
        "baseRatePerMinute": 10, "incrementFactor": 1.5,
        "rateIncreaseCriteria": {"numberOfSucceededThings": 3}}})
    state = rollout.start(by_success, 0.0)
    _, state = rollout.due(by_success, state, 1.0, 100, 3)
    assert state.rate == 15


def test_without_a_rollout_configuration_every_target_is_due_at_once() -> None:
    config = rollout.RolloutConfig.of(None)
    count, _ = rollout.due(config, rollout.start(config, 0.0), 0.0, 0, 0)
    assert count >= 10_000


@pytest.mark.parametrize("url, location", [
    ("https://s3.amazonaws.com/bucket/job-document.json", ("bucket", "job-document.json")),
    ("https://s3.eu-west-1.amazonaws.com/b/dir/key", ("b", "dir/key")),
    ("https://my.bucket.s3.amazonaws.com/a%20b", ("my.bucket", "a b")),
    ("https://b.s3.us-east-2.amazonaws.com/k", ("b", "k")),
])
def test_s3_object_urls(url: str, location: tuple[str, str]) -> None:
    assert s3_location(url) == location


@pytest.mark.parametrize("url", ["http://s3.amazonaws.com/b/k", "https://example.com/b/k",
                                 "https://s3.amazonaws.com/bucket-only"])
def test_what_is_not_an_s3_object_url(url: str) -> None:
    with pytest.raises(DocumentError):
        s3_location(url)


def test_placeholders_get_a_fresh_url_each_time() -> None:
    text = check_document(json.dumps({"files": [
        "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/one}",
        "${aws:iot:s3-presigned-url:https://b.s3.amazonaws.com/two}"]}))
    urls = iter(f'https://local/"{i}' for i in range(10))
    calls: list[tuple[str, str]] = []

    def presign(bucket: str, key: str) -> str:
        calls.append((bucket, key))
        return next(urls)

    first, second = (json.loads(substitute(text, presign))["files"] for _ in range(2))
    assert calls == [("b", "one"), ("b", "two")] * 2
    assert first == ['https://local/"0', 'https://local/"1'] and second[0] == 'https://local/"2'


@pytest.mark.parametrize("text", ["not json", "[1, 2]", json.dumps({"x": "y" * 40_000}),
                                  '{"u": "${aws:iot:s3-presigned-url:https://example.com/k}"}'])
def test_documents_aws_refuses(text: str) -> None:
    with pytest.raises(DocumentError):
        check_document(text)


def _execution(job: str, status: str, queued: float, seq: int) -> ExecutionRecord:
    return ExecutionRecord("us-east-1", job, "t", 1, status, {}, queued, None, queued, 1, 0,
                           None, None, None, False, seq)


def test_notifications_list_in_progress_first_then_by_queue_time_at_most_15() -> None:
    executions = [_execution(f"q{i}", st.QUEUED, 100 + i, i) for i in range(20)]
    executions.append(_execution("late", st.IN_PROGRESS, 500, 99))
    body = payloads.notify(executions, 1000.9)
    assert body["timestamp"] == 1000
    assert [j["jobId"] for j in body["jobs"]["IN_PROGRESS"]] == ["late"]
    assert [j["jobId"] for j in body["jobs"]["QUEUED"]] == [f"q{i}" for i in range(14)]
    assert payloads.next_pending(executions).job_id == "late"  # type: ignore[union-attr]
    assert payloads.notify([], 5)["jobs"] == {}
    assert payloads.notify_next(None, None, 5) == {"timestamp": 5}
