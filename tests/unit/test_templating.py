"""Templates in scenario strings: names, format specs, generators, policy variables."""

from __future__ import annotations

import pytest

from fleetsim.scenario.templating import StructTemplate, Template, TemplateError

NAMES = {"thing_name", "index", "seq"}


def test_names_and_format_specs() -> None:
    t = Template("{thing_name}/{index:04d}", NAMES)
    assert t.render({"thing_name": "dev", "index": 7}) == "dev/0007"


def test_whole_placeholder_keeps_its_type() -> None:
    assert Template("{seq}", NAMES).render({"seq": 3}) == 3
    assert Template("n={seq}", NAMES).render({"seq": 3}) == "n=3"


def test_braces_escape_and_policy_variables_pass_through() -> None:
    t = Template("{{literal}} ${iot:ClientId} ${iot:Connection.Thing.ThingName}", set())
    assert t.render({}) == "{literal} ${iot:ClientId} ${iot:Connection.Thing.ThingName}"


def test_generators_stay_in_range() -> None:
    ints = {Template("{rand_int(1, 3)}", set()).render({}) for _ in range(200)}
    assert ints == {1, 2, 3}
    value = Template("{rand_float(18, 25, 1)}", set()).render({})
    assert isinstance(value, float) and 18 <= value <= 25 and round(value, 1) == value
    assert Template("{choice('a', 'b')}", set()).render({}) in {"a", "b"}
    assert isinstance(Template("{timestamp_ms}", set()).render({}), int)


@pytest.mark.parametrize(("text", "message"), [
    ("{nope}", "unknown placeholder {nope}"),
    ("{rand_int(1)}", "wrong arguments"),
    ("{frob(1)}", "unknown function 'frob'"),
    ("{rand_int(a, 2)}", "neither a number nor a quoted string"),
    ("{1bad}", "is not a name or a function call"),
])
def test_broken_templates_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        Template(text, NAMES)


def test_struct_template_renders_nested_values() -> None:
    t = StructTemplate({"d": "{thing_name}", "v": ["{seq}", 2, None], "k": True}, NAMES)
    assert t.render({"thing_name": "x", "seq": 9}) == {"d": "x", "v": [9, 2, None], "k": True}
