"""AWS IoT logging: the v1 options (SetLoggingOptions), the v2 options (SetV2LoggingOptions:
role, default level, disable all) and v2 levels per target, and the log entries local core
writes for what clients do on the broker, through the logs feature's `put_events`.

Cheap when off: the broker's `activity` hook is set only while some level could write an
entry. Batched when on: entries collect for `flush_interval` seconds (or up to `batch_size`)
and go to the logs feature in one call per log group. Levels resolve once per connection
identity (client id, source IP, certificate, thing) until the configuration or a thing-group
membership changes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from fleetsim.localcore.broker.activity import Activity, ActivityHook
from fleetsim.localcore.bus import Bus
from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import AwsError, invalid
from fleetsim.localcore.features.context import Services
from fleetsim.localcore.features.iotlogging import entries, levels
from fleetsim.localcore.features.iotlogging.store import LoggingStore, Options
from fleetsim.localcore.features.registry import announcements as r
from fleetsim.localcore.scope import Scope

log = logging.getLogger(__name__)

V1, V2 = "v1", "v2"
_CACHE_LIMIT = 100_000


class LogsWriter(Protocol):
    """The logs feature's service, as this feature uses it."""

    def put_events(self, region: str, group: str, stream: str,
                   events: Sequence[tuple[int, str]]) -> None: ...


class HookOwner(Protocol):
    activity: ActivityHook | None


def not_configured() -> AwsError:
    return AwsError("NotConfiguredException", "Logging is not configured.")


class LoggingService:
    flush_interval = 0.5  # seconds an entry may wait for its batch
    batch_size = 5_000

    def __init__(self, db: Database, bus: Bus, services: Services, broker: HookOwner,
                 broker_scope: Scope, clock_ms: Callable[[], int]):
        self._store = LoggingStore(db)
        self._services = services
        self._broker = broker
        self._scope = broker_scope
        self._clock_ms = clock_ms
        self._stream = uuid.uuid4().hex
        self._v1: Options | None = None
        self._v2: Options | None = None
        self._targets: dict[tuple[str, str], str] = {}
        self._levels: dict[tuple[str, str, str, str | None], str] = {}
        self._pending: dict[str, list[tuple[int, str]]] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._missing_logged = False
        self.written = 0  # entries handed to the logs feature (bench, tests)
        self._load()
        for kind in (r.ThingAddedToGroup, r.ThingRemovedFromGroup, r.ThingGroupCreated,
                     r.ThingGroupUpdated, r.ThingGroupDeleted, r.ThingDeleted):
            bus.subscribe(kind, self._membership_changed)

    # --- configuration -----------------------------------------------------------------------

    def _load(self) -> None:
        region = self._scope.region
        self._v1 = self._store.options(region, V1)
        self._v2 = self._store.options(region, V2)
        self._targets = self._store.levels(region)
        self._changed()

    def _changed(self) -> None:
        self._levels.clear()
        self._broker.activity = self.observe if self._could_write() else None

    def _could_write(self) -> bool:
        if self._v1 is not None and self._v1.log_level not in (None, levels.DISABLED):
            return True
        v2 = self._v2
        if v2 is None or v2.disable_all:
            return False
        return (v2.log_level not in (None, levels.DISABLED)
                or any(lv != levels.DISABLED for lv in self._targets.values()))

    def _mine(self, scope: Scope) -> bool:
        return scope.region == self._scope.region

    def get_v1(self, scope: Scope) -> Options:
        found = self._store.options(scope.region, V1)
        if found is None:
            raise not_configured()
        return found

    def set_v1(self, scope: Scope, role_arn: str, log_level: str | None) -> None:
        options = Options(role_arn, log_level)
        self._store.save_options(scope.region, V1, options)
        if self._mine(scope):
            self._v1 = options
            self._changed()

    def get_v2(self, scope: Scope) -> Options:
        found = self._store.options(scope.region, V2)
        if found is None:
            raise not_configured()
        return found

    def set_v2(self, scope: Scope, role_arn: str | None, default_level: str | None,
               disable_all: bool | None) -> None:
        """Members left out keep their value."""
        old = self._store.options(scope.region, V2) or Options(None, None)
        options = Options(role_arn if role_arn is not None else old.role_arn,
                          default_level or old.log_level,
                          old.disable_all if disable_all is None else disable_all)
        self._store.save_options(scope.region, V2, options)
        if self._mine(scope):
            self._v2 = options
            self._changed()

    @staticmethod
    def _target(target_type: str, name: str | None) -> str:
        if target_type not in levels.TARGET_TYPES:
            raise invalid(f"The target type {target_type} is not supported here: the default "
                          "log level is set with SetV2LoggingOptions.")
        if not name:
            raise invalid(f"A targetName is required for the target type {target_type}.")
        return name

    def set_level(self, scope: Scope, target_type: str, name: str | None, level: str) -> None:
        self.get_v2(scope)
        name = self._target(target_type, name)
        self._store.set_level(scope.region, target_type, name, level)
        if self._mine(scope):
            self._targets[target_type, name] = level
            self._changed()

    def list_levels(self, scope: Scope, target_type: str | None
                    ) -> list[tuple[str, str, str]]:
        self.get_v2(scope)
        return [(t, n, lv) for (t, n), lv in self._store.levels(scope.region).items()
                if target_type is None or t == target_type]

    def delete_level(self, scope: Scope, target_type: str, name: str) -> None:
        name = self._target(target_type, name)
        self._store.delete_level(scope.region, target_type, name)
        if self._mine(scope):
            self._targets.pop((target_type, name), None)
            self._changed()

    def _membership_changed(self, event: Any) -> None:
        if self._mine(event.scope):
            self._levels.clear()

    # --- entries -----------------------------------------------------------------------------

    def level_for(self, act: Activity) -> str:
        """The v2 level that applies to the connection that did `act`."""
        v2 = self._v2
        if v2 is None:
            return levels.DISABLED
        thing = act.principal.connection_thing(act.client_id) if act.principal else None
        key = (act.client_id, act.source_ip, act.principal_id, thing.name if thing else None)
        level = self._levels.get(key)
        if level is None:
            chains = self._group_chains(thing.name) if thing is not None else ()
            level = levels.resolve(v2.log_level or levels.DISABLED, v2.disable_all, self._targets,
                                   levels.Who(act.client_id, act.source_ip, act.principal_id,
                                              chains))
            if len(self._levels) >= _CACHE_LIMIT:
                self._levels.clear()
            self._levels[key] = level
        return level

    def _group_chains(self, thing: str) -> list[list[str]]:
        if not any(t == levels.THING_GROUP for t, _ in self._targets):
            return []
        registry = self._services.registry
        return [[g, *registry.ancestors(self._scope, g)]
                for g in registry.groups_of_thing(self._scope, thing)]

    def observe(self, act: Activity) -> None:
        """The broker's activity hook: queue the entries the levels allow."""
        entry_level = entries.entry_level(act)
        v2_on = levels.writes(self.level_for(act), entry_level)
        v1 = self._v1
        v1_on = v1 is not None and levels.writes(v1.log_level or levels.DISABLED, entry_level)
        if not (v2_on or v1_on):
            return
        ms = self._clock_ms()
        trace_id = str(uuid.uuid4())
        if v2_on:
            self._queue(entries.V2_GROUP, ms, entries.v2_message(
                act, self._scope.account_id, trace_id, ms))
        if v1_on:
            self._queue(entries.V1_GROUP, ms, entries.v1_message(act, trace_id, ms))

    def _queue(self, group: str, ms: int, message: str) -> None:
        pending = self._pending.setdefault(group, [])
        pending.append((ms, message))
        if len(pending) >= self.batch_size:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(
                self.flush_interval, self.flush)

    def flush(self) -> None:
        """Hand every queued entry to the logs feature (one call per log group)."""
        self._flush_handle = None
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            writer: LogsWriter = self._services.get("logs")
        except LookupError:
            if not self._missing_logged:
                self._missing_logged = True
                log.error("AWS IoT logging is on but the logs feature (CloudWatch Logs) is not "
                          "installed: log entries are dropped")
            return
        for group, events in pending.items():
            try:
                writer.put_events(self._scope.region, group, self._stream, events)
                self.written += len(events)
            except Exception:
                log.exception("writing %d AWS IoT log entries to %s failed", len(events), group)
