"""Fleet indexing's query language (parser and evaluator), on AWS's syntax ("Query syntax",
AWS IoT developer guide), with hypothesis for wide inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.localcore.features.indexing import aggregate
from fleetsim.localcore.features.indexing.evaluate import matches
from fleetsim.localcore.features.indexing.query import (
    MAX_TERMS,
    And,
    Not,
    Or,
    QueryError,
    Term,
    normalize,
    parse,
)

DOC = {"thingName": ["Bulky7"], "thingId": ["id-1"], "thingTypeName": ["Sensor"],
       "thingGroupNames": ["building-one", "floor-2"], "attributes.room_number": ["107"],
       "attributes.model": ["TV-Plasma"], "shadow.reported.temperature": [21],
       "shadow.desired.mode": ["eco"], "shadow.name.cfg.reported.fw": ["1.2.0"],
       "connectivity.connected": [True], "connectivity.timestamp": [1700000000000],
       "connectivity.disconnectReason": ["CLIENT_INITIATED_DISCONNECT"]}


@pytest.mark.parametrize(("query", "expected"), [
    ("thingName:Bulky7", True),
    ("thingName:bulky7", True),  # values are case-insensitive
    ("thingname:Bulky7", False),  # field names are case-sensitive
    ("thingName:bulky*", True),
    ("thingName:bul?y7", True),
    ("thingName:*y7", True),  # one leading wildcard is allowed
    ("thingId:id-1", True),
    ("thingTypeName:sensor", True),
    ("thingGroupNames:floor-2", True),
    ("thingGroupNames:floor-3", False),
    ("attributes.room_number:*", True),
    ("attributes.floor:*", False),
    ("attributes.room_number:[100 TO 107]", True),
    ("attributes.room_number:[100 TO 107}", False),
    ("attributes.room_number:{106 TO *]", True),
    ("shadow.reported.temperature>20", True),
    ("shadow.reported.temperature>21", False),
    ("shadow.reported.temperature>=21", True),
    ("shadow.reported.temperature<21", False),
    ("shadow.reported.temperature<=21", True),
    ("shadow.reported.temperature:>20", True),
    ("shadow.reported.temperature>20 AND attributes.room_number:*", True),
    ("shadow.reported.temperature>30 OR shadow.desired.mode:ECO", True),
    ("shadow.reported.temperature>30 shadow.desired.mode:eco", False),  # AND by default
    ("NOT shadow.desired.mode:eco", False),
    ("-shadow.desired.mode:eco", False),
    ("attributes.model:(tv* AND -plasma)", True),  # keyword value: TV-Plasma is one term
    ("attributes.model:(tv* AND -tv-plasma)", False),
    ("(thingName:x OR thingName:bulky7) AND connectivity.connected:true", True),
    ("connectivity.connected:false", False),
    ("connectivity.timestamp>1600000000000", True),
    ("connectivity.disconnectReason:client_initiated_disconnect", True),
    ("shadow.name.cfg.reported.fw:1.2.0", True),
    ('shadow.desired.mode:"eco"', True),
    ("bulky7", True),  # no field: every field
    ("*", True),
    ("shadow.reported:*", True),
])
def test_queries(query: str, expected: bool) -> None:
    assert matches(query, DOC) is expected


def test_comparisons_without_colon_become_luqum_open_ranges() -> None:
    assert normalize("a.b>20 AND c<=x") == "a.b:>20 AND c:<=x"
    assert normalize('x:"a>b" AND y>1') == 'x:"a>b" AND y:>1'  # quoted text untouched
    assert parse("t>2") == Term("t", "range", low="2", include_low=False)
    assert parse("a:1 b:2") == And((Term("a", "match", "1"), Term("b", "match", "2")))
    assert parse("a:1 OR NOT b:2") == Or((Term("a", "match", "1"),
                                          Not(Term("b", "match", "2"))))


@pytest.mark.parametrize("query", [
    "", "thingName:(", "thingName:a~1", "thingName:a^2", "thingName:/a.*/", 'x:"a b"~2',
    "A:0^.",  # a boost that is no number (decimal's InvalidOperation inside luqum)
    "thingName:*a OR attributes.x:*b",  # leading wildcards in two terms
    " OR ".join(f"thingName:t{i}" for i in range(MAX_TERMS + 1)),
    "thingName:*a AND " + "x" * 100,  # a leading wildcard in a query over 100 characters
])
def test_refused_queries(query: str) -> None:
    with pytest.raises(QueryError):
        parse(query)


def test_twelve_terms_are_allowed() -> None:
    parse(" OR ".join(f"thingName:t{i}" for i in range(MAX_TERMS)))


# In capitals, AND, OR and NOT are operators in Lucene syntax, as in AWS's; the test swaps
# the case of a name, so a name spelled like one of them would not be a plain term.
OPERATORS = {"AND", "OR", "NOT"}
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda name: name.upper() not in OPERATORS)
numbers = st.integers(min_value=-10_000, max_value=10_000)


@settings(max_examples=200, deadline=None)
@given(names, names)
def test_exact_match_is_case_insensitive_and_exact(name: str, other: str) -> None:
    doc = {"thingName": [name]}
    assert matches(f"thingName:{name.swapcase()}", doc)
    assert matches(f"thingName:{other}", doc) is (other.casefold() == name.casefold())


@settings(max_examples=200, deadline=None)
@given(numbers, numbers, numbers, st.booleans(), st.booleans())
def test_ranges_agree_with_python(value: int, low: int, high: int, inc_low: bool,
                                  inc_high: bool) -> None:
    doc = {"shadow.reported.t": [value]}
    query = (f"shadow.reported.t:{'[' if inc_low else '{'}{low} TO {high}"
             f"{']' if inc_high else '}'}")
    expected = (low < value or (inc_low and low == value)) and \
        (value < high or (inc_high and value == high))
    assert matches(query, doc) is expected
    assert matches(f"shadow.reported.t>{low}", doc) is (value > low)
    assert matches(f"shadow.reported.t<={high}", doc) is (value <= high)


@settings(max_examples=200, deadline=None)
@given(names, st.text(max_size=40))
def test_any_text_parses_or_is_refused_with_a_query_error(name: str, junk: str) -> None:
    try:
        node = parse(f"{name}:{junk}" if junk.strip() else name)
    except QueryError as e:
        assert str(e)
    else:
        matches(f"{name}:{junk}" if junk.strip() else name, {name: ["x"]})
        assert node is not None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50))
def test_statistics_and_percentiles(values: list[float]) -> None:
    stats = aggregate.statistics(values, "Number")
    assert stats["count"] == len(values)
    assert stats["minimum"] == min(values) and stats["maximum"] == max(values)
    assert stats["minimum"] - 1e-6 <= stats["average"] <= stats["maximum"] + 1e-6
    pct = aggregate.percentiles(values, [0, 50, 100])
    assert (pct[0]["value"], pct[2]["value"]) == (min(values), max(values))
    assert aggregate.statistics(["a", "b"], "String") == {"count": 2}
