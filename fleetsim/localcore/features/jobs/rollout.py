"""Rollout arithmetic ("Job rollout, scheduling, and abort configurations"): how many job
executions a job may create by a given time.

`maximumPerMinute` caps the rate at which things are notified. `exponentialRate` starts at
`baseRatePerMinute` and multiplies the rate by `incrementFactor` each time another
`rateIncreaseCriteria.numberOfNotifiedThings` things have been notified, or another
`numberOfSucceededThings` executions have succeeded, since the last increase, never above
`maximumPerMinute`. Without a rollout configuration every target is notified at once.

The state is a small value (`RolloutState`) kept with the job, so a restart resumes the rollout
where it stopped. Releases accrue as credit at the current rate: `due(now)` answers how many
executions to create now, and `next_at` when the next one is due, so one timer per job drives
the rollout, whatever its number of targets.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

UNLIMITED = math.inf
MIN_TICK_S = 0.05  # never re-arm a rollout timer sooner than this


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    maximum_per_minute: float = UNLIMITED
    base_per_minute: float | None = None  # exponentialRate.baseRatePerMinute
    increment_factor: float = 1.0
    per_notified: int | None = None  # rateIncreaseCriteria.numberOfNotifiedThings
    per_succeeded: int | None = None  # rateIncreaseCriteria.numberOfSucceededThings

    @classmethod
    def of(cls, wire: dict[str, Any] | None) -> RolloutConfig:
        """From `jobExecutionsRolloutConfig` (already validated)."""
        wire = wire or {}
        exponential = wire.get("exponentialRate") or {}
        criteria = exponential.get("rateIncreaseCriteria") or {}
        maximum = wire.get("maximumPerMinute")
        return cls(float(maximum) if maximum else UNLIMITED,
                   float(exponential["baseRatePerMinute"]) if exponential else None,
                   float(exponential.get("incrementFactor", 1.0)),
                   criteria.get("numberOfNotifiedThings"),
                   criteria.get("numberOfSucceededThings"))

    @property
    def limited(self) -> bool:
        return self.maximum_per_minute != UNLIMITED or self.base_per_minute is not None


@dataclass(frozen=True, slots=True)
class RolloutState:
    started: float  # when the rollout began
    last: float  # when credit was last accrued
    credit: float = 1.0  # the first thing is notified at once
    rate: float = 0.0  # per minute, now
    notified_mark: int = 0  # notified count at the last rate increase
    succeeded_mark: int = 0

    def to_wire(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> RolloutState:
        return cls(**wire)


def start(config: RolloutConfig, now: float) -> RolloutState:
    rate = config.base_per_minute if config.base_per_minute is not None \
        else config.maximum_per_minute
    return RolloutState(now, now, 1.0, min(rate, config.maximum_per_minute))


def _increased(config: RolloutConfig, state: RolloutState, notified: int,
               succeeded: int) -> RolloutState:
    """The rate after the exponential criteria met since the last increase."""
    if config.base_per_minute is None:
        return state
    while state.rate < config.maximum_per_minute:
        by_notified = (config.per_notified is not None
                       and notified - state.notified_mark >= config.per_notified)
        by_succeeded = (config.per_succeeded is not None
                        and succeeded - state.succeeded_mark >= config.per_succeeded)
        if not (by_notified or by_succeeded):
            break
        state = replace(state, rate=min(state.rate * config.increment_factor,
                                        config.maximum_per_minute),
                        notified_mark=(state.notified_mark + config.per_notified
                                       if by_notified and config.per_notified else notified),
                        succeeded_mark=(state.succeeded_mark + config.per_succeeded
                                        if by_succeeded and config.per_succeeded
                                        else succeeded))
    return state


def due(config: RolloutConfig, state: RolloutState, now: float, notified: int,
        succeeded: int, minute: float = 60.0) -> tuple[int, RolloutState]:
    """(how many executions to create at `now`, the state after creating them). `notified`:
    executions created so far; `succeeded`: of them, how many succeeded; `minute`: seconds a
    minute lasts."""
    if not config.limited:
        return 2**31, state
    state = _increased(config, state, notified, succeeded)
    credit = state.credit + max(0.0, now - state.last) * state.rate / minute
    count = math.floor(credit)
    return count, replace(state, credit=credit - count, last=max(now, state.last))


def next_at(config: RolloutConfig, state: RolloutState, minute: float = 60.0) -> float:
    """When the next execution is due (the state as `due` left it)."""
    if not config.limited or state.rate <= 0:
        return state.last
    return state.last + max(MIN_TICK_S, (1.0 - state.credit) * minute / state.rate)
