"""What local core is started with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fleetsim.pki.key_type import KeyType

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_API_PORT = 4510
DEFAULT_MQTT_PORT = 8883


@dataclass
class LocalCoreConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    mqtt_port: int = DEFAULT_MQTT_PORT
    account_id: str = DEFAULT_ACCOUNT_ID
    region: str = DEFAULT_REGION
    # AWS makes RSA-2048 keys for create-keys-and-certificate; ec-p256 is ~2,500x cheaper to
    # generate, for load tests that provision through that call.
    keys_and_certificate_key_type: KeyType = "rsa-2048"
    # Host names the API answers besides loopback ones (127.0.0.1, localhost, ::1).
    allowed_hosts: tuple[str, ...] = ()
    # Access key -> secret: when set, every API request must carry a valid SigV4 signature.
    credentials: dict[str, str] = field(default_factory=dict)
