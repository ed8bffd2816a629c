"""Device Shadow semantics: the AWS Developer Guide's examples replayed, edge cases, properties."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.localcore.features.shadows.document import (
    MAX_STATE_BYTES,
    VERSION_RETENTION_SECONDS,
    ShadowDocument,
    ShadowError,
    apply_update,
    base_version,
    compute_delta,
    delete_payload,
    get_payload,
    json_equal,
    state_size,
)


def req(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def update(current: ShadowDocument | None, doc: Any, now: int = 100, base: int = 0):
    return apply_update(current, req(doc), now, base)


def error_of(current: ShadowDocument | None, payload: bytes, base: int = 0) -> ShadowError:
    with pytest.raises(ShadowError) as info:
        apply_update(current, payload, 100, base)
    return info.value


# --- The "Simulating Device Shadow service communications" walk-through, message by message ---

T_CREATE, T_DESIRE, T_REPORT = 1591140517, 1591141596, 1591142747
RGB_META = lambda t: [{"timestamp": t}] * 3  # noqa: E731


def test_walkthrough_create_desire_report():
    # the shadow was at version 2 before (the page's get shows version 3 after the create)
    created = update(None, {"state": {"reported": {"ID": "SmartLamp21",
                                                   "ColorRGB": [128, 128, 128]}},
                            "clientToken": "426bfd96-e720-46d3-95cd-014e3ef12bb6"},
                     T_CREATE, base=2)
    assert get_payload(created.document, T_CREATE, "426bfd96-e720-46d3-95cd-014e3ef12bb6") == {
        "state": {"reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}},
        "metadata": {"reported": {"ID": {"timestamp": T_CREATE},
                                  "ColorRGB": RGB_META(T_CREATE)}},
        "version": 3, "timestamp": T_CREATE,
        "clientToken": "426bfd96-e720-46d3-95cd-014e3ef12bb6"}
    assert created.delta is None

    desired = update(created.document, {"state": {"desired": {"ColorRGB": [255, 255, 0]}},
                                        "clientToken": "21b21b21-bfd2-4279-8c65-e2f697ff4fab"},
                     T_DESIRE)
    assert desired.accepted == {
        "state": {"desired": {"ColorRGB": [255, 255, 0]}},
        "metadata": {"desired": {"ColorRGB": RGB_META(T_DESIRE)}},
        "version": 4, "timestamp": T_DESIRE,
        "clientToken": "21b21b21-bfd2-4279-8c65-e2f697ff4fab"}
    assert desired.delta == {
        "version": 4, "timestamp": T_DESIRE, "state": {"ColorRGB": [255, 255, 0]},
        "metadata": {"ColorRGB": RGB_META(T_DESIRE)},
        "clientToken": "21b21b21-bfd2-4279-8c65-e2f697ff4fab"}

    reported = update(desired.document, {"state": {"reported": {"ColorRGB": [255, 255, 0]}},
                                         "clientToken": "a4dc2227-9213-4c6a-a6a5-053304f60258"},
                      T_REPORT)
    assert reported.accepted == {
        "state": {"reported": {"ColorRGB": [255, 255, 0]}},
        "metadata": {"reported": {"ColorRGB": RGB_META(T_REPORT)}},
        "version": 5, "timestamp": T_REPORT,
        "clientToken": "a4dc2227-9213-4c6a-a6a5-053304f60258"}
    assert reported.delta is None
    assert reported.documents == {
        "previous": {
            "state": {"desired": {"ColorRGB": [255, 255, 0]},
                      "reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}},
            "metadata": {"desired": {"ColorRGB": RGB_META(T_DESIRE)},
                         "reported": {"ID": {"timestamp": T_CREATE},
                                      "ColorRGB": RGB_META(T_CREATE)}},
            "version": 4},
        "current": {
            "state": {"desired": {"ColorRGB": [255, 255, 0]},
                      "reported": {"ID": "SmartLamp21", "ColorRGB": [255, 255, 0]}},
            "metadata": {"desired": {"ColorRGB": RGB_META(T_DESIRE)},
                         "reported": {"ID": {"timestamp": T_CREATE},
                                      "ColorRGB": RGB_META(T_REPORT)}},
            "version": 5},
        "timestamp": T_REPORT, "clientToken": "a4dc2227-9213-4c6a-a6a5-053304f60258"}
    # the page's final get, made later
    assert get_payload(reported.document, 1591143269) == {
        "state": reported.documents["current"]["state"],
        "metadata": reported.documents["current"]["metadata"],
        "version": 5, "timestamp": 1591143269}


# --- "Device Shadow service documents" ---


def test_delta_state_example():
    doc = update(None, {"state": {"desired": {"color": "RED", "state": "STOP"},
                                  "reported": {"color": "GREEN", "engine": "ON"}}}, 12345)
    got = get_payload(doc.document, 123456789)
    assert got["state"]["delta"] == {"color": "RED", "state": "STOP"}
    assert got["metadata"]["delta"] == {"color": {"timestamp": 12345},
                                        "state": {"timestamp": 12345}}


def test_nested_delta_keeps_path_to_root():
    desired = {"lights": {"color": {"r": 255, "g": 255, "b": 255}}}
    reported = {"lights": {"color": {"r": 255, "g": 0, "b": 255}}}
    assert compute_delta(desired, reported) == {"lights": {"color": {"g": 255}}}


def test_arrays_replace_whole_and_compare_whole():
    first = update(None, {"state": {"desired": {"colors": ["RED", "GREEN", "BLUE"]}}})
    second = update(first.document, {"state": {"desired": {"colors": ["RED"]}}})
    assert second.document.desired == {"colors": ["RED"]}
    assert compute_delta({"a": [1, 2]}, {"a": [1]}) == {"a": [1, 2]}
    assert compute_delta({"a": [1, 2]}, {"a": [1, 2]}) == {}


def test_array_with_null_is_rejected():
    err = error_of(None, req({"state": {"desired": {"colors": [None, "RED", "GREEN"]}}}))
    assert err.code == 400


def test_desired_null_removes_section():
    first = update(None, {"state": {"desired": {"color": "RED"}, "reported": {"color": "RED"}}})
    second = update(first.document, {"state": {"reported": {"color": "red"}, "desired": None}})
    assert second.document.desired is None
    assert second.document.state() == {"reported": {"color": "red"}}
    assert "delta" not in get_payload(second.document, 1)["state"]


def test_null_removes_a_field_and_emptied_objects():
    first = update(None, {"state": {"desired": {"engine": "ON", "lights": {"on": True}}}})
    second = update(first.document, {"state": {"desired": {"engine": None}}})
    assert second.document.desired == {"lights": {"on": True}}
    assert second.accepted["state"] == {"desired": {"engine": None}}
    third = update(second.document, {"state": {"desired": {"lights": {"on": None}}}})
    assert third.document.desired is None and third.document.metadata_desired is None


def test_state_null_clears_but_keeps_the_shadow():
    # "Interacting with shadows": setting the state to null does not delete the shadow
    first = update(None, {"state": {"reported": {"a": 1}}})
    second = update(first.document, {"state": None})
    assert second.document.state() == {} and second.document.version == 2


def test_version_conflict_and_match():
    # "Interacting with shadows" (Optimistic locking)
    doc = update(None, {"state": {"desired": {"colors": ["RED", "GREEN", "BLUE"]}}}, base=9)
    assert doc.document.version == 10
    err = error_of(doc.document, req({"state": {"desired": {"colors": ["BLUE"]}}, "version": 9,
                                      "clientToken": "426bfd96-e720-46d3-95cd-014e3ef12bb6"}))
    assert (err.code, err.message, err.aws_code) == (409, "Version conflict", "ConflictException")
    assert err.payload(7) == {"code": 409, "message": "Version conflict", "timestamp": 7,
                              "clientToken": "426bfd96-e720-46d3-95cd-014e3ef12bb6"}
    ok = update(doc.document, {"state": {"desired": {"colors": ["BLUE"]}}, "version": 10})
    assert ok.document.version == 11 and ok.document.desired == {"colors": ["BLUE"]}


def test_message_order_example_deltas():
    # "AWS IoT Device Shadow service" (Message order)
    doc = update(None, {"state": {"reported": {"color": "blue"}}}, 123456776, base=8).document
    r1 = update(doc, {"state": {"desired": {"color": "RED"}}}, 123456777)
    r2 = update(r1.document, {"state": {"desired": {"color": "GREEN"}}}, 123456778)
    assert (r1.delta["state"], r1.delta["version"]) == ({"color": "RED"}, 10)
    assert (r2.delta["state"], r2.delta["version"]) == ({"color": "GREEN"}, 11)


@pytest.mark.parametrize(("payload", "code", "message"), [
    (b"{not json", 400, "Invalid JSON"),
    (b"", 400, "Invalid JSON"),
    (b'{"state": {"desired": {"a": NaN}}}', 400, "Invalid JSON"),
    (b'{"state": {"desired": {"a": 1e999}}}', 400, "Invalid JSON"),
    (b'{"state": {"desired": {"a": "\\ud800"}}}', 400, "Invalid JSON"),
    (b"[1, 2]", 400, "Invalid JSON"),
    (b"\xff\xfe", 415, "Unsupported documented encoding; supported encoding is UTF-8"),
    (b'{"desired": {}}', 400, "Missing required node: state"),
    (b'{"state": 5}', 400, "State node must be an object"),
    (b'{"state": {"desired": 5}}', 400, "Desired node must be an object"),
    (b'{"state": {"reported": [1]}}', 400, "Reported node must be an object"),
    (b'{"state": {"delta": {"a": 1}}}', 400, "State contains an invalid node"),
    (b'{"state": {}, "version": "3"}', 400, "Invalid version"),
    (b'{"state": {}, "version": 3.5}', 400, "Invalid version"),
    (b'{"state": {}, "version": true}', 400, "Invalid version"),
    (b'{"state": {}, "clientToken": 5}', 400, "Invalid clientToken"),
])
def test_request_errors(payload, code, message):
    err = error_of(None, payload)
    assert (err.code, err.message) == (code, message)


def test_client_token_64_bytes_ok_65_rejected():
    assert update(None, {"state": {}, "clientToken": "x" * 64}).accepted["clientToken"] == "x" * 64
    err = error_of(None, req({"state": {}, "clientToken": "x" * 65}))
    assert (err.code, err.message, err.client_token) == (400, "Invalid clientToken", None)
    # bytes, not characters: 22 three-byte characters are 66 bytes
    assert error_of(None, req({"state": {}, "clientToken": "€" * 22})).code == 400


def test_error_echoes_valid_client_token():
    err = error_of(None, req({"state": {"desired": 1}, "clientToken": "tok"}))
    assert err.payload(5) == {"code": 400, "message": "Desired node must be an object",
                              "timestamp": 5, "clientToken": "tok"}


def test_fields_outside_state_are_ignored():
    r = update(None, {"state": {"reported": {"a": 1}}, "metadata": {"x": 1}, "other": [1]})
    assert r.document.state() == {"reported": {"a": 1}}


def nested(levels: int) -> dict:
    value: Any = 1
    for i in range(levels, 0, -1):
        value = {f"l{i}": value}
    return value


def test_depth_six_levels_allowed_seven_rejected():
    update(None, {"state": {"desired": nested(6)}})
    err = error_of(None, req({"state": {"reported": nested(7)}}))
    assert (err.code, err.message) == (
        400, "JSON contains too many levels of nesting; maximum is 6")


def test_depth_counts_empty_object_as_no_level():
    # the quota page's example shape: keys one..five with {} at the bottom is 5 levels
    value = {"one": {"two": {"three": {"four": {"five": {"six": {}}}}}}}
    update(None, {"state": {"desired": value}})


def padded(total: int) -> dict:
    """A desired section whose state_size is exactly `total` bytes."""
    overhead = state_size({"k": ""}, None)
    return {"k": "x" * (total - overhead)}


def test_size_limit_boundary_and_metadata_not_counted():
    exact = padded(MAX_STATE_BYTES)
    assert state_size(exact, None) == MAX_STATE_BYTES
    ok = update(None, {"state": {"desired": exact}})
    assert len(ok.document.to_storage()) > MAX_STATE_BYTES  # metadata on top is fine
    err = error_of(None, req({"state": {"desired": padded(MAX_STATE_BYTES + 1)}}))
    assert (err.code, err.message, err.aws_code) == (
        413, "The payload exceeds the maximum size allowed", "RequestEntityTooLargeException")


def test_size_limit_counts_the_merged_document():
    half = {"a": "x" * 4100}
    first = update(None, {"state": {"desired": half}})
    err = error_of(first.document, req({"state": {"reported": {"b": "y" * 4100}}}))
    assert err.code == 413


def test_update_with_only_reported_sends_no_delta_message():
    first = update(None, {"state": {"desired": {"a": 1, "b": 2}}})
    second = update(first.document, {"state": {"reported": {"a": 1}}})
    assert second.delta is None and second.document.delta() == {"b": 2}


def test_created_shadow_documents_previous_is_null():
    assert update(None, {"state": {"reported": {"a": 1}}}).documents["previous"] is None


def test_object_replaces_scalar_and_scalar_replaces_object():
    first = update(None, {"state": {"reported": {"a": 1}}})
    second = update(first.document, {"state": {"reported": {"a": {"b": 2}}}})
    assert second.document.metadata_reported == {"a": {"b": {"timestamp": 100}}}
    third = update(second.document, {"state": {"reported": {"a": 3}}})
    assert third.document.metadata_reported == {"a": {"timestamp": 100}}


def test_delete_payload_and_base_version():
    assert delete_payload(4, 1591057529) == {"version": 4, "timestamp": 1591057529}
    assert base_version(4, 1000.0, 1000.0 + VERSION_RETENTION_SECONDS) == 4
    assert base_version(4, 1000.0, 1000.0 + VERSION_RETENTION_SECONDS + 1) == 0
    assert base_version(None, None, 5.0) == 0


def test_storage_round_trip():
    doc = update(None, {"state": {"desired": {"a": [1, {"b": 2}]}, "reported": {"c": "€"}}})
    back = ShadowDocument.from_storage(doc.document.to_storage(), 1, 100)
    assert back == doc.document


def test_json_equal_does_not_confuse_booleans_and_numbers():
    assert not json_equal(True, 1) and json_equal(1, 1.0) and not json_equal(0, False)
    assert compute_delta({"a": True}, {"a": 1}) == {"a": True}


# --- Properties ---

keys = st.text(alphabet="abcdef", min_size=1, max_size=3)
scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5)
json_values = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=12)
# values a valid update may carry (no null inside arrays)
leaf_values = st.booleans() | st.integers(-5, 5) | st.sampled_from(["on", "off"])
state_values = st.recursive(
    leaf_values,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children | st.none(),
                                                                      max_size=3),
    max_leaves=8)
sections = st.dictionaries(keys, state_values | st.none(), max_size=4)
requests = st.fixed_dictionaries({}, optional={"desired": sections | st.none(),
                                               "reported": sections | st.none()})


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries(
    {"state": json_values}, optional={"version": json_values, "clientToken": json_values})))
def test_any_json_only_raises_shadow_error(doc):
    with contextlib.suppress(ShadowError):
        apply_update(None, json.dumps(doc).encode(), 1)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_only_raise_shadow_error(payload):
    with contextlib.suppress(ShadowError):
        apply_update(None, payload, 1)


def reference_delta(desired: dict, reported: dict) -> dict:
    out = {}
    for k, v in desired.items():
        if k not in reported:
            out[k] = v
        elif isinstance(v, dict) and isinstance(reported[k], dict):
            sub = reference_delta(v, reported[k])
            if sub:
                out[k] = sub
        elif json.dumps(v, sort_keys=True) != json.dumps(reported[k], sort_keys=True):
            out[k] = v
    return out


def leaves_mirror(state: Any, meta: Any, ts_ok) -> bool:
    if isinstance(state, dict):
        return (isinstance(meta, dict) and meta.keys() == state.keys()
                and all(leaves_mirror(state[k], meta[k], ts_ok) for k in state))
    if isinstance(state, list):
        return (isinstance(meta, list) and len(meta) == len(state)
                and all(leaves_mirror(s, m, ts_ok) for s, m in zip(state, meta, strict=True)))
    return isinstance(meta, dict) and set(meta) == {"timestamp"} and ts_ok(meta["timestamp"])


def has_empty_object(value: Any) -> bool:
    if isinstance(value, dict):
        return not value or any(has_empty_object(v) for v in value.values())
    return False  # arrays are values: an empty object inside one is kept


@settings(max_examples=300, deadline=None)
@given(st.lists(requests, min_size=1, max_size=8))
def test_sequences_of_valid_updates(states):
    doc: ShadowDocument | None = None
    for i, state in enumerate(states):
        before = doc.version if doc else 0
        result = apply_update(doc, req({"state": state}), 1000 + i)
        doc = result.document
        # version: exactly one per accepted update
        assert doc.version == before + 1
        # delta == recursive diff of desired vs reported
        assert doc.delta() == reference_delta(doc.desired or {}, doc.reported or {})
        if result.delta is not None:
            assert result.delta["state"] == doc.delta()
        # metadata mirrors the state, leaf by leaf, with timestamps of past updates
        for section, meta in ((doc.desired, doc.metadata_desired),
                              (doc.reported, doc.metadata_reported)):
            assert (section is None) == (meta is None)
            if section is not None:
                assert section and not has_empty_object(section)
                assert leaves_mirror(section, meta, lambda t, i=i: 1000 <= t <= 1000 + i)
        # nulls removed what they named (at the top level of each section)
        for key in ("desired", "reported"):
            patch = state.get(key)
            current = getattr(doc, key)
            if key in state and patch is None:
                assert current is None
            elif isinstance(patch, dict):
                for field, value in patch.items():
                    if value is None:
                        assert current is None or field not in current
                    elif not isinstance(value, dict):
                        assert current is not None and current[field] == value
        # the accepted document echoes the request's state
        assert result.accepted["state"] == state
