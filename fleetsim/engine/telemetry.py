"""The telemetry behaviour: every device of a fleet publishes at its own rate, spread out."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from fleetsim.device import DeviceError
from fleetsim.device.payload import encode
from fleetsim.engine.context import Device, RunContext
from fleetsim.scenario import model as m
from fleetsim.scenario.semantics import TELEMETRY_NAMES
from fleetsim.scenario.templating import StructTemplate, Template


async def _device_loop(ctx: RunContext, step: m.TelemetryStep, d: Device, topic: str,
                       payload_t: StructTemplate, until: float) -> None:
    period = 1.0 / step.rate
    # A random phase within the first period: devices connected together publish apart.
    next_at = time.monotonic() + random.uniform(0, period)
    values = dict(d.names)
    seq = 0
    while True:
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() >= until or d.session is None:
            return
        seq += 1
        values["seq"] = seq
        body = encode(payload_t.render(values), stamp=step.stamp)
        # A failure is counted by the session under mqtt.publish; the device goes on.
        with contextlib.suppress(DeviceError):
            await d.session.publish(topic, body, qos=step.qos)
        next_at += period


async def run_telemetry(ctx: RunContext, step: m.TelemetryStep) -> None:
    topic_t = Template(step.topic, TELEMETRY_NAMES)
    payload_t = StructTemplate(step.payload, TELEMETRY_NAMES)
    until = time.monotonic() + step.duration
    tasks = [asyncio.ensure_future(_device_loop(ctx, step, d, topic_t.render(d.names),
                                                payload_t, until))
             for d in ctx.fleet_devices(step.fleet) if d.session is not None]
    if step.background:
        ctx.background.setdefault(step.fleet, []).extend(tasks)
        return
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def stop_background(ctx: RunContext, fleet: str | None = None) -> None:
    """Stop the background behaviours of one fleet (at its disconnect) or of all."""
    names = [fleet] if fleet is not None else list(ctx.background)
    tasks = [t for name in names for t in ctx.background.pop(name, [])]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
