"""Local core warns when the connections it holds come near its open-file limit: past it, a
connection is closed as soon as it is accepted and a device sees only its handshake end."""

from __future__ import annotations

import logging

import pytest

from fleetsim.localcore.broker.fdlimit import MARGIN, DescriptorWatch


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "fleetsim.localcore.broker.fdlimit" and r.levelno == logging.WARNING]


def test_it_warns_once_per_crossing_naming_the_limits(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING)
    watch = DescriptorWatch((1000, 4096))
    for held in range(1, 1000 - MARGIN):
        watch.check(held)
    assert warnings_of(caplog) == []
    for held in range(1000 - MARGIN, 1000):
        watch.check(held)
    [message] = warnings_of(caplog)
    assert f"holds {1000 - MARGIN} connections" in message
    assert "limit of 1000 open files" in message and "hard limit 4096" in message
    watch.check(int((1000 - MARGIN) * 0.9) - 1)  # well below: re-armed
    watch.check(1000 - MARGIN)
    assert len(warnings_of(caplog)) == 2
