"""Local core's wait before a deprecated thing type may be deleted: AWS's five minutes unless
$FLEETSIM_THING_TYPE_DELETE_DELAY_S shortens it; a bad value is one sentence."""

from __future__ import annotations

import pytest

from fleetsim.errors import UserError
from fleetsim.localcore.features.registry.service import (
    THING_TYPE_DELETE_DELAY_ENV,
    thing_type_delete_delay,
)


def test_default_is_five_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THING_TYPE_DELETE_DELAY_ENV, raising=False)
    assert thing_type_delete_delay() == 300.0
    monkeypatch.setenv(THING_TYPE_DELETE_DELAY_ENV, "1.5")
    assert thing_type_delete_delay() == 1.5


@pytest.mark.parametrize("value", ["abc", "-1", "301", "nan"])
def test_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(THING_TYPE_DELETE_DELAY_ENV, value)
    with pytest.raises(UserError, match=f"is '{value}': it must be a number of seconds"):
        thing_type_delete_delay()
