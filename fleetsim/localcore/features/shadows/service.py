"""The Device Shadow service: get, update, delete and list over `ShadowStore`, answering with
what to return (HTTP) and what to publish (MQTT), so the MQTT and HTTP layers only translate.

Publishing ("Interacting with shadows", "Device Shadow error messages"):
- a request over MQTT gets its reply on `<prefix>/<op>/accepted` or `<prefix>/<op>/rejected`,
  and an accepted update also publishes `/update/delta` (when there is one) and
  `/update/documents`;
- a request over HTTP gets the same document as its response body; an accepted update or delete
  still publishes its MQTT messages (`/update/accepted`, `/update/delta`, `/update/documents`,
  `/delete/accepted`), but errors and `get` publish nothing ("If the client updates the document
  using the REST API ... no MQTT error messages are emitted").
Every message goes through the broker to every subscriber allowed to receive it.

Shadows do not need a registered thing: AWS keeps them apart from the registry ("Deleting a thing
object does not delete the corresponding device's shadow"; ListNamedShadowsForThing answers an
empty list for a thing that does not exist).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleetsim.localcore.db import Database
from fleetsim.localcore.features.shadows.document import (
    VERSION_RETENTION_SECONDS,
    ShadowDocument,
    ShadowError,
    apply_update,
    base_version,
    delete_payload,
    encode,
    get_payload,
    lenient_client_token,
    no_shadow,
)
from fleetsim.localcore.features.shadows.store import ShadowStore

# botocore's iot-data model: thingName [a-zA-Z0-9:_-]+ (1-128), shadowName [$a-zA-Z0-9:_-]+
# (1-64), pageSize 1-100.
_THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_SHADOW_NAME = re.compile(r"[$a-zA-Z0-9:_-]{1,64}")
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 100  # AWS documents no default; ours is the maximum

Messages = tuple[tuple[str, bytes], ...]  # (topic suffix after the shadow prefix, payload)


def topic_prefix(thing_name: str, shadow_name: str | None) -> str:
    """`$aws/things/<thing>/shadow` or `.../shadow/name/<shadow>` ("Device Shadow MQTT topics")."""
    base = f"$aws/things/{thing_name}/shadow"
    return f"{base}/name/{shadow_name}" if shadow_name else base


def topic(thing_name: str, shadow_name: str | None, suffix: str) -> str:
    """The full topic for a suffix such as "update/delta"."""
    return f"{topic_prefix(thing_name, shadow_name)}/{suffix}"


@dataclass(frozen=True)
class ShadowOutcome:
    """The answer to one get/update/delete.

    `status` and `body`: the HTTP status (200 or the error's code) and response body, which is
    also the `/accepted` or `/rejected` document. `mqtt`: what to publish when the request came
    over MQTT (reply first). `http`: what to publish when it came over HTTP."""

    status: int
    body: bytes
    error: ShadowError | None = None
    mqtt: Messages = ()
    http: Messages = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class NamedShadowPage:
    """ListNamedShadowsForThing's answer ("Shadow name list response document")."""

    results: list[str]
    next_token: str | None
    timestamp: int

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"results": self.results, "timestamp": self.timestamp}
        if self.next_token is not None:
            out["nextToken"] = self.next_token
        return out


@dataclass(frozen=True)
class ShadowUpdated:
    """Announced on the internal bus after an accepted update."""

    region: str
    thing_name: str
    shadow_name: str | None  # None: classic shadow
    version: int
    timestamp: int
    state: dict[str, Any]  # current desired/reported
    previous_state: dict[str, Any] | None  # None: the update created the shadow
    delta: dict[str, Any] = field(default_factory=dict)
    client_token: str | None = None


@dataclass(frozen=True)
class ShadowDeleted:
    """Announced on the internal bus after a shadow is deleted."""

    region: str
    thing_name: str
    shadow_name: str | None
    version: int
    timestamp: int


ShadowEvent = ShadowUpdated | ShadowDeleted


@dataclass(frozen=True)
class LiveShadow:
    """A live shadow's current state, as fleet indexing reads it."""

    thing_name: str
    shadow_name: str | None  # None: classic shadow
    state: dict[str, Any]
    delta: dict[str, Any]
    version: int


def _rejected(op: str, error: ShadowError, now: int) -> ShadowOutcome:
    body = encode(error.payload(now))
    return ShadowOutcome(error.code, body, error, mqtt=((f"{op}/rejected", body),))


def _check_names(thing_name: str, shadow_name: str | None) -> None:
    # The messages are ours: AWS documents the patterns, not the texts.
    if not _THING_NAME.fullmatch(thing_name):
        raise ShadowError(400, "Invalid thing name")
    if shadow_name is not None and not _SHADOW_NAME.fullmatch(shadow_name):
        raise ShadowError(400, "Invalid shadow name")


class ShadowService:
    """Device shadows for every region local core serves.

    `clock` returns epoch seconds; `announce` receives a `ShadowUpdated`/`ShadowDeleted` after the
    change is committed."""

    def __init__(self, db: Database, clock: Callable[[], float],
                 announce: Callable[[ShadowEvent], None]):
        self._db = db
        self._store = ShadowStore(db)
        self._clock = clock
        self._announce = announce

    def get(self, region: str, thing_name: str, shadow_name: str | None,
            payload: bytes = b"") -> ShadowOutcome:
        """GetThingShadow / `/get`. `payload` (MQTT) may carry a clientToken to echo; any other
        content is ignored."""
        now = int(self._clock())
        token = lenient_client_token(payload)
        try:
            _check_names(thing_name, shadow_name)
            row = self._store.load(region, thing_name, shadow_name or "")
            if row is None or row.document is None:
                raise no_shadow(shadow_name or thing_name)
            doc = ShadowDocument.from_storage(row.document, row.version, int(row.updated))
        except ShadowError as e:
            return _rejected("get", e.with_token(token), now)
        body = encode(get_payload(doc, now, token))
        return ShadowOutcome(200, body, mqtt=(("get/accepted", body),))

    def update(self, region: str, thing_name: str, shadow_name: str | None,
               payload: bytes) -> ShadowOutcome:
        """UpdateThingShadow / `/update`: creates the shadow if needed."""
        clock = self._clock()
        now = int(clock)
        name = shadow_name or ""
        try:
            _check_names(thing_name, shadow_name)
            with self._db.transaction():
                row = self._store.load(region, thing_name, name)
                current = None
                base = 0
                if row is not None and row.document is not None:
                    current = ShadowDocument.from_storage(row.document, row.version,
                                                          int(row.updated))
                elif row is not None:
                    base = base_version(row.version, row.deleted_at, clock)
                result = apply_update(current, payload, now, base)
                new = result.document
                self._store.save(region, thing_name, name, new.to_storage(), new.version, clock)
        except ShadowError as e:
            if e.client_token is None:
                e = e.with_token(lenient_client_token(payload))
            return _rejected("update", e, now)
        accepted = encode(result.accepted)
        notices: list[tuple[str, bytes]] = [("update/accepted", accepted)]
        if result.delta is not None:
            notices.append(("update/delta", encode(result.delta)))
        notices.append(("update/documents", encode(result.documents)))
        self._announce(ShadowUpdated(
            region, thing_name, shadow_name, new.version, now, new.state(),
            result.previous.state() if result.previous is not None else None,
            new.delta(), result.client_token))
        return ShadowOutcome(200, accepted, mqtt=tuple(notices), http=tuple(notices))

    def delete(self, region: str, thing_name: str, shadow_name: str | None,
               payload: bytes = b"") -> ShadowOutcome:
        """DeleteThingShadow / `/delete`: the version is kept for 48 hours."""
        clock = self._clock()
        now = int(clock)
        token = lenient_client_token(payload)
        name = shadow_name or ""
        try:
            _check_names(thing_name, shadow_name)
            with self._db.transaction():
                row = self._store.load(region, thing_name, name)
                if row is None or row.document is None:
                    raise no_shadow(shadow_name or thing_name)
                self._store.tombstone(region, thing_name, name, clock)
        except ShadowError as e:
            return _rejected("delete", e.with_token(token), now)
        body = encode(delete_payload(row.version, now, token))
        self._announce(ShadowDeleted(region, thing_name, shadow_name, row.version, now))
        messages = (("delete/accepted", body),)
        return ShadowOutcome(200, body, mqtt=messages, http=messages)

    def live_states(self, region: str, thing_name: str | None = None
                    ) -> list[LiveShadow]:
        """Every live shadow of the region (or of one thing), for fleet indexing."""
        out = []
        for row in self._store.live(region, thing_name):
            assert row.document is not None
            doc = ShadowDocument.from_storage(row.document, row.version, int(row.updated))
            out.append(LiveShadow(row.thing_name, row.shadow_name or None, doc.state(),
                                  doc.delta(), row.version))
        return out

    def forget_old_deletions(self) -> int:
        """Drop tombstones of shadows deleted over 48 hours ago: their versions no longer
        count. Returns how many went."""
        with self._db.transaction():
            return self._store.purge_tombstones(self._clock() - VERSION_RETENTION_SECONDS)

    def list_named(self, region: str, thing_name: str, page_size: int | None = None,
                   next_token: str | None = None) -> NamedShadowPage:
        """ListNamedShadowsForThing: live named shadows in name order (the classic shadow is
        not listed). Raises ShadowError 400 for a bad page size or token."""
        now = int(self._clock())
        _check_names(thing_name, None)
        size = DEFAULT_PAGE_SIZE if page_size is None else page_size
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ShadowError(400, "Invalid pageSize")  # our text
        after = _decode_token(next_token) if next_token else ""
        names = self._store.named(region, thing_name, after, size + 1)
        more = len(names) > size
        names = names[:size]
        return NamedShadowPage(names, _encode_token(names[-1]) if more else None, now)


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise ShadowError(400, "Invalid nextToken") from None  # our text
