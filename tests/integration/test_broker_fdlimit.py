"""The broker checks the connections it holds against its open-file limit (`fdlimit`), over
real TLS connections on 127.0.0.1."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fleetsim.localcore.broker.fdlimit import MARGIN, DescriptorWatch
from tests.mqtt_testing import running_broker
from tests.unit.test_fdlimit import warnings_of


async def test_the_broker_checks_each_connection_it_holds(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING)
    async with running_broker(tmp_path) as env:
        env.broker.descriptors = DescriptorWatch((MARGIN + 2, MARGIN + 2))
        first = await env.raw(env.device("one"))
        assert warnings_of(caplog) == []
        second = await env.raw(env.device("two"))
        [message] = warnings_of(caplog)
        assert "holds 2 connections" in message
        await first.close()
        await second.close()
