"""The peer generator for bench/peer.py: Locust's MqttUser (`locust.contrib.mqtt`, where
locust-plugins' MqttUser now lives) running the workload fleetsim runs, with the same
certificates. Run by `locust -f` (never imported by fleetsim); configured by environment.

Each user is one device: its own SSLContext (CA + its certificate and key), client id = thing
name, connect by MqttUser itself (connect_async + loop_start, paho's selector loop so that
more than ~340 sockets work). Once every device has its CONNACK: PEER_IDLE_S idle, then each
device publishes one QoS 0 message every PEER_INTERVAL_S (random phase) for PEER_TELEMETRY_S.
Phase edges (epoch seconds) and the count of messages go to PEER_MARKS as JSON.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import ssl
import time
from typing import Any

import gevent
from gevent.event import Event
from locust import constant, events, task
from locust.contrib.mqtt import MqttUser

MARKS: dict[str, Any] = {"ready": time.time(), "sent": 0, "connected_count": 0,
                         "connects_per_s": {}}
_IDS: list[dict[str, str]] = json.loads(open(os.environ["PEER_IDENTITIES"]).read())  # noqa: SIM115
_CA = os.environ["PEER_CA"]
_HOST, _PORT = os.environ["PEER_HOST"], int(os.environ["PEER_PORT"])
_IDLE_S = float(os.environ["PEER_IDLE_S"])
_TELEMETRY_S = float(os.environ["PEER_TELEMETRY_S"])
_INTERVAL_S = float(os.environ["PEER_INTERVAL_S"])
_next = itertools.count()
_all_connected = Event()
_telemetry = Event()


def _save() -> None:
    with open(os.environ["PEER_MARKS"], "w") as f:
        json.dump(MARKS, f)


_save()


def _connected(*_args: Any) -> None:
    MARKS["connected_count"] += 1
    second = str(int(time.time()))  # as fleetsim's timeline counts its CONNACKs
    MARKS["connects_per_s"][second] = MARKS["connects_per_s"].get(second, 0) + 1
    if MARKS["connected_count"] == len(_IDS):
        MARKS["connected"] = time.time()
        _all_connected.set()


class Device(MqttUser):
    host = _HOST
    port = _PORT
    use_loop_selectors = True
    wait_time = constant(3600)

    def __init__(self, environment: Any):
        ident = _IDS[next(_next) % len(_IDS)]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(_CA)
        ctx.load_cert_chain(ident["cert"], ident["key"])
        self.tls_context = ctx
        self.client_id = ident["name"]
        self.topic = f"dt/sensors/{ident['name']}/telemetry"
        super().__init__(environment)
        on_connect = self.client.on_connect

        def counted(*args: Any) -> None:
            on_connect(*args)
            if args[3] == 0:
                _connected()

        self.client.on_connect = counted

    @task
    def telemetry(self) -> None:
        _telemetry.wait()
        due = MARKS["telemetry_start"] + random.uniform(0, _INTERVAL_S)
        seq = 0
        while True:
            gevent.sleep(max(0.0, due - time.time()))
            if time.time() >= MARKS["telemetry_end"]:
                return
            seq += 1
            body = {"seq": seq, "temperature": round(random.uniform(18, 26), 1),
                    "humidity": random.randint(30, 60), "at": int(time.time() * 1000),
                    "sent_at": time.time()}
            self.client.publish(self.topic, json.dumps(body), qos=0)
            MARKS["sent"] += 1
            due += _INTERVAL_S


def _conductor(environment: Any) -> None:
    _all_connected.wait()
    MARKS["telemetry_start"] = MARKS["connected"] + _IDLE_S
    MARKS["telemetry_end"] = MARKS["telemetry_start"] + _TELEMETRY_S
    _save()
    gevent.sleep(max(0.0, MARKS["telemetry_start"] - time.time()))
    _telemetry.set()
    gevent.sleep(max(0.0, MARKS["telemetry_end"] - time.time()) + 0.5)
    MARKS["done"] = time.time()
    _save()
    environment.runner.quit()


@events.test_start.add_listener
def _start(environment: Any, **_kw: Any) -> None:
    MARKS["test_start"] = time.time()
    gevent.spawn(_conductor, environment)
