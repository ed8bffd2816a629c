"""Lifecycle (presence) events as AWS IoT publishes them ("Lifecycle events", developer guide):
`$aws/events/presence/connected/<clientId>` and `.../disconnected/<clientId>`. Client ids that
contain `#` or `+` get none."""

from __future__ import annotations

import json
import time

# disconnectReason values, and whether the broker then sends the client's Last Will.
AUTH_ERROR = "AUTH_ERROR"
CLIENT_INITIATED_DISCONNECT = "CLIENT_INITIATED_DISCONNECT"
CLIENT_ERROR = "CLIENT_ERROR"
CONNECTION_LOST = "CONNECTION_LOST"
DUPLICATE_CLIENTID = "DUPLICATE_CLIENTID"
MQTT_KEEP_ALIVE_TIMEOUT = "MQTT_KEEP_ALIVE_TIMEOUT"
SERVER_INITIATED_DISCONNECT = "SERVER_INITIATED_DISCONNECT"
SENDS_WILL = {AUTH_ERROR, CLIENT_ERROR, CONNECTION_LOST, DUPLICATE_CLIENTID,
              MQTT_KEEP_ALIVE_TIMEOUT, SERVER_INITIATED_DISCONNECT}


def wants_events(client_id: str) -> bool:
    return "#" not in client_id and "+" not in client_id


def _now_ms() -> int:
    return int(time.time() * 1000)


def connected(client_id: str, session_id: str, principal_id: str, ip_address: str,
              version: int) -> tuple[str, bytes]:
    payload = {"clientId": client_id, "timestamp": _now_ms(), "eventType": "connected",
               "sessionIdentifier": session_id, "principalIdentifier": principal_id,
               "ipAddress": ip_address, "versionNumber": version}
    return f"$aws/events/presence/connected/{client_id}", json.dumps(payload).encode()


def disconnected(client_id: str, session_id: str, principal_id: str, reason: str,
                 version: int) -> tuple[str, bytes]:
    payload = {"clientId": client_id, "timestamp": _now_ms(), "eventType": "disconnected",
               "sessionIdentifier": session_id, "principalIdentifier": principal_id,
               "clientInitiatedDisconnect": reason == CLIENT_INITIATED_DISCONNECT,
               "disconnectReason": reason, "versionNumber": version}
    return f"$aws/events/presence/disconnected/{client_id}", json.dumps(payload).encode()
