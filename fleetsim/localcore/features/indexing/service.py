"""Fleet indexing: the configuration, the `AWS_Things` index (in memory, per region, built
from the registry and the shadows when indexing is turned on or local core starts, then kept
up to date from their bus announcements and from the broker's lifecycle events), search and
aggregations, and the membership of dynamic thing groups ("Fleet indexing", "Manage thing
indexing", "Dynamic thing groups", AWS IoT developer guide)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetsim.localcore.bus import Bus, MessagePublished
from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import AwsError, invalid, not_found
from fleetsim.localcore.features.indexing import aggregate
from fleetsim.localcore.features.indexing import config as cfg
from fleetsim.localcore.features.indexing.document import (
    Connectivity,
    ShadowState,
    ThingEntry,
    fields,
    result,
)
from fleetsim.localcore.features.indexing.evaluate import Predicate, compile_query
from fleetsim.localcore.features.indexing.names import NameLookup, matching
from fleetsim.localcore.features.indexing.query import QueryError
from fleetsim.localcore.features.indexing.store import IndexingStore
from fleetsim.localcore.features.registry import announcements as r
from fleetsim.localcore.features.registry.records import ThingGroupRecord, ThingRecord
from fleetsim.localcore.features.shadows.service import ShadowDeleted, ShadowUpdated
from fleetsim.localcore.scope import Scope

if TYPE_CHECKING:
    from fleetsim.localcore.features.context import Services

log = logging.getLogger(__name__)

THINGS, GROUPS = "AWS_Things", "AWS_ThingGroups"
_PRESENCE = "$aws/events/presence/"
_BUILD_CHUNK = 10_000


def _bad_query(e: QueryError) -> AwsError:
    return AwsError("InvalidQueryException", str(e))


@dataclass
class _Dynamic:
    group: ThingGroupRecord
    matches: Predicate
    members: set[str] = field(default_factory=set)


@dataclass
class RegionIndex:
    thing: cfg.ThingIndexing
    group: cfg.GroupIndexing
    status: str = "ACTIVE"  # ACTIVE | BUILDING | REBUILDING (DescribeIndex)
    entries: dict[str, ThingEntry] | None = None  # None: not built
    docs: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    names: NameLookup = field(default_factory=NameLookup)  # thingName: terms, no scan
    dynamic: dict[str, _Dynamic] = field(default_factory=dict)


class IndexingService:
    def __init__(self, db: Database, bus: Bus, services: Services, broker_scope: Scope):
        self._store = IndexingStore(db)
        self._services = services
        self._broker_scope = broker_scope
        self._regions: dict[str, RegionIndex] = {}
        # Connectivity follows the broker's lifecycle events, whether indexed or not yet.
        self._connectivity: dict[str, dict[str, Connectivity]] = {}
        self._subscribe(bus)

    # --- configuration -----------------------------------------------------------------------

    def _region(self, scope: Scope) -> RegionIndex:
        index = self._regions.get(scope.region)
        if index is None:
            saved = self._store.load(scope.region)
            thing, group = cfg.from_storage(saved) if saved else (cfg.ThingIndexing(),
                                                                   cfg.GroupIndexing())
            index = self._regions[scope.region] = RegionIndex(thing, group)
        if index.thing.enabled and index.entries is None and index.status == "ACTIVE":
            self._build(scope, index)  # enabled before local core started: build it now
        return index

    def configuration(self, scope: Scope) -> tuple[cfg.ThingIndexing, cfg.GroupIndexing]:
        index = self._region(scope)
        return index.thing, index.group

    def update_configuration(self, scope: Scope, thing_p: dict[str, Any] | None,
                             group_p: dict[str, Any] | None) -> None:
        index = self._region(scope)
        thing = cfg.thing_indexing(thing_p) if thing_p is not None else index.thing
        group = cfg.group_indexing(group_p) if group_p is not None else index.group
        if not thing.enabled and self._services.registry.dynamic_groups(scope):
            # "Dynamic thing groups" need fleet indexing.
            raise invalid("Thing indexing cannot be turned off while dynamic thing groups "
                          "exist: delete them first.")
        self._store.save(scope.region, cfg.to_storage(thing, group))
        was = index.thing
        index.thing, index.group = thing, group
        if not thing.enabled:
            index.entries, index.docs, index.status = None, {}, "ACTIVE"
            index.names = NameLookup()
            return
        if was == thing and index.entries is not None:
            return
        # AWS builds (or rebuilds) the index asynchronously: BUILDING until it is ready.
        index.status = "BUILDING" if index.entries is None else "REBUILDING"
        index.entries, index.docs, index.names = None, {}, NameLookup()
        try:
            asyncio.get_running_loop().call_soon(self._build, scope, index)
        except RuntimeError:
            self._build(scope, index)

    # --- building ----------------------------------------------------------------------------

    def _things(self, scope: Scope) -> Iterator[ThingRecord]:
        after = 0
        while True:
            page, last = self._services.registry.list_things(scope, after, _BUILD_CHUNK)
            yield from page
            if last is None:
                return
            after = last

    def _shadows(self) -> Any:
        return self._services.get("shadows")

    def _build(self, scope: Scope, index: RegionIndex) -> None:
        if not index.thing.enabled or index.entries is not None:
            return
        entries = {t.name: ThingEntry(t.name, t.thing_id, t.type_name, dict(t.attributes),
                                      t.version) for t in self._things(scope)}
        for thing, group in self._services.registry.memberships(scope):
            if thing in entries:
                entries[thing].groups.append(group)
        for s in self._shadows().live_states(scope.region):
            entry = entries.get(s.thing_name)
            if entry is not None:
                entry.shadows[s.shadow_name or ""] = ShadowState(s.state, s.delta, s.version)
        index.entries = entries
        index.docs = {name: self._fields(scope, index, e) for name, e in entries.items()}
        index.names = NameLookup(entries)
        index.status = "ACTIVE"
        index.dynamic = {}
        for dynamic in self._services.registry.dynamic_groups(scope):
            self._load_dynamic(scope, index, dynamic)

    def _fields(self, scope: Scope, index: RegionIndex, entry: ThingEntry
                ) -> dict[str, list[Any]]:
        conn = self._connectivity.get(scope.region, {}).get(entry.name)
        return fields(entry, index.thing, conn)

    # --- dynamic thing groups ----------------------------------------------------------------

    def check_dynamic_query(self, scope: Scope, query: str) -> None:
        """What CreateDynamicThingGroup checks of its query (the registry calls it)."""
        if not self._region(scope).thing.enabled:
            raise invalid("Dynamic thing groups need fleet indexing: turn on thing indexing "
                          "with update-indexing-configuration first.")
        try:
            compile_query(query)
        except QueryError as e:
            raise _bad_query(e) from None

    def _load_dynamic(self, scope: Scope, index: RegionIndex, group: ThingGroupRecord) -> None:
        assert group.query_string is not None and index.entries is not None
        try:
            predicate = compile_query(group.query_string)[1]
        except QueryError:
            log.warning("dynamic thing group %s has a query fleet indexing refuses", group.name)
            return
        members = {t for t, g in self._services.registry.memberships(scope) if g == group.name}
        dyn = index.dynamic[group.name] = _Dynamic(group, predicate, members)
        for name in list(index.entries):
            self._place(scope, index, dyn, name)
        for name in list(dyn.members - set(index.entries)):
            dyn.members.discard(name)

    def _place(self, scope: Scope, index: RegionIndex, dyn: _Dynamic, name: str) -> None:
        """Make `name`'s membership of the dynamic group what its query says."""
        doc = index.docs.get(name)
        member = doc is not None and dyn.matches(doc)
        if member == (name in dyn.members):
            return
        registry = self._services.registry
        thing = registry.get_thing(scope, name)
        if thing is None:
            return
        (dyn.members.add if member else dyn.members.discard)(name)
        registry.set_dynamic_membership(scope, dyn.group, thing, member)

    # --- keeping the index up to date --------------------------------------------------------

    def _built(self, scope: Scope) -> RegionIndex | None:
        index = self._region(scope)
        return index if index.entries is not None else None

    def _changed(self, scope: Scope, index: RegionIndex, name: str,
                 dynamic: bool = True) -> None:
        assert index.entries is not None
        entry = index.entries.get(name)
        if entry is None:
            index.docs.pop(name, None)
            index.names.discard(name)
        else:
            index.docs[name] = self._fields(scope, index, entry)
            index.names.add(name)
        if dynamic:
            for dyn in list(index.dynamic.values()):
                self._place(scope, index, dyn, name)

    def _subscribe(self, bus: Bus) -> None:
        bus.subscribe(r.ThingCreated, self._thing_created)
        bus.subscribe(r.ThingUpdated, self._thing_updated)
        bus.subscribe(r.ThingDeleted, self._thing_deleted)
        bus.subscribe(r.ThingAddedToGroup, self._added)
        bus.subscribe(r.ThingRemovedFromGroup, self._removed)
        bus.subscribe(r.ThingGroupCreated, self._group_changed)
        bus.subscribe(r.ThingGroupUpdated, self._group_changed)
        bus.subscribe(r.ThingGroupDeleted, self._group_deleted)
        bus.subscribe(ShadowUpdated, self._shadow_updated)
        bus.subscribe(ShadowDeleted, self._shadow_deleted)
        bus.subscribe(MessagePublished, self._message)

    def _thing_created(self, e: r.ThingCreated) -> None:
        index = self._built(e.scope)
        if index is None or index.entries is None:
            return
        t = e.thing
        entry = index.entries[t.name] = ThingEntry(t.name, t.thing_id, t.type_name,
                                                   dict(t.attributes), t.version)
        for s in self._shadows().live_states(e.scope.region, t.name):  # shadows come first
            entry.shadows[s.shadow_name or ""] = ShadowState(s.state, s.delta, s.version)
        self._changed(e.scope, index, t.name)

    def _thing_updated(self, e: r.ThingUpdated) -> None:
        index = self._built(e.scope)
        entry = index.entries.get(e.thing.name) if index and index.entries is not None else None
        if index is None or entry is None:
            return
        entry.type_name, entry.attributes = e.thing.type_name, dict(e.thing.attributes)
        entry.version = e.thing.version
        self._changed(e.scope, index, entry.name)

    def _thing_deleted(self, e: r.ThingDeleted) -> None:
        index = self._built(e.scope)
        if index is None or index.entries is None:
            return
        index.entries.pop(e.thing.name, None)
        index.docs.pop(e.thing.name, None)
        index.names.discard(e.thing.name)
        for dyn in index.dynamic.values():  # the registry dropped its memberships
            dyn.members.discard(e.thing.name)

    def _membership(self, scope: Scope, group: ThingGroupRecord, thing: str,
                    joined: bool) -> None:
        index = self._built(scope)
        entry = index.entries.get(thing) if index and index.entries is not None else None
        if index is None or entry is None:
            return
        if joined and group.name not in entry.groups:
            entry.groups.append(group.name)
        elif not joined and group.name in entry.groups:
            entry.groups.remove(group.name)
        # A dynamic group's own membership changes re-evaluate no dynamic group (no loops).
        self._changed(scope, index, thing, dynamic=not group.dynamic)

    def _added(self, e: r.ThingAddedToGroup) -> None:
        self._membership(e.scope, e.group, e.thing.name, True)

    def _removed(self, e: r.ThingRemovedFromGroup) -> None:
        self._membership(e.scope, e.group, e.thing.name, False)

    def _group_changed(self, e: r.ThingGroupCreated | r.ThingGroupUpdated) -> None:
        index = self._built(e.scope)
        if index is not None and e.group.dynamic:
            self._load_dynamic(e.scope, index, e.group)

    def _group_deleted(self, e: r.ThingGroupDeleted) -> None:
        index = self._built(e.scope)
        if index is None or index.entries is None:
            return
        index.dynamic.pop(e.group.name, None)
        for entry in index.entries.values():  # the registry dropped its memberships
            if e.group.name in entry.groups:
                entry.groups.remove(e.group.name)
                self._changed(e.scope, index, entry.name)

    def _shadow(self, region: str, thing: str, name: str | None,
                state: ShadowState | None) -> None:
        scope = Scope(self._broker_scope.account_id, region)
        index = self._built(scope)
        entry = index.entries.get(thing) if index and index.entries is not None else None
        if index is None or entry is None:
            return
        if state is None:
            entry.shadows.pop(name or "", None)
        else:
            entry.shadows[name or ""] = state
        self._changed(scope, index, thing)

    def _shadow_updated(self, e: ShadowUpdated) -> None:
        self._shadow(e.region, e.thing_name, e.shadow_name,
                     ShadowState(dict(e.state), dict(e.delta), e.version))

    def _shadow_deleted(self, e: ShadowDeleted) -> None:
        self._shadow(e.region, e.thing_name, e.shadow_name, None)

    def _message(self, e: MessagePublished) -> None:
        """Lifecycle events ("Lifecycle events"): connectivity is indexed for a client whose
        id is a thing's name."""
        if e.client_id is not None or not e.topic.startswith(_PRESENCE):
            return
        try:
            event = json.loads(e.payload)
            connected = event["eventType"] == "connected"
            client_id, timestamp = str(event["clientId"]), int(event["timestamp"])
        except (ValueError, KeyError, TypeError):
            return
        scope = self._broker_scope
        known = self._connectivity.setdefault(scope.region, {})
        previous = known.get(client_id)
        version = previous.version + 1 if previous else 1
        known[client_id] = Connectivity(connected, timestamp,
                                        None if connected else event.get("disconnectReason"),
                                        version)
        index = self._built(scope)
        if index is not None and index.entries is not None and client_id in index.entries \
                and index.thing.connectivity_on:
            self._changed(scope, index, client_id)

    # --- queries -----------------------------------------------------------------------------

    def _ready(self, scope: Scope, index_name: str | None) -> RegionIndex:
        name = index_name or THINGS
        index = self._region(scope)
        if name == GROUPS:
            if not index.group.enabled:
                raise not_found(f"Index {GROUPS} does not exist: turn on thing group indexing "
                                "with update-indexing-configuration.")
            return index
        if name != THINGS:
            raise not_found(f"Index {name} does not exist.")
        if not index.thing.enabled:
            raise not_found(f"Index {THINGS} does not exist: turn on thing indexing with "
                            "update-indexing-configuration.")
        if index.entries is None:
            raise AwsError("IndexNotReadyException",
                           f"Creation of index {THINGS} is in progress.")
        return index

    def _matching(self, scope: Scope, index_name: str | None, query: str
                  ) -> tuple[RegionIndex, list[str]]:
        index = self._ready(scope, index_name)
        try:
            node, predicate = compile_query(query)
        except QueryError as e:
            raise _bad_query(e) from None
        if (index_name or THINGS) == GROUPS:
            return index, [g for g, doc in self._group_docs(scope).items() if predicate(doc)]
        return index, matching(index.docs, index.names, node, predicate)

    def _group_docs(self, scope: Scope) -> dict[str, dict[str, list[Any]]]:
        registry = self._services.registry
        out: dict[str, dict[str, list[Any]]] = {}
        after = 0
        while True:
            page, last = registry.list_thing_groups(scope, after, _BUILD_CHUNK, None, None, True)
            for g in page:
                doc: dict[str, list[Any]] = {"thingGroupName": [g.name],
                                             "thingGroupId": [g.group_id]}
                if g.description:
                    doc["thingGroupDescription"] = [g.description]
                parents = registry.ancestors(scope, g.name)
                if parents:
                    doc["parentGroupNames"] = parents
                doc |= {f"attributes.{k}": [v] for k, v in g.attributes.items()}
                out[g.name] = doc
            if last is None:
                return out
            after = last

    def search(self, scope: Scope, index_name: str | None, query: str, start: int,
               limit: int) -> tuple[dict[str, list[dict[str, Any]]], int | None]:
        """(things or thingGroups, the next start if there is more)."""
        index, names = self._matching(scope, index_name, query)
        page = names[start:start + limit]
        more = start + limit if start + limit < len(names) else None
        if (index_name or THINGS) == GROUPS:
            docs = self._group_docs(scope)
            return {"thingGroups": [_group_result(docs[n]) for n in page]}, more
        assert index.entries is not None
        conn = self._connectivity.get(scope.region, {})
        return {"things": [result(index.entries[n], index.thing, conn.get(n))
                           for n in page]}, more

    def _values(self, scope: Scope, index_name: str | None, query: str,
                aggregation_field: str | None) -> tuple[str, list[Any]]:
        index, names = self._matching(scope, index_name, query)
        fld = aggregation_field or "registry.version"  # "Querying for aggregate data"
        kind = index.thing.field_type(fld)
        if kind is None:
            raise AwsError("InvalidAggregationException",
                           f"{fld} is neither a managed field nor a custom field of the "
                           "indexing configuration.")
        values: list[Any] = []
        for name in names:
            values += aggregate.typed(index.docs[name].get(fld, ()), kind)
        return kind, values

    def statistics(self, scope: Scope, index_name: str | None, query: str,
                   aggregation_field: str | None) -> dict[str, Any]:
        kind, values = self._values(scope, index_name, query, aggregation_field)
        return aggregate.statistics(values, kind)

    def cardinality(self, scope: Scope, index_name: str | None, query: str,
                    aggregation_field: str | None) -> int:
        return aggregate.cardinality(self._values(scope, index_name, query,
                                                  aggregation_field)[1])

    def percentiles(self, scope: Scope, index_name: str | None, query: str,
                    aggregation_field: str | None, percents: list[float] | None
                    ) -> list[dict[str, float]]:
        kind, values = self._values(scope, index_name, query, aggregation_field)
        if kind != "Number":
            raise AwsError("InvalidAggregationException",
                           f"Percentiles need a Number field; {aggregation_field} is {kind}.")
        return aggregate.percentiles(values, percents)

    def describe_index(self, scope: Scope, name: str) -> dict[str, Any]:
        index = self._region(scope)
        if name == THINGS and index.thing.enabled:
            schema = index.thing.mode + ("_AND_CONNECTIVITY_STATUS"
                                         if index.thing.connectivity_on else "")
            return {"indexName": THINGS, "indexStatus": index.status, "schema": schema}
        if name == GROUPS and index.group.enabled:
            return {"indexName": GROUPS, "indexStatus": "ACTIVE", "schema": "THING_GROUPS"}
        raise not_found(f"Index {name} does not exist.")

    def index_names(self, scope: Scope) -> list[str]:
        index = self._region(scope)
        return [n for n, on in ((THINGS, index.thing.enabled), (GROUPS, index.group.enabled))
                if on]


def _group_result(doc: dict[str, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"thingGroupName": doc["thingGroupName"][0],
                           "thingGroupId": doc["thingGroupId"][0],
                           "attributes": {k.removeprefix("attributes."): v[0]
                                          for k, v in doc.items() if k.startswith("attributes.")}}
    if "thingGroupDescription" in doc:
        out["thingGroupDescription"] = doc["thingGroupDescription"][0]
    if "parentGroupNames" in doc:
        out["parentGroupNames"] = list(doc["parentGroupNames"])
    return out
