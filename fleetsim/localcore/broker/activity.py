"""What the broker tells an observer about each client action (AWS IoT logging's input).

The composition sets `Broker.activity` only while something listens (local core's logging
feature, while logging is on); with it unset, the broker's paths pay one attribute test. The
observer is called inside the broker's work, so it must be cheap and must not route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fleetsim.localcore.principal import Principal

# eventType values of AWS IoT's message-broker log entries ("AWS IoT log entries").
CONNECT = "Connect"
DISCONNECT = "Disconnect"
PUBLISH_IN = "Publish-In"
PUBLISH_OUT = "Publish-Out"
SUBSCRIBE = "Subscribe"

SUCCESS = "Success"
FAILURE = "Failure"

AUTHORIZATION_FAILURE = "AUTHORIZATION_FAILURE"  # an action the policies do not allow


@dataclass(frozen=True, slots=True)
class Activity:
    event_type: str
    status: str  # Success | Failure
    client_id: str
    principal_id: str  # the certificate id
    source_ip: str
    source_port: int
    principal: Principal | None  # what the registry said about the certificate, if anything
    topic: str | None = None  # topic name (publish) or topic filter (subscribe)
    reason: str | None = None  # a failure's cause; a disconnect's lifecycle disconnectReason


ActivityHook = Callable[[Activity], None]
