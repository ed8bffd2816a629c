"""Malformed policy documents: create-policy refuses them with AWS's answer, and the evaluator
never raises on any document, whatever the state holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.localcore.policy import CompiledPolicies, RequestContext
from fleetsim.localcore.policy_document import PolicyDocumentError, parse_policy_document
from fleetsim.localcore.principal import Principal, ThingInfo


def _with_condition(condition: Any) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "iot:Connect", "Resource": "*", "Condition": condition}]})


@pytest.mark.parametrize("condition", [
    "x", {"StringEquals": "x"}, 3, None, [], {}, {"StringEquals": {}},
    {"StringEquals": {"iot:ClientId": []}}, {"StringEquals": {"iot:ClientId": None}},
    {"StringEquals": {"iot:ClientId": {"a": "b"}}}, {"StringEquals": {"iot:ClientId": [["a"]]}},
    {"StringEquals": ["iot:ClientId"]},
])
def test_malformed_condition_is_refused(condition: Any) -> None:
    with pytest.raises(PolicyDocumentError, match=r"^Policy document is Malformed: "
                                                  r"Statement\[0\]\.Condition"):
        parse_policy_document(_with_condition(condition))


@pytest.mark.parametrize("condition", [
    {"StringEquals": {"iot:ClientId": "dev-1"}},
    {"StringLike": {"iot:ClientId": ["dev-*", "x"]}, "Bool": {"aws:SecureTransport": True}},
    {"NumericLessThan": {"aws:EpochTime": 12}},
])
def test_well_formed_condition_is_accepted(condition: Any) -> None:
    parse_policy_document(_with_condition(condition))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)
_keys = st.sampled_from(["Effect", "Action", "NotAction", "Resource", "NotResource",
                         "Condition", "Statement"])
_operators = st.sampled_from(["StringEquals", "StringLike", "StringNotLike", "Bool",
                              "ForAllValues:StringEquals", "StringEqualsIfExists", "Nope"])
_condition = st.dictionaries(_operators, st.dictionaries(
    st.sampled_from(["iot:ClientId", "iot:Connection.Thing.ThingName",
                     "iot:ConnectAttributes", "x"]), _json, max_size=3) | _json, max_size=3)
_statement = st.fixed_dictionaries({}, optional={
    "Effect": st.sampled_from(["Allow", "Deny"]) | _json,
    "Action": st.sampled_from(["iot:*", "iot:Connect", "${iot:ClientId}"]) | _json,
    "NotAction": _json, "Resource": st.sampled_from(["*", "${iot:ClientId}"]) | _json,
    "NotResource": _json, "Condition": _condition | _json}) | st.dictionaries(_keys, _json)
_document = st.fixed_dictionaries({"Statement": st.lists(_statement, max_size=3) | _statement
                                   | _json}) | _json


@settings(max_examples=300, deadline=None)
@given(st.lists(_document, max_size=3), st.text(max_size=10), st.text(max_size=20),
       st.booleans())
def test_evaluator_never_raises(documents: list[Any], client_id: str, resource: str,
                                with_thing: bool) -> None:
    things = (ThingInfo("dev-1", "t", {"a": "b"}),) if with_thing else ()
    principal = Principal("c" * 64, "arn:cert", "ACTIVE", "cn", things=things)
    context = RequestContext(client_id, principal, connect_attributes=("LastWill",))
    compiled = CompiledPolicies(documents, context)
    for action in ("iot:Connect", "iot:Publish", "iot:Subscribe"):
        compiled.evaluate(action, resource)


def test_document_stored_before_the_check_is_still_evaluated() -> None:
    from fleetsim.localcore.features.policies.service import _stored_document

    text = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*", "Condition": "x"},
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}]})
    document = _stored_document(text)  # what create-policy refuses today, read from the state
    principal = Principal("c" * 64, "arn:cert", "ACTIVE", "cn")
    compiled = CompiledPolicies([document], RequestContext("dev-1", principal))
    assert not compiled.evaluate("iot:Connect", "arn:client/dev-1").allowed
    assert compiled.evaluate("iot:Publish", "arn:topic/t").allowed
    assert _stored_document("{not json") == {"Statement": []}
