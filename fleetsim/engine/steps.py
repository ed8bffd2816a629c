"""What each kind of scenario step does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fleetsim.engine import devices as dev
from fleetsim.engine.checks import run_expect
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.observer_identity import observer_policy
from fleetsim.scenario import model as m
from fleetsim.scenario.semantics import DEVICE_NAMES
from fleetsim.scenario.templating import StructTemplate, Template

ALL_EVENT_TYPES = list(m.EVENT_TYPES)


async def events(ctx: RunContext, step: m.EventsStep) -> None:
    current = await api_call(ctx, "DescribeEventConfigurations")
    previous = current.get("eventConfigurations", {})
    wanted: dict[str, dict[str, bool]] = {}
    for types, enabled in ((step.disable, False), (step.enable, True)):
        for t in ALL_EVENT_TYPES if types == "all" else types:
            wanted[t] = {"Enabled": enabled}
    ctx.journal.record("events", previous=previous)
    await api_call(ctx, "UpdateEventConfigurations", eventConfigurations=wanted)


async def observe(ctx: RunContext, step: m.ObserveStep) -> None:
    ident = await api_call(ctx, "CreateKeysAndCertificate", "the observer", setAsActive=True)
    ctx.journal.record("certificate", id=ident["certificateId"], arn=ident["certificateArn"])
    client_id = f"fleetsim-observer-{ctx.run_id}"
    account = (await ctx.sts.get_caller_identity())["Account"]
    policy = f"{client_id}-policy"
    document = observer_policy(ctx.target.region, account, client_id, step.topics)
    await api_call(ctx, "CreatePolicy", policy, policyName=policy, policyDocument=document)
    ctx.journal.record("policy", name=policy)
    await api_call(ctx, "AttachPolicy", policy, policyName=policy,
                   target=ident["certificateArn"])
    ctx.journal.record("policy_attachment", policy=policy, target=ident["certificateArn"])
    ctx.observer = await dev.start_observer(ctx, client_id, ident, step.topics, step.qos)


async def create_things(ctx: RunContext, step: m.CreateThingsStep) -> None:
    async def create(d: Device) -> None:
        params: dict[str, Any] = {"thingName": d.thing_name}
        if step.attributes:
            params["attributePayload"] = {"attributes": step.attributes}
        if step.thing_type:
            params["thingTypeName"] = step.thing_type
        await api_call(ctx, "CreateThing", d.thing_name, **params)
        ctx.journal.record("thing", name=d.thing_name)

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), create)


async def create_keys_and_certificate(ctx: RunContext,
                                      step: m.CreateKeysAndCertificateStep) -> None:
    async def create(d: Device) -> None:
        out = await api_call(ctx, "CreateKeysAndCertificate", d.thing_name,
                             setAsActive=step.set_as_active)
        ctx.journal.record("certificate", id=out["certificateId"], arn=out["certificateArn"])
        d.certificate_id, d.certificate_arn = out["certificateId"], out["certificateArn"]
        d.identity = dev.save_identity(ctx, d, out["keyPair"]["PrivateKey"],
                                       out["certificatePem"])

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), create)


async def create_policy(ctx: RunContext, step: m.CreatePolicyStep) -> None:
    names = DEVICE_NAMES if step.fleet else set()
    name_t = Template(step.policy, names)
    doc_t = StructTemplate(step.document, names) if isinstance(step.document, dict) else None

    async def create(values: dict[str, Any]) -> None:
        name = name_t.render(values)
        document = json.dumps(doc_t.render(values)) if doc_t else str(step.document)
        await api_call(ctx, "CreatePolicy", name, policyName=name, policyDocument=document)
        ctx.journal.record("policy", name=name)

    if step.fleet is None or "{" not in step.policy:
        await create({})
        return
    await for_each_device(ctx, ctx.fleet_devices(step.fleet), lambda d: create(d.names))


async def attach_policy(ctx: RunContext, step: m.AttachPolicyStep) -> None:
    name_t = Template(step.policy, DEVICE_NAMES)

    async def attach(d: Device) -> None:
        arn = dev.require_certificate(d)
        name = name_t.render(d.names)
        await api_call(ctx, "AttachPolicy", d.thing_name, policyName=name, target=arn)
        ctx.journal.record("policy_attachment", policy=name, target=arn)

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), attach)


async def attach_thing_principal(ctx: RunContext, step: m.AttachThingPrincipalStep) -> None:
    async def attach(d: Device) -> None:
        arn = dev.require_certificate(d)
        await api_call(ctx, "AttachThingPrincipal", d.thing_name, thingName=d.thing_name,
                       principal=arn)
        ctx.journal.record("thing_principal", thing=d.thing_name, principal=arn)

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), attach)


async def update_things(ctx: RunContext, step: m.UpdateThingsStep) -> None:
    payload = {"attributes": step.attributes, "merge": step.merge}

    async def update(d: Device) -> None:
        await api_call(ctx, "UpdateThing", d.thing_name, thingName=d.thing_name,
                       attributePayload=payload)

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), update)


async def connect(ctx: RunContext, step: m.ConnectStep) -> None:
    client_id_t = Template(step.client_id, DEVICE_NAMES - {"client_id"})

    async def open_session(d: Device) -> None:
        dev.require_certificate(d)
        d.session = await dev.connect(ctx, d, client_id_t.render(d.names), step.timeout)

    await for_each_device(ctx, ctx.fleet_devices(step.fleet), open_session)


async def publish(ctx: RunContext, step: m.PublishStep) -> None:
    topic_t = Template(step.topic, DEVICE_NAMES)
    payload_t = StructTemplate(step.payload, DEVICE_NAMES)

    async def send(d: Device) -> None:
        for n in range(step.count):
            if n and step.interval:
                await asyncio.sleep(step.interval)
            payload = payload_t.render(d.names)
            body = payload if isinstance(payload, str) else json.dumps(payload)
            await dev.publish(ctx, d, topic_t.render(d.names), body.encode(), step.qos)

    await for_each_device(ctx, [d for d in ctx.fleet_devices(step.fleet) if d.session], send)


async def disconnect(ctx: RunContext, step: m.DisconnectStep) -> None:
    await asyncio.gather(*(dev.disconnect(d) for d in ctx.devices[step.fleet]))


async def wait(ctx: RunContext, step: m.WaitStep) -> None:
    await asyncio.sleep(step.seconds)


STEPS: dict[str, Callable[[RunContext, Any], Awaitable[None]]] = {
    "events": events,
    "observe": observe,
    "create_things": create_things,
    "create_keys_and_certificate": create_keys_and_certificate,
    "create_policy": create_policy,
    "attach_policy": attach_policy,
    "attach_thing_principal": attach_thing_principal,
    "update_things": update_things,
    "connect": connect,
    "publish": publish,
    "disconnect": disconnect,
    "wait": wait,
    "expect": run_expect,
}
