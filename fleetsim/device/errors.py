"""What went wrong with a device's connection, as a short error kind for the metrics."""

from __future__ import annotations

from paho.mqtt.reasoncodes import ReasonCode

# paho reports an MQTT 3.1.1 CONNACK code as an MQTT 5 reason code; map it back by name.
_CONNACK_311 = {
    "Unsupported protocol version": 1,
    "Client identifier not valid": 2,
    "Server unavailable": 3,
    "Bad user name or password": 4,
    "Not authorized": 5,
}


class DeviceError(Exception):
    """A device operation failed; `kind` is the error kind counted in the metrics."""

    def __init__(self, kind: str, message: str = ""):
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind


def reason_kind(packet: str, rc: ReasonCode) -> str:
    """An MQTT 5 reason code as an error kind, named by packet and code as AWS IoT lists them
    ("MQTT reason codes"): `puback_not_authorized`, `disconnect_session_taken_over`, ..."""
    return f"{packet}_{rc.getName().lower().replace(' ', '_')}"


def connack_kind(rc: int | ReasonCode) -> str:
    if isinstance(rc, ReasonCode):
        return f"connack_{_CONNACK_311.get(rc.getName(), rc.value)}"
    return f"connack_{rc}"


def connect_failure_kind(message: str) -> str:
    """The kind of a failed TCP/TLS connect from the error text (aiomqtt keeps only that), or
    from paho's last error log when the server closed the connection before CONNACK."""
    text = message.lower()
    if "certificate verify failed" in text:
        return "tls_server_untrusted"  # we refused the server's certificate or its name
    if "alert" in text or "[ssl" in text or "eof occurred in violation" in text:
        # The server refused our certificate: an alert, or (as local core's TLS stack does)
        # a drop without close_notify, which OpenSSL reports with or without its "[SSL: ...]"
        # reason depending on what its error queue holds when the read fails.
        return "tls_refused"
    if "connection refused" in text:
        return "connection_refused"
    if "timed out" in text:
        return "timeout"
    if "eof occurred" in text or "reset by peer" in text or "broken pipe" in text:
        return "closed_before_connack"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "dns_failed"
    return "connect_failed"


def lost_kind(rc: int | ReasonCode | str) -> str:
    """The kind of a connection lost after CONNACK (AWS IoT closes it on a denied publish);
    a string is a kind already (an MQTT 5 server DISCONNECT's reason, `reason_kind`)."""
    if isinstance(rc, str):
        return rc
    name = rc.getName() if isinstance(rc, ReasonCode) else ""
    if name == "Keep alive timeout":
        return "keepalive_timeout"
    return "disconnected_by_server"
