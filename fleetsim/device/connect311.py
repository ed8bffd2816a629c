"""MQTT 3.1.1 CONNECT and CONNACK, written and read straight on a device's TLS socket.

paho builds CONNECT through its packet queue and write loop, and reads CONNACK one byte at a
time through its read loop, `decode_connack`, a ReasonCode, a Properties and its callbacks:
most of the Python a connect costs besides the handshake (py-spy, `python -m
bench.connect_path`). For MQTT 3.1.1 without will or user name (how devices connect here) both
packets are fixed: CONNECT (MQTT 3.1.1 §3.1: fixed header 0x10, remaining length, protocol
name "MQTT", level 4, flags with Clean Session 0x02, keep-alive, client identifier) and CONNACK
(§3.2: 0x20, remaining length 2, Session Present flag, return code). paho then takes the
connected socket over (`FleetClient._take_over`).
"""

from __future__ import annotations

import struct

from fleetsim.device.qos0 import remaining_length

CONNECT = 0x10
CONNACK = 0x20
CONNACK_LENGTH = 4
_PROTOCOL = b"\x00\x04MQTT\x04"  # protocol name and level 4 (3.1.1)
CLEAN_SESSION = 0x02


def connect_packet(client_id: bytes, keepalive: int, clean_session: bool) -> bytes:
    """The CONNECT paho sends for these (no will, user name or password)."""
    if len(client_id) > 65_535 or not 0 <= keepalive <= 65_535:
        raise ValueError("client identifier or keep-alive out of MQTT's range")
    body = b"".join((_PROTOCOL, struct.pack("!BHH", CLEAN_SESSION if clean_session else 0,
                                            keepalive, len(client_id)), client_id))
    return bytes((CONNECT,)) + remaining_length(len(body)) + body


def parse_connack(packet: bytes) -> tuple[bool, int]:
    """(session present, return code) of a 4-byte CONNACK; ValueError for anything else."""
    if len(packet) != CONNACK_LENGTH or packet[0] != CONNACK or packet[1] != 2:
        raise ValueError(f"the server answered CONNECT with {packet.hex()}, not a CONNACK")
    if packet[2] & 0xFE:
        raise ValueError(f"CONNACK with reserved flags set ({packet[2]:#04x})")
    return bool(packet[2] & 0x01), packet[3]
