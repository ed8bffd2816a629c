"""AWS quotas cap pacing on AWS targets only; shards share the account's connect quota."""

from __future__ import annotations

from fleetsim.engine.quotas import connect_pacing, publish_rate
from fleetsim.scenario.model import AwsTarget, LocalTarget, Pacing, Ramp

AWS = AwsTarget(kind="aws", connects_per_second=500)


def test_local_target_is_not_capped() -> None:
    pacing = Pacing(rate=5000)
    assert connect_pacing(LocalTarget(), 1, pacing) is pacing
    assert connect_pacing(LocalTarget(), 1, None) is None
    assert publish_rate(LocalTarget(), 1000) == 1000


def test_aws_connect_rate_capped_and_shared_by_shards() -> None:
    assert connect_pacing(AWS, 1, None) == Pacing(rate=500)
    assert connect_pacing(AWS, 4, Pacing(rate=1000, concurrency=50)) == \
        Pacing(rate=125, concurrency=50)
    assert connect_pacing(AWS, 1, Pacing(rate=50)).rate == 50


def test_aws_ramp_capped() -> None:
    ramp = Ramp(start=100, end=2000, over=60)
    capped = connect_pacing(AWS, 1, Pacing(ramp=ramp))
    assert capped is not None and capped.ramp is not None
    assert (capped.ramp.start, capped.ramp.end, capped.ramp.over) == (100, 500, 60)


def test_aws_publish_rate_per_connection() -> None:
    assert publish_rate(AwsTarget(kind="aws"), 500) == 100
    assert publish_rate(AwsTarget(kind="aws"), 0.2) == 0.2
