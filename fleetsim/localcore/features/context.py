"""What a feature is given when local core starts (`FeatureContext`), and what it must be.

A feature is a package under `fleetsim.localcore.features` whose `__init__` has

    NAME = "registry"                       # how other features ask for its service
    def install(ctx: FeatureContext) -> None: ...

`install` builds the feature's service over `ctx.db`, offers it (`ctx.services.provide`),
binds its HTTP handlers (`ctx.http.add(api.operations, service)`), subscribes to the bus and,
for MQTT features, registers reserved topics with the broker's router. It must not call other
features' services yet (they may not be installed): look them up when first used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fleetsim.localcore.api.operations import HttpHandlers
from fleetsim.localcore.bus import Bus
from fleetsim.localcore.ca import LocalCA
from fleetsim.localcore.config import LocalCoreConfig
from fleetsim.localcore.db import Database
from fleetsim.localcore.scope import Scope

if TYPE_CHECKING:
    from fleetsim.localcore.broker.server import Broker
    from fleetsim.localcore.features.certificates.service import CertificatesService
    from fleetsim.localcore.features.policies.service import PoliciesService
    from fleetsim.localcore.features.registry.service import RegistryService


class Feature(Protocol):
    NAME: str

    def install(self, ctx: FeatureContext) -> None: ...


class Services:
    """Every installed feature's service, by feature name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Any] = {}

    def provide(self, name: str, service: object) -> None:
        if name in self._by_name:
            raise ValueError(f"feature {name!r} is installed twice")
        self._by_name[name] = service

    # The services other features call most, typed (looked up when used: install order does
    # not matter).
    @property
    def registry(self) -> RegistryService:
        return self.get("registry")

    @property
    def certificates(self) -> CertificatesService:
        return self.get("certificates")

    @property
    def policies(self) -> PoliciesService:
        return self.get("policies")

    def get(self, name: str) -> Any:
        """The service of feature `name` (callers annotate the type they expect)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise LookupError(f"no feature {name!r} is installed") from None


@dataclass
class FeatureContext:
    config: LocalCoreConfig
    db: Database
    bus: Bus
    # The broker, for `publish_internal(topic, payload, qos, retain)`,
    # `disconnect_certificate(certificate_id)` and its reserved-topic `router`.
    broker: Broker
    ca: LocalCA
    services: Services
    http: HttpHandlers
    # Trust a registered CA (or CA-less certificate) in the broker's TLS context, at once.
    trust_anchor: Callable[[str], None]
    # What describe-endpoint answers (host, or host:port off the standard port); known once
    # the broker listens.
    endpoint_address: Callable[[], str]
    # The API's base URL (`http://127.0.0.1:4510`), known once the API listens: for links
    # local core hands out (a bulk task's presigned report URLs).
    api_url: Callable[[], str] = lambda: ""

    @property
    def broker_scope(self) -> Scope:
        """The account and region the broker serves (the configured region)."""
        return Scope(self.config.account_id, self.config.region)
