"""fleetsim: an async device-fleet simulator for AWS IoT Device Management."""

__version__ = "0.1.0"
