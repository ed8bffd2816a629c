"""Topic validation as AWS IoT applies it, and the subscription trie."""

from __future__ import annotations

import pytest

from fleetsim.localcore.broker.topics import (
    SubscriptionTrie,
    topic_filter_error,
    topic_name_error,
)


@pytest.mark.parametrize("topic", [
    "iot/ws", "telemetry/building/one/dev-1", "a/", "/a", "1/2/3/4/5/6/7/8",
    "$aws/things/t1/shadow/update", "$aws/things/t1/shadow/name/s1/get",
    "$aws/things/t1/jobs/get", "$aws/things/t1/jobs/job-1/update",
    "$aws/things/t1/jobs/start-next", "$aws/certificates/create/json",
    "$aws/certificates/create-from-csr/cbor", "$aws/provisioning-templates/tpl/provision/json",
    "$aws/rules/myRule/a/b/c/d/e/f/g",
])
def test_publishable_topics(topic):
    assert topic_name_error(topic) is None


@pytest.mark.parametrize("topic", [
    "", "a/+", "a/#", "1/2/3/4/5/6/7/8/9", "x" * 257,
    "$aws/events/presence/connected/x", "$aws/things/t1/shadow/update/accepted", "$SYS/x",
])
def test_refused_topics(topic):
    assert topic_name_error(topic) is not None


@pytest.mark.parametrize("topic_filter,ok", [
    ("#", True), ("a/#", True), ("+/b/+", True), ("$aws/events/presence/+/+", True),
    ("a/#/b", False), ("a#", False), ("a/b+", False), ("", False), ("1/2/3/4/5/6/7/8/9", False),
])
def test_filter_validation(topic_filter, ok):
    assert (topic_filter_error(topic_filter) is None) is ok


def test_trie_matching_follows_aws_wildcard_rules():
    trie = SubscriptionTrie()
    for name, topic_filter, qos in [("all", "#", 0), ("sensor", "sensor/#", 1),
                                    ("room1", "sensor/+/room1", 0), ("exact", "sensor", 1),
                                    ("events", "$aws/events/#", 1), ("plus", "+/x", 0)]:
        trie.add(topic_filter, name, qos)
    assert trie.match("sensor") == {"all": 0, "exact": 1}  # sensor/# does not match the parent
    assert trie.match("sensor/") == {"all": 0, "sensor": 1}
    assert trie.match("sensor/temp/room1") == {"all": 0, "sensor": 1, "room1": 0}
    assert trie.match("$aws/events/x") == {"events": 1}  # wildcards at level 0 skip $ topics
    assert trie.match("$aws/x") == {}
    assert trie.match("a/x") == {"all": 0, "plus": 0}


def test_overlapping_filters_give_one_entry_with_the_highest_qos():
    trie = SubscriptionTrie()
    trie.add("a/#", "s", 0)
    trie.add("a/b", "s", 1)
    assert trie.match("a/b") == {"s": 1}


def test_remove_prunes_and_counts():
    trie = SubscriptionTrie()
    trie.add("a/b/c", "s1", 0)
    trie.add("a/b", "s2", 0)
    assert trie.count == 2
    assert trie.remove("a/b/c", "s1")
    assert not trie.remove("a/b/c", "s1")
    assert trie.match("a/b/c") == {}
    assert trie.match("a/b") == {"s2": 0}
    assert trie.remove("a/b", "s2")
    assert trie.count == 0
    assert trie._root.children == {}
