"""ShadowService over a real SQLite connection: replies, publications, events, tombstones."""

from __future__ import annotations

import json

import pytest

from fleetsim.localcore.db import Database
from fleetsim.localcore.features.shadows.document import VERSION_RETENTION_SECONDS, ShadowError
from fleetsim.localcore.features.shadows.service import (
    ShadowDeleted,
    ShadowService,
    ShadowUpdated,
    topic,
)
from fleetsim.localcore.features.shadows.store import ShadowStore

R = "us-east-1"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(tmp_path):
    db = Database(tmp_path / "state.db", R)
    clock = Clock()
    events: list = []
    service = ShadowService(db, clock, events.append)
    yield service, clock, events, db
    db.close()


def body(outcome) -> dict:
    return json.loads(outcome.body)


def req(doc) -> bytes:
    return json.dumps(doc).encode()


def test_topics():
    assert topic("t1", None, "update/delta") == "$aws/things/t1/shadow/update/delta"
    assert topic("t1", "cfg", "get") == "$aws/things/t1/shadow/name/cfg/get"


def test_get_missing_shadow_is_404_on_get_rejected(env):
    service, clock, _, _ = env
    out = service.get(R, "mySimulatedThing", "simShadow1", b'{"clientToken":"c1"}')
    assert (out.status, out.ok) == (404, False)
    assert body(out) == {"code": 404, "message": "No shadow exists with name: 'simShadow1'",
                         "timestamp": int(clock.now), "clientToken": "c1"}
    assert out.error.aws_code == "ResourceNotFoundException"
    assert [s for s, _ in out.mqtt] == ["get/rejected"] and out.http == ()
    classic = service.get(R, "thingA", None)
    assert body(classic)["message"] == "No shadow exists with name: 'thingA'"


def test_update_publishes_accepted_delta_documents(env):
    service, clock, events, _ = env
    out = service.update(R, "lamp", None, req({"state": {"desired": {"color": "red"}},
                                               "clientToken": "tok"}))
    assert out.ok and out.status == 200
    suffixes = [s for s, _ in out.mqtt]
    assert suffixes == ["update/accepted", "update/delta", "update/documents"]
    assert out.http == out.mqtt  # a REST update publishes the same messages
    assert out.mqtt[0][1] == out.body
    delta = json.loads(out.mqtt[1][1])
    assert delta["state"] == {"color": "red"} and delta["version"] == 1
    assert delta["clientToken"] == "tok"
    [event] = events
    assert isinstance(event, ShadowUpdated)
    assert (event.region, event.thing_name, event.shadow_name, event.version) == (
        R, "lamp", None, 1)
    assert event.previous_state is None and event.delta == {"color": "red"}

    clock.now += 5
    out2 = service.update(R, "lamp", None, req({"state": {"reported": {"color": "red"}}}))
    assert [s for s, _ in out2.mqtt] == ["update/accepted", "update/documents"]
    got = body(service.get(R, "lamp", None))
    assert got["state"] == {"desired": {"color": "red"}, "reported": {"color": "red"}}
    assert got["version"] == 2 and got["timestamp"] == int(clock.now)


def test_rejected_update_publishes_only_on_mqtt_and_writes_nothing(env):
    service, _, events, db = env
    out = service.update(R, "lamp", None, b'{"state": {"desired": 1}, "clientToken": "x"}')
    assert out.status == 400
    assert body(out)["message"] == "Desired node must be an object"
    assert body(out)["clientToken"] == "x"
    assert [s for s, _ in out.mqtt] == ["update/rejected"] and out.http == ()
    assert events == [] and db.one("SELECT COUNT(*) FROM shadows")[0] == 0


def test_version_conflict_409(env):
    service, _, _, _ = env
    service.update(R, "t", "s", req({"state": {"reported": {"a": 1}}}))
    out = service.update(R, "t", "s", req({"state": {"reported": {"a": 2}}, "version": 5}))
    assert (out.status, out.error.aws_code, body(out)["message"]) == (
        409, "ConflictException", "Version conflict")
    ok = service.update(R, "t", "s", req({"state": {"reported": {"a": 2}}, "version": 1}))
    assert ok.ok and body(ok)["version"] == 2


def test_too_large_is_413(env):
    service, _, _, _ = env
    out = service.update(R, "t", None, req({"state": {"reported": {"a": "x" * 9000}}}))
    assert (out.status, out.error.aws_code) == (413, "RequestEntityTooLargeException")


def test_delete_then_recreate_continues_version_within_48_hours(env):
    service, clock, events, _ = env
    for i in range(3):
        service.update(R, "t", None, req({"state": {"reported": {"n": i}}}))
    out = service.delete(R, "t", None, b'{"clientToken": "d1"}')
    assert body(out) == {"version": 3, "timestamp": int(clock.now), "clientToken": "d1"}
    assert [s for s, _ in out.mqtt] == ["delete/accepted"] and out.http == out.mqtt
    assert isinstance(events[-1], ShadowDeleted) and events[-1].version == 3
    assert service.get(R, "t", None).status == 404
    assert service.delete(R, "t", None).status == 404
    # a version check against the deleted shadow's version
    clock.now += VERSION_RETENTION_SECONDS
    again = service.update(R, "t", None, req({"state": {"reported": {"n": 9}}, "version": 3}))
    assert body(again)["version"] == 4
    docs = json.loads(dict(again.mqtt)["update/documents"])
    assert docs["previous"] is None and docs["current"]["version"] == 4


def test_recreate_after_48_hours_starts_again(env):
    service, clock, _, _ = env
    service.update(R, "t", "s", req({"state": {"reported": {"n": 1}}}))
    service.update(R, "t", "s", req({"state": {"reported": {"n": 2}}}))
    service.delete(R, "t", "s")
    clock.now += VERSION_RETENTION_SECONDS + 1
    again = service.update(R, "t", "s", req({"state": {"reported": {"n": 3}}}))
    assert body(again)["version"] == 1


def test_delete_ignores_payload_content(env):
    service, _, _, _ = env
    service.update(R, "t", None, req({"state": {"reported": {"n": 1}}}))
    out = service.delete(R, "t", None, b"not json at all")
    assert out.ok and "clientToken" not in body(out)


def test_regions_and_shadows_are_separate(env):
    service, _, _, _ = env
    service.update(R, "t", None, req({"state": {"reported": {"where": "classic"}}}))
    service.update(R, "t", "named", req({"state": {"reported": {"where": "named"}}}))
    service.update("eu-west-1", "t", None, req({"state": {"reported": {"where": "eu"}}}))
    assert body(service.get(R, "t", None))["state"]["reported"] == {"where": "classic"}
    assert body(service.get(R, "t", "named"))["state"]["reported"] == {"where": "named"}
    assert body(service.get("eu-west-1", "t", None))["state"]["reported"] == {"where": "eu"}
    assert service.get("eu-west-1", "t", "named").status == 404


def test_list_named_pages_and_skips_classic_and_deleted(env):
    service, _, _, _ = env
    service.update(R, "t", None, req({"state": {"reported": {"a": 1}}}))
    for name in ["c", "a", "e", "b", "d"]:
        service.update(R, "t", name, req({"state": {"reported": {"a": 1}}}))
    service.delete(R, "t", "d")
    first = service.list_named(R, "t", page_size=2)
    assert first.results == ["a", "b"] and first.next_token
    second = service.list_named(R, "t", page_size=2, next_token=first.next_token)
    assert second.results == ["c", "e"] and second.next_token is None
    assert set(second.payload()) == {"results", "timestamp"}
    assert service.list_named(R, "nobody").results == []
    with pytest.raises(ShadowError) as info:
        service.list_named(R, "t", page_size=0)
    assert info.value.code == 400


def test_invalid_names_are_400(env):
    service, _, _, _ = env
    assert service.get(R, "bad/thing", None).status == 400
    assert service.update(R, "t", "bad name", req({"state": {}})).status == 400


def test_update_without_registered_thing_is_allowed(env):
    # shadows are independent of the registry ("Interacting with shadows")
    service, _, _, _ = env
    assert service.update(R, "never-registered", None, req({"state": {}})).ok


def test_store_rows_by_column_name(env):
    service, clock, _, db = env
    service.update(R, "t", "s", req({"state": {"reported": {"a": 1}}}))
    store = ShadowStore(db)
    row = store.load(R, "t", "s")
    assert (row.region, row.thing_name, row.shadow_name, row.version, row.deleted) == (
        R, "t", "s", 1, False)
    service.delete(R, "t", "s")
    row = store.load(R, "t", "s")
    assert row.deleted and row.document is None and row.version == 1
    clock.now += VERSION_RETENTION_SECONDS - 1
    assert service.forget_old_deletions() == 0  # within 48 hours the version still counts
    clock.now += 2
    assert service.forget_old_deletions() == 1
    assert store.load(R, "t", "s") is None
