"""Fleet indexing against a local core over HTTP: the lab's AWS CLI commands verbatim, the
index following registry and shadow changes (waited for by polling with a deadline),
connectivity following the broker, aggregations, and dynamic thing groups whose membership
follows the index."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from tests.awscli import aws, aws_json
from tests.conftest import start_core
from tests.helpers import aws_client, code_of

T = TypeVar("T")
DEADLINE_S = 10.0


def eventually(probe: Callable[[], T], ok: Callable[[T], bool]) -> T:
    """Poll `probe` until `ok` holds of its answer (the index follows the bus, shortly after
    the call that changed things returns); fails with the last answer after the deadline."""
    end = time.monotonic() + DEADLINE_S
    while True:
        try:
            value = probe()
        except ClientError as e:
            if code_of_error(e) != "IndexNotReadyException" or time.monotonic() > end:
                raise
        else:
            if ok(value) or time.monotonic() > end:
                assert ok(value), value
                return value
        time.sleep(0.05)


def code_of_error(e: ClientError) -> str:
    return str(e.response["Error"]["Code"])


def names(answer: dict[str, Any]) -> set[str]:
    return {t["thingName"] for t in answer["things"]}


@pytest.fixture(scope="module")
def data(core: RunningLocalCore) -> Any:
    return aws_client(core.api_url, "iot-data")


def _report(data: Any, thing: str, reported: dict[str, Any], shadow: str | None = None
            ) -> None:
    extra = {"shadowName": shadow} if shadow else {}
    data.update_thing_shadow(thingName=thing, payload=json.dumps(
        {"state": {"reported": reported}}).encode(), **extra)


@pytest.fixture
def indexed(iot: Any) -> Any:
    """Fleet indexing on, registry and shadows: each test that searches sets the mode it
    needs rather than relying on a test before it (any test passes alone, in any order)."""
    iot.update_indexing_configuration(thingIndexingConfiguration={
        "thingIndexingMode": "REGISTRY_AND_SHADOW"})
    return iot


def test_search_before_indexing_is_on_is_refused(tmp_path: Path) -> None:
    fresh = start_core(tmp_path / "state" / "localcore")  # an account never indexed
    try:
        with pytest.raises(ClientError) as e:
            aws_client(fresh.api_url).search_index(queryString="thingName:*")
        assert code_of(e) == "ResourceNotFoundException"
    finally:
        fresh.stop()


def test_workshop_fleet_indexing_lab(core: RunningLocalCore, iot: Any, data: Any,
                                     tmp_path: Path) -> None:
    temperatures = {f"bulky{i}": 15 + i for i in range(16)}  # 15..30
    for thing, temperature in temperatures.items():
        iot.create_thing(thingName=thing)
        _report(data, thing, {"temperature": temperature})
    aws(core, tmp_path, "iot", "update-indexing-configuration",
        "--thing-indexing-configuration", "thingIndexingMode=REGISTRY_AND_SHADOW")
    config = aws_json(core, tmp_path, "iot", "get-indexing-configuration")
    assert config["thingIndexingConfiguration"]["thingIndexingMode"] == "REGISTRY_AND_SHADOW"
    managed = {f["name"] for f in config["thingIndexingConfiguration"]["managedFields"]}
    assert {"thingName", "shadow.version", "registry.version"} <= managed
    for k, thing in enumerate(temperatures):  # what fleet-indexing.py does: room numbers
        iot.update_thing(thingName=thing, attributePayload={
            "attributes": {"room_number": str(100 + k)}, "merge": True})

    def search(query: str) -> dict[str, Any]:
        return aws_json(core, tmp_path, "iot", "search-index", "--query-string", query)

    every = eventually(lambda: search("thingName:bulky*"), lambda a: len(a["things"]) == 16)
    thing = next(t for t in every["things"] if t["thingName"] == "bulky3")
    assert thing["attributes"] == {"room_number": "103"}
    assert json.loads(thing["shadow"])["reported"] == {"temperature": 18}
    warm = search("shadow.reported.temperature>20 AND attributes.room_number:*")
    assert names(warm) == {t for t, c in temperatures.items() if c > 20}


def test_index_follows_shadow_updates_and_deletions(indexed: Any, data: Any) -> None:
    iot = indexed
    iot.create_thing(thingName="lag-1", attributePayload={"attributes": {"floor": "2"}})
    _report(data, "lag-1", {"temperature": 10})
    eventually(lambda: iot.search_index(queryString="thingName:lag-1"),
               lambda a: len(a["things"]) == 1)
    _report(data, "lag-1", {"temperature": 99})
    eventually(lambda: iot.search_index(queryString="shadow.reported.temperature:[90 TO 100]"),
               lambda a: names(a) == {"lag-1"})
    data.delete_thing_shadow(thingName="lag-1")
    eventually(lambda: iot.search_index(queryString="thingName:lag-1 AND shadow.version:*"),
               lambda a: a["things"] == [])
    iot.delete_thing(thingName="lag-1")
    eventually(lambda: iot.search_index(queryString="attributes.floor:2"),
               lambda a: a["things"] == [])


def test_queries_case_paging_and_refusals(indexed: Any) -> None:
    iot = indexed
    for i in range(5):
        iot.create_thing(thingName=f"Pager-{i}", attributePayload={"attributes": {
            "model": "TV-Plasma" if i % 2 else "tv-led"}})
    eventually(lambda: iot.search_index(queryString="thingName:pager-*"),
               lambda a: len(a["things"]) == 5)
    first = iot.search_index(queryString="thingName:Pager-*", maxResults=2)
    assert len(first["things"]) == 2 and first["nextToken"]
    rest = iot.search_index(queryString="thingName:Pager-*", maxResults=10,
                            nextToken=first["nextToken"])
    assert len(rest["things"]) == 3 and "nextToken" not in rest
    plasma = iot.search_index(queryString="attributes.model:tv-plasma")
    assert names(plasma) == {"Pager-1", "Pager-3"}
    assert names(iot.search_index(
        queryString="thingName:Pager-* AND NOT attributes.model:TV-PLASMA")) == \
        {"Pager-0", "Pager-2", "Pager-4"}
    too_many = " OR ".join(f"thingName:t{i}" for i in range(13))
    for bad in (too_many, "thingName:pager~1", "thingName:(", "thingName:/p.*/"):
        with pytest.raises(ClientError) as e:
            iot.search_index(queryString=bad)
        assert code_of(e) == "InvalidQueryException", bad
    with pytest.raises(ClientError) as e:
        iot.search_index(indexName="Nope", queryString="*")
    assert code_of(e) == "ResourceNotFoundException"


def test_aggregations(iot: Any, data: Any) -> None:
    iot.update_indexing_configuration(thingIndexingConfiguration={
        "thingIndexingMode": "REGISTRY_AND_SHADOW",
        "customFields": [{"name": "shadow.reported.level", "type": "Number"},
                         {"name": "attributes.kind", "type": "String"}]})
    for i, level in enumerate((10, 20, 30, 40)):
        iot.create_thing(thingName=f"agg-{i}", attributePayload={"attributes": {
            "kind": "a" if i < 2 else "b"}})
        _report(data, f"agg-{i}", {"level": level})
    eventually(lambda: iot.get_statistics(queryString="thingName:agg-*",
                                          aggregationField="shadow.reported.level"),
               lambda a: a["statistics"].get("count") == 4)
    stats = iot.get_statistics(queryString="thingName:agg-*",
                               aggregationField="shadow.reported.level")["statistics"]
    assert (stats["minimum"], stats["maximum"], stats["sum"], stats["average"]) == \
        (10, 40, 100, 25)
    assert iot.get_statistics(queryString="thingName:agg-*",
                              aggregationField="attributes.kind")["statistics"] == {"count": 4}
    assert iot.get_cardinality(queryString="thingName:agg-*",
                               aggregationField="attributes.kind")["cardinality"] == 2
    pct = iot.get_percentiles(queryString="thingName:agg-*",
                              aggregationField="shadow.reported.level", percents=[50])
    assert pct["percentiles"] == [{"percent": 50.0, "value": 25.0}]
    with pytest.raises(ClientError) as e:
        iot.get_statistics(queryString="*", aggregationField="attributes.unknown")
    assert code_of(e) == "InvalidAggregationException"


def test_dynamic_thing_group_membership_follows_the_index(indexed: Any, data: Any) -> None:
    iot = indexed
    iot.create_thing(thingName="hot-1")
    _report(data, "hot-1", {"temperature": 35})
    iot.create_thing(thingName="cold-1")
    _report(data, "cold-1", {"temperature": 5})
    created = iot.create_dynamic_thing_group(thingGroupName="too-hot",
                                             queryString="shadow.reported.temperature>30")
    assert created["queryString"] == "shadow.reported.temperature>30"

    def members() -> set[str]:
        return set(iot.list_things_in_thing_group(thingGroupName="too-hot")["things"])

    eventually(members, lambda m: "hot-1" in m and "cold-1" not in m)
    _report(data, "cold-1", {"temperature": 31})  # a thing that matches later joins
    eventually(members, lambda m: {"hot-1", "cold-1"} <= m)
    _report(data, "hot-1", {"temperature": 20})  # one that stops matching leaves
    eventually(members, lambda m: "hot-1" not in m)
    groups = iot.list_thing_groups_for_thing(thingName="cold-1")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["too-hot"]
    assert "too-hot" in {g["groupName"] for g in iot.list_thing_groups()["thingGroups"]}
    described = iot.describe_thing_group(thingGroupName="too-hot")
    assert described["queryString"] == "shadow.reported.temperature>30"
    assert described["indexName"] == "AWS_Things"

    with pytest.raises(ClientError) as e:
        iot.add_thing_to_thing_group(thingGroupName="too-hot", thingName="hot-1")
    assert code_of(e) == "InvalidRequestException"
    iot.create_policy(policyName="dyn-policy", policyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))
    arn = described["thingGroupArn"]
    with pytest.raises(ClientError) as e:
        iot.attach_policy(policyName="dyn-policy", target=arn)
    assert code_of(e) == "InvalidRequestException"
    with pytest.raises(ClientError) as e:
        iot.create_thing_group(thingGroupName="under-dyn", parentGroupName="too-hot")
    assert code_of(e) == "InvalidRequestException"
    with pytest.raises(ClientError) as e:
        iot.create_dynamic_thing_group(thingGroupName="bad", queryString="a:(")
    assert code_of(e) == "InvalidQueryException"

    iot.update_dynamic_thing_group(thingGroupName="too-hot", thingGroupProperties={},
                                   queryString="shadow.reported.temperature<10")
    eventually(members, lambda m: "cold-1" not in m)
    with pytest.raises(ClientError) as e:  # AWS: "This operation does not support dynamic
        iot.delete_thing_group(thingGroupName="too-hot")  # thing groups"
    assert code_of(e) == "InvalidRequestException"
    assert "does not support dynamic thing groups" in str(e.value)
    iot.delete_dynamic_thing_group(thingGroupName="too-hot")
    with pytest.raises(ClientError) as e:
        iot.describe_thing_group(thingGroupName="too-hot")
    assert code_of(e) == "ResourceNotFoundException"


def test_indexing_turned_off_refuses_search(iot: Any, data: Any) -> None:
    iot.create_thing(thingName="off-1")
    _report(data, "off-1", {"temperature": 1})
    iot.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "OFF"})
    with pytest.raises(ClientError) as e:
        iot.search_index(queryString="*")
    assert code_of(e) == "ResourceNotFoundException"
    iot.update_indexing_configuration(
        thingIndexingConfiguration={"thingIndexingMode": "REGISTRY"})
    answer = eventually(lambda: iot.search_index(queryString="thingName:off-1"),
                        lambda a: len(a["things"]) == 1)
    assert "shadow" not in answer["things"][0]  # registry only
