"""AWS IoT SQL as the rules engine reads it: the pre-pass, parsing with sqlglot, evaluation
with Undefined semantics, SQL versions, substitution templates."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.localcore.features.rules.sql.compiler import SqlError, compile_sql
from fleetsim.localcore.features.rules.sql.context import MessageContext
from fleetsim.localcore.features.rules.templates import compile_template

# The workshop's JITR rule (`reference/workshop/jitr-topic-rule.json`).
JITR_SQL = ("SELECT * FROM '$aws/events/certificates/registered/#' "
            "WHERE certificateStatus = \"PENDING_ACTIVATION\"")


def ctx(payload: Any, topic: str = "sensors/dev1/data") -> MessageContext:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return MessageContext(topic, raw, "dev1", "cert-id", 1700000000000)


def run(sql: str, payload: Any, topic: str = "sensors/dev1/data",
        version: str = "2016-03-23") -> Any:
    """The rule's output as JSON, or None when the WHERE clause does not match."""
    q = compile_sql(sql, version)
    c = ctx(payload, topic)
    if not q.where_matches(c):
        return None
    out = q.output(c)
    assert out is not None
    return json.loads(out)


def test_workshop_jitr_rule_reads_a_double_quoted_string_as_a_literal() -> None:
    q = compile_sql(JITR_SQL)
    assert q.topic_filter == "$aws/events/certificates/registered/#"
    assert q.version == "2015-10-08"
    event = {"certificateId": "abc", "certificateStatus": "PENDING_ACTIVATION"}
    assert q.where_matches(ctx(event, "$aws/events/certificates/registered/ca1"))
    assert not q.where_matches(ctx({**event, "certificateStatus": "ACTIVE"}))


def test_field_lists_nested_fields_aliases_and_functions() -> None:
    out = run("SELECT a.b.c AS deep, temp, topic() AS t, topic(2) AS device, clientid() AS cid,"
              " principal() AS p, timestamp() AS ts, newuuid() AS id "
              "FROM 'sensors/+/data'", {"a": {"b": {"c": 7}}, "temp": 21.5, "other": 1})
    assert {k: v for k, v in out.items() if k != "id"} == {
        "deep": 7, "temp": 21.5, "t": "sensors/dev1/data", "device": "dev1", "cid": "dev1",
        "p": "cert-id", "ts": 1700000000000}
    assert len(out["id"]) == 36


def test_select_star_and_more() -> None:
    assert run("SELECT *, topic(2) AS device FROM 'sensors/#'", {"x": 1}) == {
        "x": 1, "device": "dev1"}


@pytest.mark.parametrize(("where", "matches"), [
    ("temp > 20", True), ("temp > 30", False), ("temp >= 25 AND status = 'on'", True),
    ("temp < 20 OR status = \"on\"", True), ("NOT temp < 20", True),
    ("status <> 'off'", True), ("flag = true", True), ("flag = false", False),
    ("count = 3", True), ("count = 3.0", True), ("name = 'x' AND temp > 1", False),
    ("temp + 5 = 30", True), ("count % 2 = 1", True), ("status IN ('on', 'idle')", True),
])
def test_where_comparisons_and_logic(where: str, matches: bool) -> None:
    payload = {"temp": 25, "status": "on", "flag": True, "count": 3, "name": "y"}
    assert (run(f"SELECT * FROM 'sensors/#' WHERE {where}", payload) is not None) == matches


@pytest.mark.parametrize("where", [
    "missing = 1", "missing <> 1", "NOT missing = 1", "missing > 1", "a.b.c = 1",
    "missing = 1 OR missing = 2", "temp > 'warm'",
])
def test_a_missing_field_makes_the_comparison_undefined_and_the_where_false(where: str) -> None:
    assert run(f"SELECT * FROM 'sensors/#' WHERE {where}", {"temp": 25, "a": 1}) is None


def test_undefined_fields_are_left_out_of_the_output() -> None:
    assert run("SELECT temp, missing, a.nope AS n FROM 'sensors/#'", {"temp": 1, "a": {}}) == {
        "temp": 1}


def test_binary_payloads_pass_through_select_star_and_fields_are_undefined() -> None:
    raw = b"\x00\xffnot json"
    q = compile_sql("SELECT * FROM 'sensors/#'")
    assert q.output(ctx(raw)) == raw
    assert not compile_sql("SELECT * FROM 'sensors/#' WHERE device_type = 'x'").where_matches(
        ctx(raw))
    out = compile_sql("SELECT encode(*, 'base64') AS data FROM 'a'", "2016-03-23").output(ctx(raw))
    assert out is not None and json.loads(out) == {"data": "AP9ub3QganNvbg=="}


def test_nested_object_queries_and_select_value_need_2016_03_23() -> None:
    payload = {"e": [{"n": "temperature", "v": 22.5}, {"n": "light", "v": 135}]}
    assert run("SELECT (SELECT VALUE n FROM e) AS sensors FROM 'my/topic'", payload,
               "my/topic") == {"sensors": ["temperature", "light"]}
    assert run("SELECT get((SELECT v FROM e WHERE n = 'temperature'), 0).v AS temperature "
               "FROM 'my/topic'", payload, "my/topic") == {"temperature": 22.5}
    assert run("SELECT VALUE e FROM 'my/topic'", payload, "my/topic") == payload["e"]
    for sql in ("SELECT VALUE e FROM 'my/topic'", "SELECT (SELECT v FROM e) AS x FROM 't'",
                "SELECT encode(*, 'base64') AS d FROM 't'"):
        with pytest.raises(SqlError, match="2016-03-23"):
            compile_sql(sql, "2015-10-08")


@pytest.mark.parametrize(("sql", "says"), [
    ("SELEC * FROM 'a'", "Syntax error"),
    ("SELECT * FROM 'a' WHERE", "Syntax error"),
    ("SELECT * FROM a/b", "quoted topic filter"),
    ("SELECT *", "no FROM clause"),
    ("SELECT * FROM 'a/#/b'", "'#' must be a whole last level"),
    ("SELECT * FROM 'a/b+'", "'+' must be a whole level"),
    ("SELECT nosuch(x) FROM 'a'", "unknown function nosuch()"),
    ("SELECT topic(1, 2) FROM 'a'", "topic() takes 0 to 1"),
    ("SELECT * FROM 'a' ORDER BY x", "no ORDER clause"),
    ("SELECT * FROM 'a' WHERE x = 'unterminated", "unterminated"),
])
def test_statements_the_engine_cannot_read_are_refused_with_a_reason(sql: str, says: str) -> None:
    with pytest.raises(SqlError, match=re.escape(says)):
        compile_sql(sql)


def test_substitution_templates_read_the_original_message() -> None:
    t = compile_template("out/${topic(2)}/${temp}/${missing}x/${'}'}")
    assert t.render(ctx({"temp": 21})) == "out/dev1/21/x/}"
    assert compile_template("plain").render(ctx({})) == "plain"
    with pytest.raises(SqlError):
        compile_template("a/${topic(2}")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False,
                                                                       allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=4),
    max_leaves=20)

RULES = [compile_sql(s, "2016-03-23") for s in (
    "SELECT *, topic(2) AS d FROM '#'",
    "SELECT a.b AS x, c + 1 AS y, lower(s) AS l FROM '#' WHERE a.b > 1 OR NOT c = 'x'",
    "SELECT (SELECT VALUE n FROM e WHERE v > 1) AS s FROM '#' WHERE e <> 3",
    "SELECT get(e, 0) AS first, concat(s, 'x') AS c FROM '#' WHERE s IN ('a', 1, true)",
)]


@settings(max_examples=300, deadline=None)
@given(payload=json_values | st.binary(max_size=40))
def test_any_payload_evaluates_without_raising(payload: Any) -> None:
    c = ctx(payload)
    for q in RULES:
        if q.where_matches(c):
            out = q.output(c)
            assert out is None or isinstance(out, bytes)


@settings(max_examples=300, deadline=None)
@given(sql=st.text(alphabet=st.sampled_from(list("SELCTFROMWHEAND *'\"()=<>.,+#/ab01")),
                   max_size=60))
def test_any_statement_compiles_or_is_refused_with_sql_error(sql: str) -> None:
    try:
        compile_sql(sql)
    except SqlError as e:
        assert str(e)
