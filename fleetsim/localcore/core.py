"""Composition of local core: the database, the bus, the root CA, the MQTT broker, the
features (`fleetsim.localcore.features.FEATURES`) and the HTTP front. Layers never import this
module; it imports them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from OpenSSL import SSL

from fleetsim.errors import UserError
from fleetsim.localcore.api.app import build_app, start_api
from fleetsim.localcore.api.guard import Guard
from fleetsim.localcore.api.operations import HttpHandlers
from fleetsim.localcore.authority import RegistryAuthority
from fleetsim.localcore.broker.server import Broker, Message
from fleetsim.localcore.bus import Bus, MessagePublished
from fleetsim.localcore.ca import LocalCA
from fleetsim.localcore.config import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_API_PORT,
    DEFAULT_MQTT_PORT,
    DEFAULT_REGION,
    LocalCoreConfig,
)
from fleetsim.localcore.db import Database
from fleetsim.localcore.features import FEATURES
from fleetsim.localcore.features.context import FeatureContext, Services
from fleetsim.localcore.registered_chains import RegisteredChains
from fleetsim.localcore.scope import Scope
from fleetsim.localcore.servertls import ServerContext, add_trust_anchor, server_context

__all__ = ["DEFAULT_ACCOUNT_ID", "DEFAULT_API_PORT", "DEFAULT_MQTT_PORT", "DEFAULT_REGION",
           "Endpoints", "LocalCore", "LocalCoreConfig"]


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
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.ca = LocalCA.load_or_create(config.state_dir)
        self.db = Database(config.state_dir / "state.db", config.region)
        self.bus = Bus(after_commit=self.db.after_commit)
        self.tls: ServerContext = server_context(self.ca)  # $FLEETSIM_LOCAL_TLS
        self.services = Services()
        self.http = HttpHandlers()
        self.endpoints: Endpoints | None = None
        self._api_runner: web.AppRunner | None = None
        scope = Scope(config.account_id, config.region)
        root = self.ca.authority.cert
        self.authority = RegistryAuthority(self.db, scope, self.services, (
            root.not_valid_before_utc.timestamp(), root.not_valid_after_utc.timestamp()))
        self.registered_chains = RegisteredChains(self.authority)
        if isinstance(self.tls, SSL.Context):
            self.registered_chains.install(self.tls)
        self.broker = Broker(self.authority, self.tls, config.account_id, config.region)
        self.broker.on_message = self._announce
        ctx = FeatureContext(config, self.db, self.bus, self.broker, self.ca, self.services,
                             self.http, self.add_trust_anchor, self._endpoint_address,
                             api_url=self._api_url)
        for feature in FEATURES:
            feature.install(ctx)
        for pem in self.services.get("certificates").trust_anchor_pems():
            add_trust_anchor(self.tls, pem)

    def _announce(self, message: Message) -> None:
        self.bus.publish(MessagePublished(message.topic, message.payload, message.qos,
                                          message.retain, message.client_id,
                                          message.principal_id))

    def _endpoint_address(self) -> str:
        assert self.endpoints is not None  # the API starts after the broker
        return self.endpoints.endpoint_address

    def _api_url(self) -> str:
        assert self.endpoints is not None
        return self.endpoints.api_url

    def add_trust_anchor(self, pem: str) -> None:
        add_trust_anchor(self.tls, pem)

    async def start(self) -> Endpoints:
        try:
            mqtt_port = await self.broker.start(self.config.host, self.config.mqtt_port)
        except OSError as e:
            raise _cannot_listen(self.config.host, self.config.mqtt_port, e, "--mqtt-port",
                                 "FLEETSIM_LOCAL_MQTT_PORT") from e
        app = build_app(self.http, self.config.account_id, self.config.region,
                        Guard.of(self.config.allowed_hosts, self.config.credentials))
        try:
            self._api_runner, api_port = await start_api(app, self.config.host,
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
        await self.bus.close()
        self.db.close()
