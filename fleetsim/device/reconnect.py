"""Reconnect policy: exponential back-off with full jitter, so that a fleet dropped at once
(a broker restart, a network blip) does not come back as one thundering herd."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class ReconnectPolicy:
    base: float = 1.0  # seconds: the first delay is drawn from [0, base]
    cap: float = 60.0  # the largest delay
    max_attempts: int | None = None  # per outage; None: until the session is closed
    retry_initial: bool = False  # also retry the first connect instead of failing at once

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("reconnect base and cap must not be negative")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("reconnect max_attempts must be at least 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt `attempt` (0 = the first after the loss)."""
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 32)))
        return (rng or random).uniform(0, ceiling)

    def gives_up_after(self, attempts: int) -> bool:
        return self.max_attempts is not None and attempts >= self.max_attempts


def as_policy(reconnect: bool | ReconnectPolicy | None) -> ReconnectPolicy | None:
    if reconnect is True:
        return ReconnectPolicy()
    return reconnect or None
