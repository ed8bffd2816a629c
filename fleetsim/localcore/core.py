"""Composition of local core: registry store, root CA, MQTT broker, event publisher, API."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from fleetsim.errors import UserError
from fleetsim.localcore.ca import LocalCA, add_trust_anchor

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
    keys_and_certificate_key_type: str = "rsa-2048"


@dataclass(frozen=True)
class Endpoints:
    api_url: str
    mqtt_host: str
    mqtt_port: int
    root_ca: Path

    @property
    def endpoint_address(self) -> str:
        """What describe-endpoint answers: the host alone on the standard port (so workshop
        commands with `-p 8883` work verbatim), host:port otherwise."""
        if self.mqtt_port == DEFAULT_MQTT_PORT:
            return self.mqtt_host
        return f"{self.mqtt_host}:{self.mqtt_port}"


def _cannot_listen(host: str, port: int, e: OSError, option: str, env: str) -> UserError:
    return UserError(f"local core cannot listen on {host}:{port} ({e.strerror or e}): stop what "
                     f"uses that port, or choose another with {option} or ${env} (0 = any)")


class LocalCore:
    def __init__(self, config: LocalCoreConfig):
        from fleetsim.localcore.broker.server import Broker
        from fleetsim.localcore.events import EventPublisher
        from fleetsim.localcore.store import Store

        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.ca = LocalCA.load_or_create(config.state_dir)
        self.store = Store(config.state_dir / "state.db", config.account_id, config.region)
        self.tls: ssl.SSLContext = self.ca.server_ssl_context()
        for pem in self.store.trust_anchor_pems():
            add_trust_anchor(self.tls, pem)
        self.broker = Broker(self.store, self.tls, config.account_id, config.region)
        self.events = EventPublisher(self.store, self.broker, config.account_id)
        self.endpoints: Endpoints | None = None
        self._api_runner = None

    def add_trust_anchor(self, pem: str) -> None:
        add_trust_anchor(self.tls, pem)

    async def start(self) -> Endpoints:
        from fleetsim.localcore.api.app import start_api

        try:
            mqtt_port = await self.broker.start(self.config.host, self.config.mqtt_port)
        except OSError as e:
            raise _cannot_listen(self.config.host, self.config.mqtt_port, e, "--mqtt-port",
                                 "FLEETSIM_LOCAL_MQTT_PORT") from e
        try:
            self._api_runner, api_port = await start_api(self, self.config.host,
                                                         self.config.api_port)
        except OSError as e:
            await self.broker.stop()
            raise _cannot_listen(self.config.host, self.config.api_port, e, "--api-port",
                                 "FLEETSIM_LOCAL_API_PORT") from e
        self.endpoints = Endpoints(f"http://{self.config.host}:{api_port}", self.config.host,
                                   mqtt_port, self.ca.root_ca_path)
        return self.endpoints

    async def stop(self) -> None:
        if self._api_runner is not None:
            await self._api_runner.cleanup()
        await self.broker.stop()
        self.store.close()
