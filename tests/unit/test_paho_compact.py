"""`paho_compact`: paho's queue of packets to write as a list behaves as paho's deque does for
every operation paho applies to it, and a compacted client's locks."""

from __future__ import annotations

import collections

import paho.mqtt.client as paho
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.device.paho_compact import Outbox, compact

_OPS = st.lists(st.tuples(st.sampled_from(["append", "appendleft", "popleft", "clear"]),
                          st.integers()), max_size=60)


@given(_OPS)
def test_the_outbox_answers_as_a_deque_would(ops: list[tuple[str, int]]) -> None:
    outbox, deque = Outbox(), collections.deque[int]()
    for op, item in ops:
        if op == "popleft":
            if not deque:
                continue
            assert outbox.popleft() == deque.popleft()
        elif op == "clear":
            outbox.clear()
            deque.clear()
        else:
            getattr(outbox, op)(item)
            getattr(deque, op)(item)
        assert list(outbox) == list(deque) and len(outbox) == len(deque)
        assert bool(outbox) == bool(deque)


def test_a_compacted_client_shares_one_reentrant_lock_but_its_callback_lock() -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="c")
    compact(client)
    assert isinstance(client._out_packet, Outbox) and not client._out_packet
    shared = client._callback_mutex
    assert all(getattr(client, name) is shared for name in (
        "_msgtime_mutex", "_out_message_mutex", "_in_message_mutex",
        "_reconnect_delay_mutex", "_mid_generate_mutex"))
    with client._out_message_mutex, client._in_message_mutex:  # nested, as paho takes them
        assert client._in_callback_mutex.acquire(False)  # still a lock of its own
        client._in_callback_mutex.release()
    other = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="d")
    compact(other)
    assert other._callback_mutex is not shared
