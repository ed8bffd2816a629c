"""A connected device holds its FleetClient for its life (issue 9: memory per device): the
client's own attributes live in slots, so its instance dict holds only aiomqtt's keys and
CPython keeps it key-shared, as a plain aiomqtt client's."""

from __future__ import annotations

import ssl
import sys

import aiomqtt

from fleetsim.device.client import FleetClient


async def test_a_fleet_client_adds_no_key_to_the_instance_dict_aiomqtt_makes() -> None:
    tls = ssl.create_default_context()
    fleet = FleetClient("localhost", 8883, identifier="dev-1", on_lost=lambda _reason: None,
                        tls_context=tls)
    plain = aiomqtt.Client("localhost", 8883, identifier="dev-1", tls_context=tls)
    # `_queue_max` stands for aiomqtt's `_queue`, made on first use (FleetClient._queue).
    assert set(vars(fleet)) - {"_queue_max"} <= set(vars(plain))
    assert sys.getsizeof(vars(fleet)) <= sys.getsizeof(vars(plain))
    fleet.message_handler = None  # its own attributes still read and write
    fleet.last_error_log = "kept"
    assert fleet.last_error_log == "kept" and "last_error_log" not in vars(fleet)
