"""Direct lookup of `thingName:` terms (`indexing/names.py`): a query answered from its
candidates returns exactly what scanning every document returns, for wide inputs."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.localcore.features.indexing.evaluate import compile_query
from fleetsim.localcore.features.indexing.names import NameLookup, candidates, matching

NAMES = st.text(alphabet="abAB1ß-_", min_size=1, max_size=6)


def _docs(names: list[str]) -> dict[str, dict[str, list[Any]]]:
    return {n: {"thingName": [n], "attributes.room": [str(i % 3)]}
            for i, n in enumerate(names)}


def _scan(docs: dict[str, dict[str, list[Any]]], query: str) -> set[str]:
    predicate = compile_query(query)[1]
    return {n for n, d in docs.items() if predicate(d)}


def test_exact_and_prefix_terms_have_candidates_other_terms_do_not() -> None:
    lookup = NameLookup(["Bulky7", "bulky70", "other"])
    assert candidates(compile_query("thingName:BULKY7")[0], lookup) == {"Bulky7"}
    assert candidates(compile_query("thingName:bulky7*")[0], lookup) == {"Bulky7", "bulky70"}
    assert candidates(compile_query("thingName:bulky7 AND attributes.room:1")[0],
                      lookup) == {"Bulky7"}
    assert candidates(compile_query("thingName:other OR thingName:bulky7")[0],
                      lookup) == {"Bulky7", "other"}
    for scan in ("attributes.room:1", "thingName:*7", "thingName:bul?y7",
                 "NOT thingName:other", "thingName:other OR attributes.room:1",
                 "thingName:[a TO c]"):
        assert candidates(compile_query(scan)[0], lookup) is None, scan


def test_lookup_follows_names_that_come_and_go() -> None:
    lookup = NameLookup(["a1", "A1"])
    assert lookup.exact("a1") == {"a1", "A1"}
    lookup.discard("A1")
    lookup.discard("missing")
    assert lookup.prefix("a") == {"a1"}
    lookup.add("a2")
    assert lookup.prefix("A") == {"a1", "a2"} and len(lookup) == 2


@settings(max_examples=200, deadline=None)
@given(names=st.lists(NAMES, min_size=1, max_size=12, unique=True), probe=NAMES,
       prefix=st.booleans(), room=st.sampled_from(["", " AND attributes.room:1",
                                                   " OR thingName:a*"]),
       removed=st.integers(min_value=0, max_value=11))
def test_lookup_answers_as_a_full_scan(names: list[str], probe: str, prefix: bool, room: str,
                                       removed: int) -> None:
    lookup = NameLookup(names)
    docs = _docs(names)
    gone = names[removed % len(names)]  # a thing deleted after the lookup was built
    lookup.discard(gone)
    del docs[gone]
    value = probe.replace("-", "\\-")  # luqum reads a leading - as NOT
    query = f"thingName:{value}{'*' if prefix else ''}{room}"
    node, predicate = compile_query(query)
    assert set(matching(docs, lookup, node, predicate)) == _scan(docs, query)
