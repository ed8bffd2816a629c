"""Pure rules of the Software Package Catalog: the package version lifecycle and a provisioning
template's PackageVersions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.features.packages import lifecycle as lc
from fleetsim.localcore.features.provisioning import template as t
from tests.unit.test_provisioning_template import body, thing


@pytest.mark.parametrize(("status", "action", "after"), [
    (lc.DRAFT, "PUBLISH", lc.PUBLISHED),
    (lc.PUBLISHED, "DEPRECATE", lc.DEPRECATED),
    (lc.DEPRECATED, "PUBLISH", lc.PUBLISHED),
])
def test_documented_moves(status: str, action: str, after: str) -> None:
    assert lc.next_status(status, action, "v") == after


@pytest.mark.parametrize(("status", "action"), [
    (lc.DRAFT, "DEPRECATE"), (lc.PUBLISHED, "PUBLISH"), (lc.DEPRECATED, "DEPRECATE")])
def test_other_moves_are_refused_naming_the_status_and_what_is_allowed(
        status: str, action: str) -> None:
    with pytest.raises(lc.LifecycleError) as e:
        lc.next_status(status, action, "Version 1 of package p")
    assert str(e.value).startswith(f"Version 1 of package p is {status}: the action {action}")
    assert "allowed:" in str(e.value)


def test_only_a_draft_changes_its_attributes() -> None:
    lc.check_editable(lc.DRAFT, ["attributes"], "v")
    lc.check_editable(lc.PUBLISHED, [], "v")
    with pytest.raises(lc.LifecycleError, match="only while it is DRAFT"):
        lc.check_editable(lc.PUBLISHED, ["attributes"], "v")


def test_a_draft_cannot_be_the_default() -> None:
    lc.check_default(lc.PUBLISHED, "v")
    lc.check_default(lc.DEPRECATED, "v")
    with pytest.raises(lc.LifecycleError, match="PUBLISHED or DEPRECATED"):
        lc.check_default(lc.DRAFT, "v")


@given(attributes=st.dictionaries(st.text(min_size=1, max_size=40),
                                  st.text(max_size=400), max_size=12))
def test_attributes_are_limited_to_3kb_combined(attributes: dict[str, str]) -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
    if size <= lc.MAX_ATTRIBUTES_BYTES:
        lc.check_attributes(attributes, "v")
    else:
        with pytest.raises(lc.LifecycleError, match="3KB"):
            lc.check_attributes(attributes, "v")


def rendered_versions(value: Any, parameters: dict[str, Any] | None = None,
                      values: dict[str, str] | None = None) -> dict[str, str] | None:
    tpl = t.parse(body(thing(PackageVersions=value), parameters))
    spec = t.render(tpl, values or {}).thing
    assert spec is not None
    return spec.package_versions


def test_package_versions_render_to_a_map_of_names() -> None:
    assert rendered_versions({"agent": "1.0", "os": {"Ref": "Os"}}, {"Os": {"Type": "String"}},
                             {"Os": "5.1"}) == {"agent": "1.0", "os": "5.1"}
    assert t.render(t.parse(body(thing())), {}).thing.package_versions is None  # type: ignore


@pytest.mark.parametrize(("value", "says"), [
    (["agent", "1.0"], "PackageVersions must be an object"),
    ({"agent": 1}, "PackageVersions.agent must be a string"),
    ({"bad name": "1"}, "'bad name' is not a package name"),
    ({"agent": "1/2"}, "'1/2' is not a version name"),
    ({"agent": "v" * 65}, "is not a version name"),
])
def test_bad_package_versions_are_named(value: Any, says: str) -> None:
    with pytest.raises(t.TemplateError) as e:
        rendered_versions(value)
    assert says in str(e.value)
    assert "Resources.thing.Properties.PackageVersions" in str(e.value)


# A lone "Ref" key would be the intrinsic function, not a package.
_NAME = st.from_regex(r"[a-zA-Z0-9_.-]{1,64}", fullmatch=True).filter(lambda n: n != "Ref")


@given(versions=st.dictionaries(_NAME, _NAME, max_size=5))
def test_any_valid_names_render_unchanged(versions: dict[str, str]) -> None:
    assert rendered_versions(versions) == versions
