"""AWS IoT log entries as AWS writes them (pure).

V2 (log group `AWSIotLogsV2`): one JSON object per entry with the attributes the developer
guide's "AWS IoT log entries" page lists for each message-broker event (Connect, Disconnect,
Publish-In, Publish-Out, Subscribe), in its order: the common attributes (timestamp as
`2017-08-10 15:37:23.476`, UTC; logLevel; traceId; accountId; status; eventType; protocol), then
topicName, clientId, principalId, sourceIp, sourcePort, and for failures reason and details;
a Disconnect adds disconnectReason. Successes are INFO entries, failures ERROR entries.

V1 (log group `AWSIotLogs`): one plain-text line per entry.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fleetsim.localcore.broker import activity as a
from fleetsim.localcore.broker.activity import Activity
from fleetsim.localcore.features.iotlogging.levels import ERROR, INFO

V2_GROUP = "AWSIotLogsV2"
V1_GROUP = "AWSIotLogs"

_DETAILS = {a.AUTHORIZATION_FAILURE: "Authorization Failure"}
# A Disconnect's reason and details where the guide's example shows them.
_DISCONNECT_DETAILS = {"DUPLICATE_CLIENTID": (
    "DUPLICATE_CLIENT_ID", "A new connection was established with the same client ID")}
_V1_EVENTS = {a.CONNECT: "MQTT Client Connect", a.DISCONNECT: "MQTT Client Disconnect",
              a.PUBLISH_IN: "Publish-In", a.PUBLISH_OUT: "Publish-Out",
              a.SUBSCRIBE: "Subscribe"}


def entry_level(act: Activity) -> str:
    return INFO if act.status == a.SUCCESS else ERROR


def timestamp(ms: int) -> str:
    """`2017-08-10 15:37:23.476` (UTC), as AWS IoT log entries write it."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}"


def v2_entry(act: Activity, account_id: str, trace_id: str, ms: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "timestamp": timestamp(ms), "logLevel": entry_level(act), "traceId": trace_id,
        "accountId": account_id, "status": act.status, "eventType": act.event_type,
        "protocol": "MQTT"}
    if act.topic is not None:
        entry["topicName"] = act.topic
    entry |= {"clientId": act.client_id, "principalId": act.principal_id,
              "sourceIp": act.source_ip, "sourcePort": act.source_port}
    if act.event_type == a.DISCONNECT:
        known = _DISCONNECT_DETAILS.get(act.reason or "")
        if known is not None:
            entry["reason"], entry["details"] = known
        if act.reason:
            entry["disconnectReason"] = act.reason
    elif act.status == a.FAILURE and act.reason:
        entry["reason"] = act.reason
        entry["details"] = _DETAILS.get(act.reason, act.reason)
    return entry


def v2_message(act: Activity, account_id: str, trace_id: str, ms: int) -> str:
    return json.dumps(v2_entry(act, account_id, trace_id, ms), separators=(",", ":"))


def v1_message(act: Activity, trace_id: str, ms: int) -> str:
    """`<timestamp> TRACEID:<id> PRINCIPALID:<id> [<LEVEL>] EVENT:<event> ...` ."""
    event = _V1_EVENTS.get(act.event_type, act.event_type)
    parts = [timestamp(ms), f"TRACEID:{trace_id}", f"PRINCIPALID:{act.principal_id}",
             f"[{entry_level(act)}]", f"EVENT:{event}"]
    if act.topic is not None:
        parts.append(f"TOPICNAME:{act.topic}")
    parts.append(f"CLIENTID:{act.client_id}")
    message = f"{event} Status: {'SUCCESS' if act.status == a.SUCCESS else 'FAILURE'}"
    if act.reason:
        message += f" Reason: {act.reason}"
    parts.append(f"MESSAGE:{message}")
    return " ".join(parts)
