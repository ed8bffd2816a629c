"""Fleet indexing: search latency over 10,000 and 100,000 indexed things (the index's own
search path: the compiled query over every thing's fields, in process, as search-index runs
it inside local core). Index lag after a shadow update over the API is measured by the
integration tests' polling only (not yet here)."""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from bench.report import Row
from bench.system import machine_info, utc_now
from fleetsim.localcore.features.indexing.config import ThingIndexing
from fleetsim.localcore.features.indexing.document import ShadowState, ThingEntry, fields
from fleetsim.localcore.features.indexing.evaluate import compile_query

QUERIES = ("shadow.reported.temperature>20 AND attributes.room_number:*", "thingName:bulky77",
           "thingName:bulky1*")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indexing-sizes", type=int, nargs="+", default=[10_000, 100_000],
                        metavar="N", help="indexing bench: index sizes (default 10000 100000)")
    parser.add_argument("--indexing-repeats", type=int, default=5, metavar="R",
                        help="indexing bench: searches per query and size (default 5)")


def _docs(n: int) -> list[dict[str, list[Any]]]:
    rng = random.Random(n)
    config = ThingIndexing(mode="REGISTRY_AND_SHADOW")
    out = []
    for i in range(n):
        entry = ThingEntry(f"bulky{i}", f"id-{i}", None, {"room_number": str(i)}, 1,
                           shadows={"": ShadowState({"reported": {
                               "temperature": rng.randint(15, 30)}}, {}, 1)})
        out.append(fields(entry, config, None))
    return out


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    started = time.perf_counter()
    data: dict[str, Any] = {"benchmark": "indexing", "started": utc_now(),
                            "machine": machine_info(), "search_ms": {}}
    rows: list[Row] = []
    for n in args.indexing_sizes:
        docs = _docs(n)
        for query in QUERIES:
            predicate = compile_query(query)[1]
            times = []
            for _ in range(args.indexing_repeats):
                t0 = time.perf_counter()
                hits = sum(1 for d in docs if predicate(d))
                times.append((time.perf_counter() - t0) * 1000)
            p50 = statistics.median(times)
            data["search_ms"][f"{n}:{query}"] = {"p50": p50, "max": max(times), "hits": hits}
            rows.append(Row(f"search {n} things: {query}", round(p50, 1), "ms p50",
                            note=f"{hits} hits"))
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    return data, rows
