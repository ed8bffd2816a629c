"""What each kind of scenario step does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fleetsim.control.errors import ApiError
from fleetsim.engine import devices as dev
from fleetsim.engine import provisioning as prov
from fleetsim.engine.checks import run_expect
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import api_call, for_each_device
from fleetsim.engine.observer_identity import observer_policy
from fleetsim.engine.quotas import connect_pacing
from fleetsim.engine.telemetry import run_telemetry, stop_background
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


def _devices(ctx: RunContext, step: m.FleetStep) -> list[Device]:
    return ctx.fleet_devices(step.fleet)


async def create_things(ctx: RunContext, step: m.CreateThingsStep) -> None:
    await for_each_device(
        ctx, _devices(ctx, step),
        lambda d: prov.create_thing(ctx, d, step.attributes, step.thing_type), step.pacing)


async def create_keys_and_certificate(ctx: RunContext,
                                      step: m.CreateKeysAndCertificateStep) -> None:
    await for_each_device(ctx, _devices(ctx, step),
                          lambda d: prov.keys_and_certificate(ctx, d, step.set_as_active),
                          step.pacing)


async def create_certificate_from_csr(ctx: RunContext,
                                      step: m.CreateCertificateFromCsrStep) -> None:
    await for_each_device(ctx, _devices(ctx, step),
                          lambda d: prov.certificate_from_csr(ctx, d, step.set_as_active),
                          step.pacing)


async def provision(ctx: RunContext, step: m.ProvisionStep) -> None:
    persistent = ctx.scenario.fleet(step.fleet).identities == "persistent"
    policy_t = Template(step.policy, DEVICE_NAMES) if step.policy else None

    async def one(d: Device) -> None:
        if persistent and await prov.reuse_stored(ctx, d):
            return
        await prov.create_thing(ctx, d, step.attributes, step.thing_type)
        if step.certificate == "csr":
            await prov.certificate_from_csr(ctx, d, True)
        else:
            await prov.keys_and_certificate(ctx, d, True)
        if policy_t is not None:
            await prov.attach_policy(ctx, d, policy_t.render(d.names))
        await prov.attach_thing_principal(ctx, d)

    await for_each_device(ctx, _devices(ctx, step), one, step.pacing)


async def _create_or_reuse_policy(ctx: RunContext, name: str, document: str,
                                  fleet: m.Fleet | None, shared: bool) -> None:
    """A policy that already exists with the same document (made by an earlier run of a
    persistent fleet, or by another shard) is used as it is, and not journaled."""
    try:
        await api_call(ctx, "CreatePolicy", name, policyName=name, policyDocument=document)
    except ApiError as e:
        if e.code != "ResourceAlreadyExistsException":
            raise
        existing = await api_call(ctx, "GetPolicy", name, policyName=name)
        if json.loads(existing["policyDocument"]) != json.loads(document):
            raise ApiError("CreatePolicy", e.code, f"policy {name} already exists with a "
                           "different document; delete it or choose another name", name) from e
        return
    ctx.journal_for(fleet, shared).record("policy", name=name)


async def create_policy(ctx: RunContext, step: m.CreatePolicyStep) -> None:
    names = DEVICE_NAMES if step.fleet else set()
    name_t = Template(step.policy, names)
    doc_t = StructTemplate(step.document, names) if isinstance(step.document, dict) else None
    fleet = ctx.scenario.fleet(step.fleet) if step.fleet else None

    per_device = step.fleet is not None and "{" in step.policy

    async def create(values: dict[str, Any]) -> None:
        document = json.dumps(doc_t.render(values)) if doc_t else str(step.document)
        await _create_or_reuse_policy(ctx, name_t.render(values), document, fleet,
                                      shared=not per_device)

    if not per_device:
        await create({})
        return
    await for_each_device(ctx, ctx.fleet_devices(step.fleet), lambda d: create(d.names))


async def attach_policy(ctx: RunContext, step: m.AttachPolicyStep) -> None:
    name_t = Template(step.policy, DEVICE_NAMES)
    await for_each_device(ctx, _devices(ctx, step),
                          lambda d: prov.attach_policy(ctx, d, name_t.render(d.names)),
                          step.pacing)


async def attach_thing_principal(ctx: RunContext, step: m.AttachThingPrincipalStep) -> None:
    await for_each_device(ctx, _devices(ctx, step),
                          lambda d: prov.attach_thing_principal(ctx, d), step.pacing)


async def update_things(ctx: RunContext, step: m.UpdateThingsStep) -> None:
    payload = {"attributes": step.attributes, "merge": step.merge}

    async def update(d: Device) -> None:
        await api_call(ctx, "UpdateThing", d.thing_name, thingName=d.thing_name,
                       attributePayload=payload)

    await for_each_device(ctx, _devices(ctx, step), update, step.pacing)


async def connect(ctx: RunContext, step: m.ConnectStep) -> None:
    client_id_t = Template(step.client_id, DEVICE_NAMES - {"client_id"})

    devices = _devices(ctx, step)
    # Each device's SSLContext (~1 ms of CPU) is built before the ramp, not on its clock.
    contexts = await dev.tls_contexts(ctx, devices)

    async def open_session(d: Device) -> None:
        d.session = await dev.connect(ctx, d, client_id_t.render(d.names), step.timeout,
                                      step.reconnect, contexts.get(d.index))

    await for_each_device(ctx, devices, open_session,
                          connect_pacing(ctx.scenario.target, ctx.shards, step.pacing))


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

    await for_each_device(ctx, [d for d in _devices(ctx, step) if d.session], send, step.pacing)


async def subscribe(ctx: RunContext, step: m.SubscribeStep) -> None:
    async def sub(d: Device) -> None:
        await dev.subscribe(ctx, d, step.topics, step.qos)

    await for_each_device(ctx, [d for d in _devices(ctx, step) if d.session], sub, step.pacing)


async def disconnect(ctx: RunContext, step: m.DisconnectStep) -> None:
    await stop_background(ctx, step.fleet)
    await dev.disconnect_many(ctx.devices[step.fleet])


async def wait(ctx: RunContext, step: m.WaitStep) -> None:
    await asyncio.sleep(step.seconds)


STEPS: dict[str, Callable[[RunContext, Any], Awaitable[None]]] = {
    "events": events,
    "observe": observe,
    "create_things": create_things,
    "create_keys_and_certificate": create_keys_and_certificate,
    "create_certificate_from_csr": create_certificate_from_csr,
    "provision": provision,
    "create_policy": create_policy,
    "attach_policy": attach_policy,
    "attach_thing_principal": attach_thing_principal,
    "update_things": update_things,
    "connect": connect,
    "publish": publish,
    "telemetry": run_telemetry,
    "subscribe": subscribe,
    "disconnect": disconnect,
    "wait": wait,
    "expect": run_expect,
}
