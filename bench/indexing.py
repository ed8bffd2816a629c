"""Fleet indexing: search latency over 10,000 and 100,000 indexed things, in process, as
search-index runs it inside local core (`names.matching`), once scanning every thing and once
with the direct lookup of `thingName:` terms; and the index lag after a shadow update, end to
end against a local core in its own process (update-thing-shadow returns -> search-index
finds the new value), p50/p99."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

from bench.api_client import IOT_DATA_SIGV4, ApiClient
from bench.core_process import CoreProcess
from bench.report import Row
from bench.system import machine_info, utc_now
from fleetsim.localcore.features.indexing.config import ThingIndexing
from fleetsim.localcore.features.indexing.document import ShadowState, ThingEntry, fields
from fleetsim.localcore.features.indexing.evaluate import compile_query
from fleetsim.localcore.features.indexing.names import NameLookup, matching
from fleetsim.runtime import run_async

QUERIES = ("shadow.reported.temperature>20 AND attributes.room_number:*", "thingName:bulky77",
           "thingName:bulky1*", "thingName:bulky9999*",
           "thingName:bulky77 AND shadow.reported.temperature>20")
LAG_THINGS = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indexing-sizes", type=int, nargs="+", default=[10_000, 100_000],
                        metavar="N", help="indexing bench: index sizes (default 10000 100000)")
    parser.add_argument("--indexing-repeats", type=int, default=5, metavar="R",
                        help="indexing bench: searches per query and size (default 5)")
    parser.add_argument("--indexing-lag-samples", type=int, default=300, metavar="N",
                        help="indexing bench: shadow updates timed until searchable "
                             "(default 300; 0 = skip the lag part)")


def _docs(n: int) -> dict[str, dict[str, list[Any]]]:
    rng = random.Random(n)
    config = ThingIndexing(mode="REGISTRY_AND_SHADOW")
    out = {}
    for i in range(n):
        entry = ThingEntry(f"bulky{i}", f"id-{i}", None, {"room_number": str(i)}, 1,
                           shadows={"": ShadowState({"reported": {
                               "temperature": rng.randint(15, 30)}}, {}, 1)})
        out[entry.name] = fields(entry, config, None)
    return out


def _search(args: argparse.Namespace, data: dict[str, Any], rows: list[Row]) -> None:
    for n in args.indexing_sizes:
        docs = _docs(n)
        lookup, no_lookup = NameLookup(docs), NameLookup()  # empty: never consulted
        for query in QUERIES:
            node, predicate = compile_query(query)
            for how, names in (("scan", no_lookup), ("lookup", lookup)):
                times, hits = [], 0
                for _ in range(args.indexing_repeats):
                    t0 = time.perf_counter()
                    if how == "scan":  # the whole index, as before the lookup existed
                        hits = sum(1 for d in docs.values() if predicate(d))
                    else:
                        hits = len(matching(docs, names, node, predicate))
                    times.append((time.perf_counter() - t0) * 1000)
                p50 = statistics.median(times)
                data["search_ms"][f"{n}:{how}:{query}"] = {"p50": p50, "max": max(times),
                                                           "hits": hits}
                rows.append(Row(f"search {n} things ({how}): {query}", round(p50, 3),
                                "ms p50", note=f"{hits} hits"))


async def _lag(samples: int) -> dict[str, Any]:
    with CoreProcess() as core:
        async with ApiClient(core.api_url, concurrency=4) as api:
            await api.call("POST", "/indexing/config", {"thingIndexingConfiguration": {
                "thingIndexingMode": "REGISTRY_AND_SHADOW"}})
            for i in range(LAG_THINGS):
                await api.create_thing(f"lag{i}")
            search = {"queryString": "thingName:lag0", "maxResults": 1}
            deadline = time.monotonic() + 30
            while True:  # the index is built asynchronously (BUILDING), then searchable
                try:
                    if (await api.call("POST", "/indices/search", search))["things"]:
                        break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.05)
            lags, updates, polls = [], [], []
            for k in range(samples):
                thing = f"lag{k % LAG_THINGS}"
                t0 = time.perf_counter()
                await api.call("POST", f"/things/{thing}/shadow",
                               {"state": {"reported": {"seq": k}}},
                               authorization=IOT_DATA_SIGV4)
                t1 = time.perf_counter()
                query = {"queryString": f"thingName:{thing} AND shadow.reported.seq:{k}"}
                n = 0
                while True:
                    n += 1
                    if (await api.call("POST", "/indices/search", query))["things"]:
                        break
                t2 = time.perf_counter()
                updates.append((t1 - t0) * 1000)
                lags.append((t2 - t1) * 1000)
                polls.append(n)

    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)
    return {"samples": samples, "things": LAG_THINGS,
            "lag_ms": {"p50": pct(lags, 50), "p99": pct(lags, 99), "max": round(max(lags), 2)},
            "update_ms": {"p50": pct(updates, 50), "p99": pct(updates, 99)},
            "searches_until_found": {"max": max(polls),
                                     "first_try_share": polls.count(1) / len(polls)},
            "how": "update-thing-shadow returns, then search-index "
                   "`thingName:T AND shadow.reported.seq:K` is repeated at once until it "
                   "finds the thing; lag = that time (one search round trip included)"}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.perf_counter()
    data: dict[str, Any] = {"benchmark": "indexing", "started": utc_now(),
                            "machine": machine_info(), "search_ms": {}}
    rows: list[Row] = []
    _search(args, data, rows)
    if args.indexing_lag_samples > 0:
        lag = data["index_lag"] = run_async(_lag(args.indexing_lag_samples))
        first = lag["searches_until_found"]["first_try_share"]
        rows.append(Row("index lag after a shadow update", lag["lag_ms"]["p50"], "ms p50",
                        note=f"p99 {lag['lag_ms']['p99']} ms, {lag['samples']} updates, "
                             f"found on the first search {first:.0%}"))
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    return data, rows
