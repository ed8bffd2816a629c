"""AWS IoT Core quotas a run keeps to when its target is AWS (local core has none)."""

from __future__ import annotations

from fleetsim.scenario.model import AwsTarget, LocalTarget, Pacing, Ramp


def connect_pacing(target: AwsTarget | LocalTarget, shards: int,
                   pacing: Pacing | None) -> Pacing | None:
    """Connect requests per second per account: shards share the account's quota."""
    if not isinstance(target, AwsTarget):
        return pacing
    cap = target.connects_per_second / shards
    if pacing is None:
        return Pacing(rate=cap)
    if pacing.ramp is not None:
        ramp = pacing.ramp
        capped = Ramp(start=min(ramp.start, cap), end=min(ramp.end, cap), over=ramp.over,
                      profile=ramp.profile, steps=ramp.steps)
        return pacing.model_copy(update={"ramp": capped})
    return pacing.model_copy(update={"rate": min(pacing.rate or cap, cap)})


def publish_rate(target: AwsTarget | LocalTarget, rate: float) -> float:
    """Publishes per second per connection."""
    if isinstance(target, AwsTarget):
        return min(rate, target.publishes_per_second_per_connection)
    return rate
