"""MQTT 3.1.1 protocol violations close the network connection, as the standard requires
([MQTT-4.8.0-1] and the statements cited per case), over real TLS (issue 8)."""

from __future__ import annotations

import pytest

from fleetsim.localcore.broker import codec
from tests.mqtt_testing import Env, RawClient

pytestmark = pytest.mark.timeout(30)
TOPIC = codec.encode_topic("fleet/x")


VIOLATIONS = {
    # [MQTT-3.8.3-4]: today SUBACK 3, and the subscription was granted
    "subscribe-qos-3": b"\x82\x0c\x00\x01" + TOPIC + b"\x03",
    # [MQTT-2.3.1-1]
    "qos1-publish-packet-id-0": b"\x32\x0d" + TOPIC + b"\x00\x00hi",
    "subscribe-packet-id-0": b"\x82\x0c\x00\x00" + TOPIC + b"\x01",
    # sections 3.12, 3.14: no variable header, no payload
    "pingreq-with-a-body": b"\xc0\x01\x00",
    "disconnect-with-a-body": b"\xe0\x01\x00",
    # [MQTT-2.2.2-2]: reserved fixed-header flags
    "pingreq-with-flags": b"\xc1\x00",
    "puback-with-flags": b"\x41\x02\x00\x01",
    "subscribe-with-flags-0": b"\x80\x0c\x00\x01" + TOPIC + b"\x01",
    # sections 3.4: PUBACK's remaining length is 2
    "puback-too-long": b"\x40\x03\x00\x01\x00",
    # [MQTT-1.5.3-2]: U+0000 in a topic name
    "publish-topic-with-nul": b"\x30\x05\x00\x03a\x00b",
    # packets only servers send
    "connack-from-a-client": b"\x20\x02\x00\x00",
    # section 2.2.3: a remaining length of more than four bytes
    "remaining-length-of-five-bytes": b"\x30\xff\xff\xff\xff\x01",
}


@pytest.mark.parametrize("name", list(VIOLATIONS))
async def test_protocol_violation_closes_the_connection(env: Env, name: str):
    client = await env.raw(env.device("dev"))
    await client.send(VIOLATIONS[name])
    assert await client.read() is None  # closed, with nothing sent back
    assert "dev" not in env.broker.clients
    assert not env.broker._trie.match("fleet/x")  # nothing was subscribed either


async def test_password_flag_without_user_name_flag_gets_no_connack(env: Env):
    # [MQTT-3.1.2-22]: "If the User Name Flag is set to 0, the Password Flag MUST be set to 0"
    body = (codec.encode_topic("MQTT") + bytes((4, 0x42)) + b"\x00\x3c"
            + codec.encode_topic("dev") + codec.encode_topic("secret"))
    client = await RawClient.open(env.port, env.device("dev"))
    await client.send(b"\x10" + codec.encode_length(len(body)) + body)
    assert await client.read() is None
    assert not env.broker.clients
