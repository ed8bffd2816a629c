"""Topic names and filters as AWS IoT Core checks them, and the subscription trie that routes.

AWS differences from MQTT 3.1.1 that matter here (developer guide, "AWS IoT differences from
MQTT specifications"): `sensor/#` matches `sensor/` and below but not `sensor` itself; only
an exact (wildcard-free) filter receives retained messages. Quotas: a topic or filter is at most
256 UTF-8 bytes with at most 7 slashes (the `$aws/rules/<rule>/` prefix of Basic Ingest does
not count). Topics starting with `$` are reserved; clients may publish only to those AWS lists.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

MAX_TOPIC_BYTES = 256
MAX_SLASHES = 7
_RULES_PREFIX = "$aws/rules/"

# Reserved topics a client may publish to ("Reserved topics", client operations "Publish").
_PUBLISHABLE_RESERVED = re.compile(
    r"\$aws/things/[^/]+/shadow(/name/[^/]+)?/(get|update|delete)"
    r"|\$aws/things/[^/]+/jobs/(get|start-next|[^/]+/get|[^/]+/update)"
    r"|\$aws/things/[^/]+/defender/metrics/(json|cbor)"
    r"|\$aws/things/[^/]+/streams/[^/]+/(get|describe)/(json|cbor)"
    r"|\$aws/certificates/(create|create-from-csr)/(json|cbor)"
    r"|\$aws/provisioning-templates/[^/]+/provision/(json|cbor)"
    r"|\$aws/rules/[^/]+(/.*)?",
    re.DOTALL,
)


def _size_error(text: str) -> str | None:
    if not text:
        return "is empty"
    if len(text.encode()) > MAX_TOPIC_BYTES:
        return f"is longer than {MAX_TOPIC_BYTES} bytes"
    slashes = text.count("/")
    if text.startswith(_RULES_PREFIX):
        slashes -= 3
    if slashes > MAX_SLASHES:
        return f"has more than {MAX_SLASHES} slashes"
    return None


def topic_name_error(topic: str) -> str | None:
    """Why a client may not publish to this topic name, or None."""
    if "+" in topic or "#" in topic:
        return "contains a wildcard"
    error = _size_error(topic)
    if error:
        return error
    if topic.startswith("$") and not _PUBLISHABLE_RESERVED.fullmatch(topic):
        return "is a reserved topic clients may not publish to"
    return None


SHARE_PREFIX = "$share/"
MAX_SHARE_NAME = 128


def split_shared(topic_filter: str) -> tuple[str, str] | None:
    """(share name, topic filter) of a shared subscription `$share/<name>/<filter>`, or None
    for a filter that is not one."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    name, _, inner = topic_filter[len(SHARE_PREFIX):].partition("/")
    return name, inner


def topic_filter_error(topic_filter: str) -> str | None:
    """Why this topic filter is invalid, or None. A shared subscription's share name must be
    non-empty, without `/`, `+` or `#`, at most 128 characters; the two slashes it requires do
    not count against the slash limit ("MQTT 5 supported features", Shared subscriptions)."""
    shared = split_shared(topic_filter)
    if shared is not None:
        name, inner = shared
        if not name or "+" in name or "#" in name or len(name) > MAX_SHARE_NAME:
            return "has an invalid share name"
        if not inner:
            return "is a shared subscription without a topic filter"
        return topic_filter_error(inner)
    error = _size_error(topic_filter)
    if error:
        return error
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "uses # other than as the whole last level"
        if "+" in level and level != "+":
            return "uses + other than as a whole level"
    return None


def has_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


class _Node:
    __slots__ = ("children", "subscribers")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.subscribers: dict[Hashable, int] = {}


class SubscriptionTrie:
    """Topic filter → {subscriber: qos}, matched level by level."""

    def __init__(self) -> None:
        self._root = _Node()
        self.count = 0

    def add(self, topic_filter: str, subscriber: Hashable, qos: int) -> None:
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        if subscriber not in node.subscribers:
            self.count += 1
        node.subscribers[subscriber] = qos

    def remove(self, topic_filter: str, subscriber: Hashable) -> bool:
        path = [self._root]
        for level in topic_filter.split("/"):
            child = path[-1].children.get(level)
            if child is None:
                return False
            path.append(child)
        if path[-1].subscribers.pop(subscriber, None) is None:
            return False
        self.count -= 1
        levels = topic_filter.split("/")
        for depth in range(len(levels), 0, -1):  # prune empty branches
            node = path[depth]
            if node.subscribers or node.children:
                break
            del path[depth - 1].children[levels[depth - 1]]
        return True

    def match(self, topic: str) -> dict[Hashable, int]:
        """Every subscriber whose filter matches `topic`, with its highest granted QoS."""
        found: dict[Hashable, int] = {}
        levels = topic.split("/")
        # MQTT-4.7.2-1: filters starting with a wildcard do not match topics starting with $.
        self._walk(self._root, levels, 0, found, topic.startswith("$"))
        return found

    def _walk(self, node: _Node, levels: list[str], depth: int, found: dict[Hashable, int],
              dollar: bool) -> None:
        if depth == len(levels):
            _merge(found, node.subscribers)
            return
        wildcard_ok = not (dollar and depth == 0)
        if wildcard_ok:
            multi = node.children.get("#")
            # AWS: `a/#` matches `a/` and below, never the parent `a` itself, so only here.
            if multi is not None:
                _merge(found, multi.subscribers)
            single = node.children.get("+")
            if single is not None:
                self._walk(single, levels, depth + 1, found, dollar)
        exact = node.children.get(levels[depth])
        if exact is not None:
            self._walk(exact, levels, depth + 1, found, dollar)


def _merge(found: dict[Hashable, int], subscribers: dict[Hashable, int]) -> None:
    for subscriber, qos in subscribers.items():
        if found.get(subscriber, -1) < qos:
            found[subscriber] = qos
