"""The provisioning template engine (pure): parsing, validation, intrinsic functions, rendering,
as AWS's "Provisioning templates" page documents them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.features.provisioning import template as t

# The workshop's own template (scenarios/workshop/PROVENANCE.md).
WORKSHOP_TEMPLATE = (Path(__file__).resolve().parents[2] / "scenarios" / "workshop"
                     / "templateBody.json").read_text()


def body(resources: dict[str, Any], parameters: dict[str, Any] | None = None,
         **sections: Any) -> str:
    return json.dumps({"Parameters": parameters or {}, "Resources": resources, **sections})


def thing(**props: Any) -> dict[str, Any]:
    return {"thing": {"Type": t.THING, "Properties": {"ThingName": "n", **props}}}


def render_value(value: Any, parameters: dict[str, Any] | None = None,
                 values: dict[str, str] | None = None, **sections: Any) -> Any:
    """What `value` renders to as a thing's ThingName."""
    tpl = t.parse(body({"thing": {"Type": t.THING, "Properties": {"ThingName": value}}},
                       parameters, **sections), fleet=bool(sections))
    rendered = t.render(tpl, values or {})
    assert rendered.thing is not None
    return rendered.thing.name


def test_the_workshop_template_renders_as_the_lab_expects() -> None:
    tpl = t.parse(WORKSHOP_TEMPLATE)
    r = t.render(tpl, {"ThingName": "my-second-thing", "SerialNumber": "42", "CSR": "csr"})
    assert r.thing is not None and r.certificate is not None
    assert r.thing.name == "my-second-thing"
    assert r.thing.attributes == {"version": "v1", "serialNumber": "42"}
    assert (r.thing.type_name, r.thing.groups) == ("bulk-type", ("bulk-group",))
    assert (r.certificate.csr, r.certificate.status) == ("csr", "ACTIVE")
    assert r.policies[0].name is None and r.policies[0].document


def test_default_is_used_when_the_parameter_is_not_given() -> None:
    params = {"Location": {"Type": "String", "Default": "WA"}}
    assert render_value({"Ref": "Location"}, params) == "WA"
    assert render_value({"Ref": "Location"}, params, {"Location": "CA"}) == "CA"


def test_a_parameter_without_value_or_default_is_named() -> None:
    tpl = t.parse(WORKSHOP_TEMPLATE)
    with pytest.raises(t.TemplateError, match="SerialNumber"):
        t.render(tpl, {"ThingName": "x", "CSR": "c"})


@pytest.mark.parametrize(("value", "expected"), [
    ({"Fn::Join": ["-", ["a", {"Ref": "P"}, "c"]]}, "a-p-c"),
    ({"Fn::Select": ["1", ["a", "b", "c"]]}, "b"),
    ({"Fn::Select": [2, {"Fn::Split": [",", "x,y,z"]}]}, "z"),
    ({"Fn::Sub": "pre-${P}-${!Literal}"}, "pre-p-${Literal}"),
    ({"Fn::Sub": ["${A}/${P}", {"A": {"Fn::Join": ["", ["a", "a"]]}}]}, "aa/p"),
])
def test_intrinsic_functions(value: Any, expected: str) -> None:
    assert render_value(value, {"P": {"Type": "String"}}, {"P": "p"}) == expected


def test_find_in_map_reads_the_fleet_template_mappings() -> None:
    mappings = {"Regions": {"eu": {"Name": "europe"}}}
    assert render_value({"Fn::FindInMap": ["Regions", {"Ref": "R"}, "Name"]},
                        {"R": {"Type": "String"}}, {"R": "eu"}, Mappings=mappings) == "europe"
    with pytest.raises(t.TemplateError, match="Mappings has no Regions > us > Name"):
        render_value({"Fn::FindInMap": ["Regions", {"Ref": "R"}, "Name"]},
                     {"R": {"Type": "String"}}, {"R": "us"}, Mappings=mappings)


def test_device_configuration_is_rendered_for_fleet_templates_only() -> None:
    text = body(thing(), {"P": {"Type": "String"}},
                DeviceConfiguration={"Fallback": {"Ref": "P"}, "Url": "https://x"})
    r = t.render(t.parse(text, fleet=True), {"P": "yes"})
    assert r.device_configuration == {"Fallback": "yes", "Url": "https://x"}
    with pytest.raises(t.TemplateError, match="only fleet provisioning templates"):
        t.parse(text)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ("[]", "JSON object"),
    (json.dumps({"Parameters": {}}), "Resources section"),
    (body({"r": {"Type": "AWS::S3::Bucket"}}), "valid types"),
    (body(thing(Colour="red")), "unknown properties"),
    (body({"t": {"Type": t.THING, "Properties": {}}}), "must have a ThingName"),
    (body(thing(ThingName={"Ref": "Missing"})), "does not name a parameter"),
    (body(thing(ThingName={"Fn::If": ["a", "b", "c"]})), "not a supported intrinsic"),
    (body(thing(ThingName={"Fn::Sub": "${Nope}"})), "neither a parameter"),
    (body(thing(ThingName={"Fn::FindInMap": ["M", "a", "b"]})), "Mappings does not declare"),
    (body({"c": {"Type": t.CERTIFICATE, "Properties": {"Status": "ACTIVE"}}}), "exactly one"),
    (body({"p": {"Type": t.POLICY, "Properties": {}}}), "PolicyName or a PolicyDocument"),
    (body(thing(), {"P": {"Type": "Number"}}), "Type String"),
    (json.dumps({"Resources": thing(), "Outputs": {}}), "unknown section 'Outputs'"),
    (json.dumps({"Resources": {**thing(), "thing2": thing()["thing"]}}), "more than one"),
    (json.dumps({"Resources": {"thing": {**thing()["thing"],
                                         "OverrideSettings": {"ThingName": "REPLACE"}}}}),
     "cannot override"),
    (json.dumps({"Resources": {"thing": {**thing()["thing"],
                                         "OverrideSettings": {"ThingTypeName": "MERGE"}}}}),
     "allowed: DO_NOTHING, REPLACE, FAIL"),
])
def test_broken_templates_are_refused_with_one_sentence(text: str, message: str) -> None:
    with pytest.raises(t.TemplateError, match=message):
        t.parse(text)


def test_render_errors_name_where() -> None:
    with pytest.raises(t.TemplateError, match=r"Resources.thing.Properties.ThingName"):
        render_value({"Fn::Select": ["5", ["a"]]})
    with pytest.raises(t.TemplateError, match="Status"):
        t.render(t.parse(body({"c": {"Type": t.CERTIFICATE, "Properties": {
            "CertificateId": "x", "Status": "PENDING"}}})), {})


def test_override_settings_are_kept_per_resource() -> None:
    text = json.dumps({"Resources": {"thing": {**thing(ThingGroups=["g"])["thing"],
                                               "OverrideSettings": {"ThingGroups": "MERGE",
                                                                    "AttributePayload": "FAIL"}}}})
    r = t.render(t.parse(text), {})
    assert r.thing is not None
    assert r.thing.overrides == {"ThingGroups": "MERGE", "AttributePayload": "FAIL"}


# --- wide inputs ------------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(items=st.lists(_TEXT.filter(lambda s: "," not in s), min_size=1, max_size=6))
def test_split_then_join_is_the_identity(items: list[str]) -> None:
    joined = ",".join(items)
    value = {"Fn::Join": [",", {"Fn::Split": [",", {"Ref": "P"}]}]}
    assert render_value(value, {"P": {"Type": "String"}}, {"P": joined}) == joined


@given(items=st.lists(_TEXT, min_size=1, max_size=6), data=st.data())
def test_select_picks_the_item(items: list[str], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(items) - 1))
    assert render_value({"Fn::Select": [str(i), items]}) == items[i]


@given(value=_TEXT.filter(lambda s: "${" not in s))
def test_sub_without_variables_is_the_text(value: str) -> None:
    assert render_value({"Fn::Sub": value}) == value


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children,
                                                                       max_size=4),
    max_leaves=20)


@given(doc=_JSON)
def test_any_json_is_parsed_or_refused_with_a_template_error(doc: Any) -> None:
    try:
        tpl = t.parse(json.dumps(doc))
    except t.TemplateError as e:
        assert str(e)
        return
    try:
        t.render(tpl, {})
    except t.TemplateError as e:
        assert str(e)


@given(props=st.dictionaries(st.sampled_from(t.PROPERTIES[t.THING]), _JSON, max_size=6))
def test_any_thing_properties_are_parsed_or_refused(props: dict[str, Any]) -> None:
    try:
        tpl = t.parse(body({"thing": {"Type": t.THING, "Properties": props}}))
        t.render(tpl, {})
    except t.TemplateError as e:
        assert str(e)
