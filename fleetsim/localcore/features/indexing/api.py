"""HTTP handlers of fleet indexing: the configuration, indices, search and aggregations."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.indexing.service import IndexingService

operations = Operations()
iot = operations.iot
I = Call[IndexingService]  # noqa: E741

# QueryMaxResults is 1..500 (botocore's model); without maxResults a page holds the most.
MAX_RESULTS = 500


@iot("GetIndexingConfiguration")
def get_indexing_configuration(call: I, p: dict[str, Any]) -> dict[str, Any]:
    thing, group = call.service.configuration(call.scope)
    return {"thingIndexingConfiguration": thing.wire(),
            "thingGroupIndexingConfiguration": group.wire()}


@iot("UpdateIndexingConfiguration")
def update_indexing_configuration(call: I, p: dict[str, Any]) -> None:
    call.service.update_configuration(call.scope, p.get("thingIndexingConfiguration"),
                                      p.get("thingGroupIndexingConfiguration"))


@iot("SearchIndex")
def search_index(call: I, p: dict[str, Any]) -> dict[str, Any]:
    found, more = call.service.search(call.scope, p.get("indexName"), p["queryString"],
                                      paging.decode_int(p.get("nextToken")),
                                      paging.page_size(p, default=MAX_RESULTS))
    token = paging.next_token(more)
    return found | ({"nextToken": token} if token else {})


@iot("GetStatistics")
def get_statistics(call: I, p: dict[str, Any]) -> dict[str, Any]:
    return {"statistics": call.service.statistics(call.scope, p.get("indexName"),
                                                  p["queryString"], p.get("aggregationField"))}


@iot("GetCardinality")
def get_cardinality(call: I, p: dict[str, Any]) -> dict[str, Any]:
    return {"cardinality": call.service.cardinality(call.scope, p.get("indexName"),
                                                    p["queryString"], p.get("aggregationField"))}


@iot("GetPercentiles")
def get_percentiles(call: I, p: dict[str, Any]) -> dict[str, Any]:
    return {"percentiles": call.service.percentiles(call.scope, p.get("indexName"),
                                                    p["queryString"], p.get("aggregationField"),
                                                    p.get("percents"))}


@iot("DescribeIndex")
def describe_index(call: I, p: dict[str, Any]) -> dict[str, Any]:
    return call.service.describe_index(call.scope, p["indexName"])


@iot("ListIndices")
def list_indices(call: I, p: dict[str, Any]) -> dict[str, Any]:
    page, token = paging.slice_page(call.service.index_names(call.scope), p.get("nextToken"),
                                    paging.page_size(p))
    return paging.listing("indexNames", page, "nextToken", token)
