"""One virtual device: identity (key, certificate), TLS context, MQTT session, observer."""

from fleetsim.device.errors import DeviceError
from fleetsim.device.fleet import close_many, connect_many
from fleetsim.device.identity import DeviceIdentity, IdentityStore, KeyFactory
from fleetsim.device.observer import Observed, Observer
from fleetsim.device.payload import SENT_FIELD
from fleetsim.device.reconnect import ReconnectPolicy
from fleetsim.device.session import DeviceSession
from fleetsim.device.tls import TlsContextFactory

__all__ = [
    "SENT_FIELD",
    "DeviceError",
    "DeviceIdentity",
    "DeviceSession",
    "IdentityStore",
    "KeyFactory",
    "Observed",
    "Observer",
    "ReconnectPolicy",
    "TlsContextFactory",
    "close_many",
    "connect_many",
]
