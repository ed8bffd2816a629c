"""Local core: an embedded stand-in for AWS IoT (API + MQTT broker), run as its own process."""
