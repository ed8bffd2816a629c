"""The MQTT 3.1.1 broker of local core: mutual TLS, IoT policies, AWS IoT semantics."""
