"""AWS IoT logging's pure parts (level resolution, log entries) and its service over a
recording double of the logs feature's `put_events`."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.broker import activity as a
from fleetsim.localcore.broker.activity import Activity
from fleetsim.localcore.bus import Bus
from fleetsim.localcore.db import Database
from fleetsim.localcore.features.context import Services
from fleetsim.localcore.features.iotlogging import entries, levels
from fleetsim.localcore.features.iotlogging.levels import Who, resolve, writes
from fleetsim.localcore.features.iotlogging.service import LoggingService
from fleetsim.localcore.principal import EXCLUSIVE_THING, Principal, ThingInfo
from fleetsim.localcore.scope import Scope

LEVELS = list(levels.VERBOSITY)
SCOPE = Scope("123456789012", "us-east-1")


def test_client_id_beats_source_ip_beats_principal_beats_group_beats_default() -> None:
    who = Who("dev-1", "10.0.0.1", "cert", [["building-one"]])
    targets = {("CLIENT_ID", "dev-1"): "DEBUG", ("SOURCE_IP", "10.0.0.1"): "INFO",
               ("PRINCIPAL_ID", "cert"): "ERROR", ("THING_GROUP", "building-one"): "WARN"}
    assert resolve("DISABLED", False, targets, who) == "DEBUG"
    del targets["CLIENT_ID", "dev-1"]
    assert resolve("DISABLED", False, targets, who) == "INFO"
    del targets["SOURCE_IP", "10.0.0.1"]
    assert resolve("DISABLED", False, targets, who) == "ERROR"
    del targets["PRINCIPAL_ID", "cert"]
    assert resolve("DISABLED", False, targets, who) == "WARN"
    del targets["THING_GROUP", "building-one"]
    assert resolve("DISABLED", False, targets, who) == "DISABLED"


def test_child_group_overrides_parent_and_several_groups_take_the_most_verbose() -> None:
    targets = {("THING_GROUP", "campus"): "DEBUG", ("THING_GROUP", "floor-1"): "ERROR",
               ("THING_GROUP", "lab"): "INFO"}
    assert resolve("WARN", False, targets, Who("d", "ip", "p", [["floor-1", "campus"]])
                   ) == "ERROR"
    assert resolve("WARN", False, targets, Who("d", "ip", "p", [["floor-1", "campus"],
                                                                 ["lab"]])) == "INFO"
    assert resolve("WARN", False, targets, Who("d", "ip", "p", [["room", "campus"]])) == "DEBUG"


@given(st.sampled_from(LEVELS), st.dictionaries(
    st.tuples(st.sampled_from(levels.TARGET_TYPES), st.sampled_from(["a", "b"])),
    st.sampled_from(LEVELS)))
def test_disable_all_logs_wins_over_everything(default: str, targets: dict[Any, str]) -> None:
    assert resolve(default, True, targets, Who("a", "a", "a", [["a", "b"]])) == "DISABLED"


@given(st.sampled_from(LEVELS), st.sampled_from(["ERROR", "INFO"]))
def test_an_entry_is_written_within_the_applying_level(applying: str, entry: str) -> None:
    assert writes(applying, entry) == (
        applying != "DISABLED" and levels.VERBOSITY[entry] <= levels.VERBOSITY[applying])


def act(event: str = a.PUBLISH_IN, status: str = a.SUCCESS, client: str = "dev-1",
        topic: str | None = "t/1", reason: str | None = None,
        principal: Principal | None = None) -> Activity:
    return Activity(event, status, client, "c0ffee", "127.0.0.1", 50123, principal, topic,
                    reason)


def test_entries_have_the_fields_the_log_entry_reference_lists_in_order() -> None:
    connect = entries.v2_entry(act(a.CONNECT, topic=None), "123456789012", "trace", 1502379443476)
    assert list(connect) == ["timestamp", "logLevel", "traceId", "accountId", "status",
                             "eventType", "protocol", "clientId", "principalId", "sourceIp",
                             "sourcePort"]
    assert connect["timestamp"] == "2017-08-10 15:37:23.476"
    assert (connect["logLevel"], connect["status"], connect["protocol"]) == (
        "INFO", "Success", "MQTT")
    denied = entries.v2_entry(act(status=a.FAILURE, reason=a.AUTHORIZATION_FAILURE), "1", "t", 0)
    assert list(denied)[7:] == ["topicName", "clientId", "principalId", "sourceIp",
                                "sourcePort", "reason", "details"]
    assert (denied["logLevel"], denied["reason"], denied["details"]) == (
        "ERROR", "AUTHORIZATION_FAILURE", "Authorization Failure")
    duplicate = entries.v2_entry(act(a.DISCONNECT, topic=None, reason="DUPLICATE_CLIENTID"),
                                 "1", "t", 0)
    assert (duplicate["reason"], duplicate["disconnectReason"]) == (
        "DUPLICATE_CLIENT_ID", "DUPLICATE_CLIENTID")
    line = entries.v1_message(act(), "trace", 0)
    assert re.match(r"1970-01-01 00:00:00\.000 TRACEID:trace PRINCIPALID:c0ffee \[INFO\] ", line)


class RecordingLogs:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, list[tuple[int, str]]]] = []

    def put_events(self, region: str, group: str, stream: str,
                   events: Any) -> None:
        self.calls.append((region, group, stream, list(events)))


class Hook:
    activity: Any = None


class Registry:
    def __init__(self, groups: dict[str, list[str]], parents: dict[str, str]):
        self._groups, self._parents = groups, parents

    def groups_of_thing(self, scope: Scope, thing: str) -> list[str]:
        return self._groups.get(thing, [])

    def ancestors(self, scope: Scope, group: str) -> list[str]:
        out = []
        while group in self._parents:
            group = self._parents[group]
            out.append(group)
        return out


def make(tmp_path: Path, logs: RecordingLogs | None = None
         ) -> tuple[LoggingService, Hook, RecordingLogs]:
    services = Services()
    recording = logs or RecordingLogs()
    services.provide("logs", recording)
    services.provide("registry", Registry({"dev-1": ["floor-1"]}, {"floor-1": "building-one"}))
    hook = Hook()
    db = Database(tmp_path / "state.db", "us-east-1")
    service = LoggingService(db, Bus(), services, hook, SCOPE, lambda: 1502379443476)
    return service, hook, recording


def thing_principal(name: str, exclusive: bool = False) -> Principal:
    return Principal("c0ffee", "arn", "ACTIVE", None, things=(ThingInfo(
        name, principal_type=EXCLUSIVE_THING if exclusive else "NON_EXCLUSIVE_THING"),))


async def test_the_broker_hook_is_set_only_while_some_level_can_write(tmp_path: Path) -> None:
    service, hook, _ = make(tmp_path)
    assert hook.activity is None
    service.set_v2(SCOPE, "arn:aws:iam::123456789012:role/r", "DISABLED", None)
    assert hook.activity is None
    service.set_level(SCOPE, "THING_GROUP", "building-one", "DEBUG")
    assert hook.activity is not None
    service.set_v2(SCOPE, None, None, True)
    assert hook.activity is None


async def test_group_level_applies_to_the_thing_connected_as_itself_only(tmp_path: Path
                                                                          ) -> None:
    service, hook, logs = make(tmp_path)
    service.flush_interval = 0.01
    service.set_v2(SCOPE, "arn:aws:iam::123456789012:role/r", "WARN", None)
    service.set_level(SCOPE, "THING_GROUP", "building-one", "DEBUG")
    hook.activity(act(principal=thing_principal("dev-1")))  # the thing, by client id
    hook.activity(act(client="other", principal=thing_principal("dev-1")))  # not the thing
    hook.activity(act(client="other", principal=thing_principal("dev-1", exclusive=True)))
    hook.activity(act(client="other", status=a.FAILURE, reason=a.AUTHORIZATION_FAILURE,
                      principal=thing_principal("dev-1")))  # ERROR: within WARN
    await asyncio.sleep(0.05)
    assert len(logs.calls) == 1
    region, group, _, events = logs.calls[0]
    assert (region, group) == ("us-east-1", "AWSIotLogsV2")
    written = [json.loads(message) for _, message in events]
    assert [(e["clientId"], e["logLevel"]) for e in written] == [
        ("dev-1", "INFO"), ("other", "INFO"), ("other", "ERROR")]
    assert service.written == 3


async def test_entries_are_batched_into_one_call_per_log_group(tmp_path: Path) -> None:
    service, hook, logs = make(tmp_path)
    service.flush_interval = 0.01
    service.set_v2(SCOPE, "arn:aws:iam::123456789012:role/r", "INFO", None)
    service.set_v1(SCOPE, "arn:aws:iam::123456789012:role/r", "INFO")
    for i in range(50):
        hook.activity(act(topic=f"t/{i}"))
    await asyncio.sleep(0.05)
    assert sorted((group, len(events)) for _, group, _, events in logs.calls) == [
        ("AWSIotLogs", 50), ("AWSIotLogsV2", 50)]


async def test_levels_survive_a_restart(tmp_path: Path) -> None:
    service, _, _ = make(tmp_path)
    service.set_v2(SCOPE, "arn:aws:iam::123456789012:role/r", "WARN", None)
    service.set_level(SCOPE, "CLIENT_ID", "dev-1", "DEBUG")
    again, hook, _ = make(tmp_path)
    assert again.list_levels(SCOPE, None) == [("CLIENT_ID", "dev-1", "DEBUG")]
    assert hook.activity is not None
