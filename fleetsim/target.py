"""`Target`: the one value that differs between a run against local core and one against AWS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

MQTT_PORT = 8883
MQTT_ALPN_PORT = 443
# On port 443 AWS IoT tells MQTT from HTTPS by this ALPN protocol name.
MQTT_ALPN_PROTOCOL = "x-amzn-mqtt-ca"

TargetKind = Literal["local", "aws"]


def parse_endpoint_address(address: str, default_port: int = MQTT_PORT) -> tuple[str, int]:
    """describe-endpoint's `endpointAddress` as (host, port): AWS and local core on the standard
    port answer a bare host; local core on another port answers `host:port` (`[v6]:port`)."""
    address = address.strip()
    if not address:
        raise ValueError("empty endpoint address")
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        if not sep:
            raise ValueError(f"unterminated IPv6 address in {address!r}")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, int(port)
    return address, default_port


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    region: str
    mqtt_host: str
    mqtt_port: int = MQTT_PORT
    api_url: str | None = None  # None: the AWS SDK's default endpoints
    ca_file: Path | None = None  # None: certifi's bundle, which carries Amazon Root CA 1
    use_alpn: bool = False
    profile: str | None = None  # AWS: the named profile credentials come from

    @classmethod
    def local(cls, api_url: str, mqtt_host: str, mqtt_port: int, root_ca: Path | str,
              region: str = "us-east-1") -> Target:
        return cls("local", region, mqtt_host, mqtt_port, api_url, Path(root_ca))

    @classmethod
    def from_local_core(cls, info: dict[str, Any]) -> Target:
        """From what a running local core writes to `localcore.json` in its state directory:
        its endpoints and the region its broker serves."""
        return cls.local(info["api_url"], info["mqtt_host"], int(info["mqtt_port"]),
                         info["root_ca"], info.get("region", "us-east-1"))

    @classmethod
    def from_local_core_info(cls, path: Path) -> Target:
        return cls.from_local_core(json.loads(path.read_text()))

    @classmethod
    def aws(cls, region: str, endpoint_address: str, port: int | None = None,
            ca_file: Path | None = None, profile: str | None = None) -> Target:
        """AWS IoT: `endpoint_address` from `describe-endpoint --endpoint-type iot:Data-ATS`;
        port 443 turns ALPN on, as AWS IoT requires there."""
        host, parsed_port = parse_endpoint_address(endpoint_address)
        port = port or parsed_port
        return cls("aws", region, host, port, None, ca_file, use_alpn=port == MQTT_ALPN_PORT,
                   profile=profile)

    @property
    def server_ca_file(self) -> Path:
        if self.ca_file is not None:
            return self.ca_file
        import certifi

        return Path(certifi.where())

    @property
    def alpn_protocols(self) -> list[str] | None:
        return [MQTT_ALPN_PROTOCOL] if self.use_alpn else None

    @property
    def endpoint_address(self) -> str:
        if self.mqtt_port == MQTT_PORT:
            return self.mqtt_host
        host = f"[{self.mqtt_host}]" if ":" in self.mqtt_host else self.mqtt_host
        return f"{host}:{self.mqtt_port}"

    def data_boto3_kwargs(self) -> dict[str, Any]:
        """The same for an `iot-data` client: local core answers it on its one API endpoint
        (routing by the SigV4 service); on AWS the data plane API is served by the account's
        `iot:Data-ATS` endpoint, the MQTT host."""
        kwargs = self.boto3_kwargs()
        if self.api_url is None:
            kwargs["endpoint_url"] = f"https://{self.mqtt_host}"
        return kwargs

    def boto3_kwargs(self) -> dict[str, Any]:
        """`region_name` and, for local core, `endpoint_url` for a boto3/aioboto3 client."""
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.api_url is not None:
            kwargs["endpoint_url"] = self.api_url
        return kwargs
