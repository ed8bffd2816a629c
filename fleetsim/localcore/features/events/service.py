"""Registry and jobs events: the event configuration (Describe/UpdateEventConfigurations, per
region) and the `$aws/events/...` messages published, through the broker, for what the
registry, the certificates and the jobs features announce on the bus, while their type is
enabled (all are disabled by default, as on AWS). Events are published for the region the
broker serves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from botocore.loaders import Loader

from fleetsim.localcore.bus import Bus
from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import invalid
from fleetsim.localcore.features.certificates.announcements import CertificateRegistered
from fleetsim.localcore.features.events import payloads
from fleetsim.localcore.features.events.store import EventsStore
from fleetsim.localcore.features.jobs.announcements import (
    JobEventOccurred,
    JobExecutionEventOccurred,
)
from fleetsim.localcore.features.registry import announcements as r
from fleetsim.localcore.scope import Scope


@cache
def event_types() -> tuple[str, ...]:
    """UpdateEventConfigurations' types: the EventType enum of botocore's model."""
    shape = Loader().load_service_model("iot", "service-2")["shapes"]["EventType"]
    return tuple(shape["enum"])


class Publisher(Protocol):
    def publish_internal(self, topic: str, payload: bytes, qos: int = 0,
                         retain: bool = False) -> None: ...


@dataclass(slots=True)
class EventConfig:
    enabled: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(event_types(), False))
    created: float = 0.0
    last_modified: float = 0.0


class EventsService:
    def __init__(self, db: Database, bus: Bus, broker: Publisher, broker_scope: Scope):
        self._store = EventsStore(db)
        self._broker = broker
        self._scope = broker_scope
        self._configs: dict[str, EventConfig] = {}
        self._subscribe(bus)

    # --- configuration -----------------------------------------------------------------------

    def config(self, scope: Scope) -> EventConfig:
        cfg = self._configs.get(scope.region)
        if cfg is None:
            saved = self._store.load(scope.region)
            cfg = EventConfig()
            if saved is not None:
                enabled, cfg.created, cfg.last_modified = saved
                cfg.enabled |= enabled
            self._configs[scope.region] = cfg
        return cfg

    def enabled(self, scope: Scope, event_type: str) -> bool:
        return self.config(scope).enabled.get(event_type, False)

    def update(self, scope: Scope, changes: dict[str, bool]) -> EventConfig:
        unknown = [t for t in changes if t not in event_types()]
        if unknown:
            raise invalid(f"1 validation error detected: Value '{unknown[0]}' at "
                          "'eventConfigurations' failed to satisfy constraint: Map keys must "
                          f"satisfy constraint: [Member must satisfy enum value set: "
                          f"[{', '.join(sorted(event_types()))}]]")
        cfg = self.config(scope)
        enabled = cfg.enabled | changes
        modified = self._store.save(scope.region, enabled, cfg.created)
        new = EventConfig(enabled, cfg.created or modified, modified)
        self._configs[scope.region] = new
        return new

    # --- publication -------------------------------------------------------------------------

    def _publish(self, event: payloads.Event) -> None:
        topic, payload = event
        self._broker.publish_internal(topic, json.dumps(payload).encode(), 1)

    def _on(self, scope: Scope, event_type: str | None) -> bool:
        """Whether to publish an event of `event_type` (None: always) announced in `scope`."""
        return scope.region == self._scope.region and (
            event_type is None or self.enabled(scope, event_type))

    def _subscribe(self, bus: Bus) -> None:
        bus.subscribe(r.ThingCreated, self._thing_created)
        bus.subscribe(r.ThingUpdated, self._thing_updated)
        bus.subscribe(r.ThingDeleted, self._thing_deleted)
        bus.subscribe(r.ThingTypeCreated, lambda e: self._thing_type("CREATED", e))
        bus.subscribe(r.ThingTypeUpdated, lambda e: self._thing_type("UPDATED", e))
        bus.subscribe(r.ThingTypeDeleted, lambda e: self._thing_type("DELETED", e))
        bus.subscribe(r.ThingGroupCreated, self._group_created)
        bus.subscribe(r.ThingGroupUpdated, lambda e: self._group("UPDATED", e))
        bus.subscribe(r.ThingGroupDeleted, self._group_deleted)
        bus.subscribe(r.ThingAddedToGroup, lambda e: self._membership("ADDED", e))
        bus.subscribe(r.ThingRemovedFromGroup, lambda e: self._membership("REMOVED", e))
        bus.subscribe(CertificateRegistered, self._certificate_registered)
        bus.subscribe(JobEventOccurred, self._job)
        bus.subscribe(JobExecutionEventOccurred, self._job_execution)

    def _job(self, e: JobEventOccurred) -> None:
        if self._on(e.scope, "JOB"):
            self._publish(payloads.job_event(e.operation, e.job_id, e.fields))

    def _job_execution(self, e: JobExecutionEventOccurred) -> None:
        if self._on(e.scope, "JOB_EXECUTION"):
            self._publish(payloads.job_execution_event(e.operation, e.job_id, e.thing_arn,
                                                       e.status, e.status_details))

    def _association(self, e: r.ThingCreated | r.ThingUpdated, operation: str,
                     type_name: str) -> None:
        if self._on(e.scope, "THING_TYPE_ASSOCIATION"):
            self._publish(payloads.thing_type_association_event(operation, e.thing, type_name))

    def _thing(self, operation: str, e: r.ThingCreated | r.ThingUpdated | r.ThingDeleted
               ) -> None:
        if self._on(e.scope, "THING"):
            self._publish(payloads.thing_event(e.scope.account_id, operation, e.thing))

    def _thing_created(self, e: r.ThingCreated) -> None:
        self._thing("CREATED", e)
        if e.thing.type_name:
            self._association(e, "CREATED", e.thing.type_name)

    def _thing_updated(self, e: r.ThingUpdated) -> None:
        self._thing("UPDATED", e)
        old, new = e.previous.type_name, e.thing.type_name
        if old != new:
            if old:
                self._association(e, "DELETED", old)
            if new:
                self._association(e, "CREATED", new)

    def _thing_deleted(self, e: r.ThingDeleted) -> None:
        self._thing("DELETED", e)

    def _thing_type(self, operation: str,
                    e: r.ThingTypeCreated | r.ThingTypeUpdated | r.ThingTypeDeleted) -> None:
        if self._on(e.scope, "THING_TYPE"):
            self._publish(payloads.thing_type_event(e.scope.account_id, operation, e.thing_type))

    def _group(self, operation: str,
               e: r.ThingGroupCreated | r.ThingGroupUpdated | r.ThingGroupDeleted) -> None:
        if not self._on(e.scope, "THING_GROUP"):
            return
        parent = e.ancestors[-1] if e.ancestors else None
        chain = [(e.scope.arn("thinggroup", g.name), g.group_id) for g in e.ancestors]
        self._publish(payloads.thing_group_event(e.scope.account_id, operation, e.group,
                                                 parent, chain))

    def _hierarchy(self, operation: str, e: r.ThingGroupCreated | r.ThingGroupDeleted) -> None:
        if e.ancestors and self._on(e.scope, "THING_GROUP_HIERARCHY"):
            self._publish(payloads.thing_group_hierarchy_event(
                e.scope.account_id, operation, e.ancestors[-1], e.group))

    def _group_created(self, e: r.ThingGroupCreated) -> None:
        self._group("CREATED", e)
        self._hierarchy("ADDED", e)

    def _group_deleted(self, e: r.ThingGroupDeleted) -> None:
        self._group("DELETED", e)
        self._hierarchy("REMOVED", e)

    def _membership(self, operation: str, e: r.ThingAddedToGroup | r.ThingRemovedFromGroup
                    ) -> None:
        if self._on(e.scope, "THING_GROUP_MEMBERSHIP"):
            self._publish(payloads.thing_group_membership_event(
                e.scope.account_id, operation, e.group, e.scope.arn("thinggroup", e.group.name),
                e.thing, e.scope.arn("thing", e.thing.name), e.membership_id))

    def _certificate_registered(self, e: CertificateRegistered) -> None:
        """Just-in-time registration: published whatever the event configuration says."""
        cert = e.certificate
        if e.just_in_time and cert.ca_id and self._on(e.scope, None):
            self._publish(payloads.certificate_registered_event(
                e.scope.account_id, cert.id, cert.ca_id, cert.status, cert.created))
