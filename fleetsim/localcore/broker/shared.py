"""Shared subscriptions `$share/<name>/<filter>`, for MQTT 3.1.1 and MQTT 5 clients alike.

AWS IoT ("MQTT 5 supported features", Shared subscriptions): subscriptions with the same
`<name>/<filter>` form a group, and each message matching the filter goes to one member chosen
at random; a message matching several groups goes to one member of each. A clean session
leaves its groups when it disconnects; a persistent one stays as an offline member until it
unsubscribes or expires. With no member online, QoS 1 messages are queued when a member has a
persistent session (here: on one such member's session, which gets them when it resumes) and
QoS 0 messages are dropped. Shared subscriptions get no retained messages on subscribe.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleetsim.localcore.broker.session import Session


class SharedGroup:
    """One group: sits in the subscription trie in place of its members."""

    __slots__ = ("key", "members")

    def __init__(self, key: tuple[str, str]):
        self.key = key  # (share name, topic filter)
        self.members: dict[Session, int] = {}  # session -> subscription options

    def pick(self, qos: int) -> tuple[Session, int] | None:
        """The member to deliver to: a random online one; with none online, for QoS 1, a
        random member with a persistent session (it queues the message); else None."""
        online = [m for m in self.members.items() if m[0].conn is not None]
        if online:
            return random.choice(online)
        if qos:
            offline = [m for m in self.members.items() if m[0].persistent]
            if offline:
                return random.choice(offline)
        return None
