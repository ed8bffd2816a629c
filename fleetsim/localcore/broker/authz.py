"""What one client may do: its Principal and compiled policies, re-resolved when the registry's
epoch moves, with small per-connection decision caches (publish/receive checks are per message).

A check that raises (a policy the evaluator cannot handle, a registry that fails) costs only this
client: it is logged once, every later check of this client is denied, and `on_failed` is called
so that the connection closes. No other client's checks or deliveries are affected."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fleetsim.localcore.policy import CompiledPolicies, RequestContext, compiled_for
from fleetsim.localcore.principal import Authority, Principal

log = logging.getLogger(__name__)

_CACHE_LIMIT = 256


class Authorizer:
    __slots__ = ("_arn_prefix", "_attributes", "_authority", "_cache", "_cert_der",
                 "_compiled", "client_id", "epoch", "failed", "on_failed", "on_revoked",
                 "principal")

    def __init__(self, authority: Authority, cert_der: bytes, client_id: str,
                 connect_attributes: tuple[str, ...], arn_prefix: str,
                 principal: Principal | None, epoch: int):
        """`principal` is what the caller resolved for `cert_der` at `epoch` (or what the
        unknown-certificate hook returned); it is resolved again when the epoch moves."""
        self._authority = authority
        self._cert_der = cert_der
        self._arn_prefix = arn_prefix  # "arn:aws:iot:REGION:ACCOUNT:"
        self._attributes = connect_attributes
        self._cache: dict[tuple[str, str], bool] = {}
        self._compiled: CompiledPolicies | None = None
        self.client_id = client_id
        self.on_revoked: Callable[[], None] | None = None
        self.on_failed: Callable[[], None] | None = None
        self.failed = False  # a check raised: everything is denied from then on
        self.principal = principal
        self.epoch = epoch

    @property
    def active(self) -> bool:
        return self.principal is not None and self.principal.status == "ACTIVE"

    def allowed(self, action: str, kind: str, name: str) -> bool:
        """Whether `action` on `arn:...:<kind>/<name>` is allowed right now; never raises."""
        if self.failed:
            return False
        try:
            return self._allowed(action, kind, name)
        except Exception:
            self.failed = True
            log.exception("client %r: authorizing %s on %s/%s failed; the client is denied "
                          "everything and disconnected", self.client_id, action, kind, name)
            if self.on_failed is not None:
                self.on_failed()
            return False

    def _allowed(self, action: str, kind: str, name: str) -> bool:
        if self._authority.epoch != self.epoch:
            self._refresh()
        key = (action, name)
        decision = self._cache.get(key)
        if decision is None:
            if not self.active:
                return False
            if self._compiled is None:
                assert self.principal is not None
                self._compiled = compiled_for(
                    self.principal.policies_for(self.client_id),
                    RequestContext(self.client_id, self.principal, self._attributes))
            decision = self._compiled.evaluate(action, f"{self._arn_prefix}{kind}/{name}").allowed
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    @property
    def thing_name(self) -> str | None:
        """The connection's thing, as thing policy variables resolve it."""
        try:
            thing = self.principal.connection_thing(self.client_id) if self.principal else None
        except Exception:
            log.exception("client %r: resolving its thing failed", self.client_id)
            return None
        return thing.name if thing is not None else None

    def _refresh(self) -> None:
        # Read the epoch first: a change while resolving then triggers another refresh.
        self.epoch = self._authority.epoch
        principal = self._authority.principal_for_certificate(self._cert_der)
        if principal != self.principal:
            self.principal = principal
            self._compiled = None
            self._cache.clear()
        if not self.active and self.on_revoked is not None:
            self.on_revoked()
