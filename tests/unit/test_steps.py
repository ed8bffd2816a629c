"""Step kinds: the registry is complete and consistent, and steps run against the fakes of
tests/fakes.py (no local core)."""

from __future__ import annotations

import asyncio
import inspect
import json
import typing
from pathlib import Path
from typing import Any

import pytest

from fleetsim.control.cleanup import Phase, cleanup, phases
from fleetsim.control.clients import AwsClients
from fleetsim.control.journal import read_entries
from fleetsim.engine import steps
from fleetsim.engine.context import RunContext
from fleetsim.engine.fanout import StepFailed
from fleetsim.engine.steps import JOURNAL_KINDS, KINDS, STEP_MODELS
from fleetsim.metrics import Metrics
from fleetsim.scenario.model import kind_of
from tests.fakes import FakeIot, FakeShadowService, connect_fakes, fake_context, journal_kinds

FLEET = "fleets: [{name: f, prefix: dev, count: 2}]\n"
WORKSHOP_TEMPLATE = Path(__file__).resolve().parents[2] / "scenarios/workshop/templateBody.json"
POLICY_DOC = '{Version: "2012-10-17", Statement: [{Effect: Allow, Action: "iot:*", Resource: "*"}]}'

# One example of every step kind, run against the fakes: what it calls and journals. A kind
# registered without an example here fails test_every_kind_has_an_example.
EXAMPLES: dict[str, tuple[str, bool]] = {  # kind -> (step YAML, needs connected devices)
    "events": ("events: {enable: [THING]}", False),
    "search_index": ("search_index: {query: '*', indexing: REGISTRY, expect: {count: 0}}",
                     False),
    "observe": ("observe: {topics: [a/b]}", False),
    "create_things": ("create_things: f", False),
    "create_keys_and_certificate": ("create_keys_and_certificate: f", False),
    "create_certificate_from_csr": ("create_certificate_from_csr: f", False),
    "provision": ("provision: {fleet: f, policy: p}", False),
    "create_policy": (f"create_policy: {{policy: p, document: {POLICY_DOC}}}", False),
    "attach_policy": ("attach_policy: {fleet: f, policy: p}", False),
    "attach_thing_principal": ("attach_thing_principal: f", False),
    "update_things": ("update_things: {fleet: f, attributes: {a: b}}", False),
    "connect": ("connect: f", False),
    "publish": ("publish: {fleet: f, topic: t, payload: {a: 1}}", True),
    "telemetry": ("telemetry: {fleet: f, topic: t, payload: {}, duration: 0s}", True),
    "subscribe": ("subscribe: {fleet: f, topics: [t]}", True),
    "shadow": ("shadow: {fleet: f, report: {x: 1}}", True),
    "shadow_desired": ("shadow_desired: {fleet: f, desired: {x: 2}, wait: false}", False),
    "disconnect": ("disconnect: f", True),
    "wait": ("wait: 0s", False),
    "expect": ("expect: {timeout: 0s}", False),
    "create_thing_group": ("create_thing_group: g", False),
    "create_thing_type": ("create_thing_type: t", False),
    "create_package": ("create_package: {package: p, version: '1.0'}", False),
    "register_thing": (f"register_thing: {{fleet: f, template: {WORKSHOP_TEMPLATE}, "
                       "parameters: {ThingName: '{thing_name}', SerialNumber: '{index}'}}", False),
    "bulk_register": (f"bulk_register: {{fleet: f, template: {WORKSHOP_TEMPLATE}, bucket: b, "
                      "role_arn: r}", False),
    "create_provisioning_template": ("create_provisioning_template: {template: t, "
                                     f"body: {WORKSHOP_TEMPLATE}, role_arn: r}}", False),
    "fleet_provision": ("fleet_provision: {fleet: f, template: t, claim_policy: c}", False),
    "add_to_thing_group": ("add_to_thing_group: {fleet: f, group: g}", False),
    "create_job": ("create_job: {fleet: f, document: {operation: x}}", False),
    "job_agent": ("job_agent: {fleet: f, outcomes: {succeed: 1}}", True),
    "wait_job": ("wait_job: {timeout: 0s}", False),
    "register_ca": ("register_ca: {ca: certs/ca}", False),
    "jit_connect": ("jit_connect: {fleet: f, ca: certs/ca, subject: {country: DE}}", False),
    "iot_logging": ("iot_logging: {default_level: WARN, levels: [{target_type: THING_GROUP, "
                    "target_name: g, level: DEBUG}]}", False),
    "filter_log_events": ("filter_log_events: {pattern: '{$.logLevel = ERROR}', "
                          "expect: {at_most: 0}, timeout: 0s}", False),
    "expect_policy_outcomes": ("expect_policy_outcomes: {fleet: f, subscribe: {allowed: [t]}}",
                               True),
    "deploy_function": ("deploy_function: {function: jitr, source: fn, "
                        "role: 'arn:aws:iam::{account_id}:role/r', allow_rules: [JITRRule]}",
                        False),
    "create_topic_rule": ("create_topic_rule: {rule: JITRRule, payload: {sql: \"SELECT * FROM "
                          "'a/b'\", actions: []}}", False),
}
# What must exist before the example runs (kinds whose example needs an earlier step).
SETUP = {
    "create_keys_and_certificate": [], "create_certificate_from_csr": [], "provision": [],
    "attach_policy": ["create_keys_and_certificate: f"],
    "attach_thing_principal": ["create_keys_and_certificate: f"],
    "connect": None,  # connecting needs a real broker: checked only for what it declares
    "observe": None,  # the observer connects too
    "fleet_provision": None,  # devices connect with the claim certificate
    # The task's reports are read over HTTP from presigned links: run against local core in
    # tests/integration/test_provisioning_scenarios.py.
    "bulk_register": None,
    "create_thing_group": [], "create_thing_type": [], "register_thing": [],
    "create_provisioning_template": [], "create_package": [],
    "add_to_thing_group": ["create_things: f", "create_thing_group: g"],
    "create_job": ["create_things: f"],
    "wait_job": ["create_things: f", "create_job: {fleet: f, document: {operation: x}}"],
    # The CA is registered and devices come online against local core:
    # tests/integration/test_jit_scenarios.py.
    "register_ca": None, "jit_connect": None,
    "iot_logging": [], "filter_log_events": [],
    "deploy_function": None, "create_topic_rule": None,  # Lambda and rules: local core's
}


def test_registry_is_complete_and_consistent() -> None:
    modules = {p.stem for p in Path(steps.__file__).parent.glob("*.py")} - {"__init__", "base"}
    assert sorted(KINDS) == sorted(STEP_MODELS) == sorted(modules)
    for name, kind in KINDS.items():
        assert kind.name == name == kind_of(kind.model)
        assert STEP_MODELS[name] is kind.model
        assert inspect.iscoroutinefunction(kind.run), name
        hints = typing.get_type_hints(kind.run)
        assert hints["ctx"] is RunContext, name
        assert hints["step"] is kind.model, f"{name}: run takes {hints['step']}"
        if kind.model.scalar_field is not None:
            assert kind.model.scalar_field in kind.model.model_fields, name
        for journal in kind.journals:
            assert JOURNAL_KINDS[[j.name for j in JOURNAL_KINDS].index(journal.name)] is journal
    declared = {j.name for k in KINDS.values() for j in k.journals}
    assert declared == {j.name for j in JOURNAL_KINDS}
    assert len(JOURNAL_KINDS) == len(declared)


def test_every_kind_has_an_example() -> None:
    assert set(EXAMPLES) == set(KINDS)


def test_cleanup_phases_are_in_order() -> None:
    ordered = [k.name for phase in phases(JOURNAL_KINDS) for k in phase]
    assert ordered.index("policy_attachment") < ordered.index("certificate")
    assert ordered.index("thing_principal") < ordered.index("certificate")
    assert ordered.index("certificate") < ordered.index("thing")
    assert ordered.index("shadow") < ordered.index("thing")
    assert ordered[-1] == "events"


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
async def test_each_kind_journals_only_what_it_declares(tmp_path: Path, kind: str) -> None:
    setup = SETUP.get(kind, ["create_things: f", "create_keys_and_certificate: f"]
                      if kind != "create_things" else [])
    step_yaml, connected = EXAMPLES[kind]
    if setup is None:
        pytest.skip(f"{kind} needs a broker or local core (see SETUP)")
    shadow = ["shadow: f"] if kind == "shadow_desired" else []
    connect = ["connect: f"] if connected or shadow else []
    steps = "\n".join(f"  - {s}" for s in [*setup, *connect, *shadow, step_yaml])
    iot = FakeIot()
    ctx = fake_context(tmp_path, f"name: t\n{FLEET}steps:\n{steps}\n", iot)
    for step in ctx.scenario.steps:
        if step.kind == "connect":
            connect_fakes(ctx, "f", FakeShadowService(iot))
            continue
        before = set(journal_kinds(ctx))
        await KINDS[step.kind].run(ctx, step)
        recorded = set(journal_kinds(ctx)) - before
        declared = {j.name for j in KINDS[step.kind].journals}
        assert recorded <= declared, f"{step.kind} journals {recorded - declared} undeclared"
    assert all(d.failed is None for d in ctx.devices["f"])


async def test_create_things_calls_and_journals_each_device(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, f"""
        name: t
        {FLEET}
        steps:
          - create_things: {{fleet: f, attributes: {{type: ws}}, thing_type: sensor}}
        """, iot)
    await KINDS["create_things"].run(ctx, ctx.scenario.steps[0])
    assert sorted(p["thingName"] for op, p in iot.calls if op == "CreateThing") == \
        ["dev-0", "dev-1"]
    assert all(p["attributePayload"] == {"attributes": {"type": "ws"}}
               and p["thingTypeName"] == "sensor" for op, p in iot.calls if op == "CreateThing")
    # each thing is described first: absent, so created
    assert sorted(p["thingName"] for op, p in iot.calls if op == "DescribeThing") == \
        ["dev-0", "dev-1"]
    entries = [e for e in read_entries(ctx.journal.run_dir) if e.kind == "thing"]
    assert sorted(e.data["name"] for e in entries) == ["dev-0", "dev-1"]


async def test_a_failing_device_drops_out_and_the_step_goes_on(tmp_path: Path) -> None:
    iot = FakeIot()
    iot.fail("CreateThing", "ThrottlingException", "Rate exceeded")
    ctx = fake_context(tmp_path, f"name: t\n{FLEET}steps: [{{create_things: f}}]\n", iot)
    await KINDS["create_things"].run(ctx, ctx.scenario.steps[0])
    failed = [d for d in ctx.devices["f"] if d.failed]
    assert len(failed) == 1 and "ThrottlingException" in (failed[0].failed or "")
    assert journal_kinds(ctx) == ["thing"]
    assert sum(ctx.metrics.op_errors[("", "api.CreateThing")].values()) == 1


async def test_every_device_failing_fails_the_step(tmp_path: Path) -> None:
    iot = FakeIot()
    iot.fail("CreateThing", "AccessDeniedException", times=2)
    ctx = fake_context(tmp_path, f"name: t\n{FLEET}steps: [{{create_things: f}}]\n", iot)
    with pytest.raises(StepFailed, match="AccessDeniedException"):
        await KINDS["create_things"].run(ctx, ctx.scenario.steps[0])


async def test_provision_makes_and_attaches_everything(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, """
        name: t
        fleets: [{name: f, prefix: dev, count: 1}]
        steps: [{provision: {fleet: f, policy: "{thing_name}-p"}}]
        """, iot)
    await KINDS["provision"].run(ctx, ctx.scenario.steps[0])
    # the thing is described first; the new certificate has nothing attached: not described
    assert iot.ops() == ["DescribeThing", "CreateThing", "CreateCertificateFromCsr",
                         "AttachPolicy", "AttachThingPrincipal"]
    d = ctx.devices["f"][0]
    assert d.identity is not None and d.certificate_arn in iot.principals["dev-0"]
    assert dict(iot.calls[3][1]) == {"policyName": "dev-0-p", "target": d.certificate_arn}
    # each written down before its call; the certificate by public key, then by id
    assert journal_kinds(ctx) == ["thing", "certificate", "certificate", "policy_attachment",
                                  "thing_principal"]


async def test_publish_renders_per_device(tmp_path: Path) -> None:
    ctx = fake_context(tmp_path, f"""
        name: t
        {FLEET}
        steps:
          - connect: f
          - publish: {{fleet: f, topic: "dt/{{thing_name}}", payload: {{i: "{{index}}"}},
                       qos: 1, count: 2}}
        """)
    sessions = connect_fakes(ctx, "f")
    await KINDS["publish"].run(ctx, ctx.scenario.steps[1])
    assert sessions[1].published == [("dt/dev-1", {"i": 1}, 1)] * 2


async def test_events_journals_the_previous_configuration(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, "name: t\nsteps: [{events: {enable: [THING, JOB]}}]\n", iot)
    await KINDS["events"].run(ctx, ctx.scenario.steps[0])
    assert iot.calls[-1] == ("UpdateEventConfigurations", {"eventConfigurations": {
        "THING": {"Enabled": True}, "JOB": {"Enabled": True}}})
    (entry,) = [e for e in read_entries(ctx.journal.run_dir) if e.kind == "events"]
    assert entry.data["previous"] == {"THING": {"Enabled": False}}


async def test_expect_things_and_shadows(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, f"""
        name: t
        {FLEET}
        steps:
          - expect:
              timeout: 0s
              things: [{{fleet: f, attributes: {{type: ws}}}}]
              shadows: [{{fleet: f, reported: {{x: "{{index}}"}}}}]
        """, iot)
    iot._op_create_thing("dev-0", attributePayload={"attributes": {"type": "ws"}})
    for i in range(2):
        doc = {"state": {"reported": {"x": i}, "desired": {"x": i}}}
        iot._op_update_thing_shadow(f"dev-{i}", json.dumps(doc).encode())
    iot._op_update_thing_shadow("dev-1", b'{"state": {"desired": {"x": 5}}}')
    with pytest.raises(StepFailed, match="2 of 2 checks failed"):
        await KINDS["expect"].run(ctx, ctx.scenario.steps[0])
    checks = {c.name: c for c in ctx.metrics.checks}
    things = checks["things of fleet 'f' exist with attributes {'type': 'ws'}"]
    assert not things.passed and "dev-1 (ResourceNotFoundException)" in things.detail
    shadows = checks["shadows of fleet 'f': converged, reported {'x': '{index}'}"]
    assert not shadows.passed and shadows.detail == "dev-1 has delta {'x': 5}"


async def test_expect_shadows_pass_when_converged(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, f"""
        name: t
        {FLEET}
        steps: [{{expect: {{timeout: 0s, shadows: [{{fleet: f, desired: {{x: 1}}}}]}}}}]
        """, iot)
    for i in range(2):
        doc = {"state": {"reported": {"x": 1, "y": i}, "desired": {"x": 1}}}
        iot._op_update_thing_shadow(f"dev-{i}", json.dumps(doc).encode())
    await KINDS["expect"].run(ctx, ctx.scenario.steps[0])
    assert [(c.passed, c.detail) for c in ctx.metrics.checks] == [(True, "2/2")]


async def test_cleanup_undoes_phase_by_phase(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, """
        name: t
        fleets: [{name: f, prefix: dev, count: 1}]
        steps:
          - events: {enable: all}
          - create_policy: {policy: p, document: "{}"}
          - provision: {fleet: f, policy: p}
          - shadow_desired: {fleet: f, desired: {power: true}, wait: false}
        """, iot)
    for step in ctx.scenario.steps:
        await KINDS[step.kind].run(ctx, step)
    ctx.journal.close()
    iot.calls.clear()
    clients = AwsClients(iot, iot, iot)
    report = await cleanup(clients, read_entries(ctx.journal.run_dir), JOURNAL_KINDS)
    assert report.ok and report.removed == {
        "certificate": 1, "events": 1, "policy": 1, "policy_attachment": 1, "shadow": 1,
        "thing": 1, "thing_principal": 1}
    order = iot.ops()
    phase_of = {"DetachPolicy": Phase.DETACH, "DetachThingPrincipal": Phase.DETACH,
                "DeleteThingShadow": Phase.DETACH, "UpdateCertificate": Phase.CERTIFICATES,
                "DeleteCertificate": Phase.CERTIFICATES, "DeleteThing": Phase.DELETE,
                "DeletePolicy": Phase.DELETE, "UpdateEventConfigurations": Phase.RESTORE,
                # certificates and things detach what is still attached; a policy deletes its
                # versions, but is not detached from targets the run did not attach it to
                "ListPrincipalThings": Phase.CERTIFICATES,
                "ListAttachedPolicies": Phase.CERTIFICATES, "ListThingPrincipals": Phase.DELETE,
                "ListPolicyVersions": Phase.DELETE}
    assert sorted(order, key=phase_of.__getitem__) == order
    assert set(order) == set(phase_of)
    assert not iot.things and not iot.shadows


async def test_cleanup_reports_what_it_could_not_remove(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, "name: t\nfleets: [{name: f, prefix: d}]\n"
                                 "steps: [{create_things: f}]\n", iot)
    await KINDS["create_things"].run(ctx, ctx.scenario.steps[0])
    iot.fail("DeleteThing", "AccessDeniedException", "not allowed")
    report = await cleanup(AwsClients(iot, iot, iot), read_entries(ctx.journal.run_dir),
                           JOURNAL_KINDS)
    assert report.failed == ["thing d-1: AccessDeniedException: not allowed"] or \
        report.failed == ["thing d-0: AccessDeniedException: not allowed"]


def _metrics_ops(metrics: Metrics) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, op), hist in metrics.latency.items():
        out[op] = out.get(op, 0) + hist.count
    return out


async def test_shadow_then_desired_converges(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, f"""
        name: t
        {FLEET}
        steps:
          - connect: f
          - shadow: {{fleet: f, report: {{mode: idle, id: "{{index}}"}}}}
          - shadow_desired: {{fleet: f, desired: {{mode: "eco-{{index}}"}}, timeout: 5s}}
        """, iot)
    service = FakeShadowService(iot)
    sessions = connect_fakes(ctx, "f", service)
    await KINDS["shadow"].run(ctx, ctx.scenario.steps[1])
    assert sessions[0].subscriptions == [f"$aws/things/dev-0/shadow/{t}" for t in (
        "update/delta", "update/accepted", "update/rejected", "get/accepted", "get/rejected")]

    # The service sends a delta when desired changes: the fake API call does not, so the
    # test plays the broker's part once the desired state is set.
    real_update = iot._op_update_thing_shadow

    def update_and_notify(thingName: str, payload: bytes, shadowName: Any = None) -> Any:
        out = real_update(thingName, payload, shadowName)
        desired = json.loads(payload)["state"].get("desired")
        if desired:
            index = int(thingName.split("-")[1])
            doc = iot.shadows[(thingName, "")]
            sessions[index].deliver(f"$aws/things/{thingName}/shadow/update/delta", {
                "state": desired, "version": doc["version"], "timestamp": 1})
        return out

    iot._op_update_thing_shadow = update_and_notify  # type: ignore[method-assign]
    await KINDS["shadow_desired"].run(ctx, ctx.scenario.steps[2])
    assert all(d.failed is None for d in ctx.devices["f"])
    assert iot.shadows[("dev-1", "")]["state"]["reported"] == {"mode": "eco-1", "id": 1}
    ops = _metrics_ops(ctx.metrics)
    assert ops["shadow.converge"] == 2
    assert ops["shadow.update"] == 4  # the initial reports and the answers to the deltas
    assert ops["shadow.get"] == 2
    assert ops["api.UpdateThingShadow"] == 2
    assert journal_kinds(ctx) == ["shadow", "shadow"]  # once per device, not per step


async def test_shadow_desired_times_out_without_an_answer(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, """
        name: t
        fleets: [{name: f, prefix: dev, count: 1}]
        steps:
          - connect: f
          - shadow: f
          - shadow_desired: {fleet: f, desired: {power: true}, timeout: 0s}
        """, iot)
    connect_fakes(ctx, "f", FakeShadowService(iot))
    await KINDS["shadow"].run(ctx, ctx.scenario.steps[1])
    with pytest.raises(StepFailed, match="did not report its desired shadow state"):
        await KINDS["shadow_desired"].run(ctx, ctx.scenario.steps[2])
    assert ctx.metrics.op_errors[("", "shadow.converge")] == {"not_converged": 1}


def test_event_types_are_those_of_the_aws_api() -> None:
    from botocore.loaders import Loader

    from fleetsim.engine.steps.events import EVENT_TYPES

    shape = Loader().load_service_model("iot", "service-2")["shapes"]["EventType"]
    assert sorted(EVENT_TYPES) == sorted(shape["enum"])


async def test_create_job_uploads_the_document_and_references_its_url(tmp_path: Path) -> None:
    iot = FakeIot()
    doc = tmp_path / "job-document.json"
    doc.write_text('{"operation": "sys-info", "topic": "sys/info"}')
    ctx = fake_context(tmp_path, f"""
        name: t
        {FLEET}
        steps:
          - create_job:
              job_id: "lab-{{run_id}}"
              fleet: f
              document_file: {doc}
              upload: {{bucket: "b-{{run_id}}", key: job-document.json, create_bucket: true}}
              presigned_url_config: {{role_arn: "arn:aws:iam::123456789012:role/r"}}
              rollout_config: {{maximumPerMinute: 100}}
              abort_config: {{criteriaList: [{{failureType: FAILED, action: CANCEL,
                              thresholdPercentage: 10, minNumberOfExecutedThings: 5}}]}}
        """, iot)
    ctx.s3 = iot
    await KINDS["create_job"].run(ctx, ctx.scenario.steps[0])
    ops = iot.ops()
    assert ops[-3:] == ["CreateBucket", "PutObject", "CreateJob"]
    put = dict(iot.calls[ops.index("PutObject")][1])
    assert put["Bucket"] == "b-test" and b"sys-info" in put["Body"]
    params = iot.jobs["lab-test"]
    assert params["documentSource"] == "https://s3.amazonaws.com/b-test/job-document.json"
    assert "document" not in params
    assert params["presignedUrlConfig"] == {"roleArn": "arn:aws:iam::123456789012:role/r",
                                            "expiresInSec": 3600}
    assert params["targets"] == [f"arn:aws:iot:us-east-1:123456789012:thing/dev-{i}"
                                 for i in range(2)]
    assert params["jobExecutionsRolloutConfig"] == {"maximumPerMinute": 100}
    assert params["abortConfig"]["criteriaList"][0]["thresholdPercentage"] == 10
    assert journal_kinds(ctx) == ["s3_bucket", "s3_object", "job"]


async def test_create_job_for_a_group_inline_document_and_cleanup(tmp_path: Path) -> None:
    iot = FakeIot()
    iot.groups.add("g")  # the job's target group exists
    ctx = fake_context(tmp_path, """
        name: t
        steps:
          - create_job: {group: g, document: {url: "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/fw.bin}",
                         run: "{run_id}"}, target_selection: CONTINUOUS}
        """, iot)
    await KINDS["create_job"].run(ctx, ctx.scenario.steps[0])
    params = iot.jobs["fleetsim-test"]
    assert params["targets"] == ["arn:aws:iot:us-east-1:123456789012:thinggroup/g"]
    assert params["targetSelection"] == "CONTINUOUS"
    assert json.loads(params["document"]) == {
        "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/fw.bin}", "run": "test"}
    ctx.journal.close()
    iot.calls.clear()
    iot.fail("CancelJob", "InvalidRequestException")  # it had ended: delete anyway
    report = await cleanup(AwsClients(iot, iot, iot), read_entries(ctx.journal.run_dir),
                           JOURNAL_KINDS)
    assert report.ok and iot.calls == [("CancelJob", {"jobId": "fleetsim-test", "force": True}),
                                       ("DescribeJob", {"jobId": "fleetsim-test"}),
                                       ("DeleteJob", {"jobId": "fleetsim-test", "force": True}),
                                       ("DescribeJob", {"jobId": "fleetsim-test"})]
    assert not iot.jobs  # waited for until DescribeJob no longer finds it


def test_create_job_needs_one_target_and_one_document(tmp_path: Path) -> None:
    from fleetsim.errors import ScenarioInvalid

    with pytest.raises(ScenarioInvalid, match="either 'fleet' or 'group'"):
        fake_context(tmp_path, f"name: t\n{FLEET}steps: [{{create_job: {{document: {{}}}}}}]\n")
    with pytest.raises(ScenarioInvalid, match="either 'document' or 'document_file'"):
        fake_context(tmp_path, f"name: t\n{FLEET}steps: [{{create_job: {{fleet: f}}}}]\n")


async def test_wait_job_measures_latency_rate_statuses_and_abort(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, """
        name: t
        steps: [{wait_job: {job_id: j, expect_status: CANCELED, expect_aborted: true}}]
        """, iot)
    created = 1_700_000_000.0
    iot.jobs["j"] = {"jobId": "j", "status": "CANCELED", "createdAt": created,
                     "completedAt": created + 130, "jobProcessDetails": {},
                     "jobExecutionsRolloutConfig": {"maximumPerMinute": 2}}
    iot.job_executions["j"] = {
        f"t{i}": {"status": status, "queuedAt": created + q, "startedAt": created + q + 1,
                  "lastUpdatedAt": created + q + 3}
        for i, (status, q) in enumerate([("SUCCEEDED", 0), ("FAILED", 10), ("SUCCEEDED", 70),
                                         ("FAILED", 80), ("FAILED", 125)])}
    iot.job_executions["j"]["t5"] = {"status": "CANCELED", "queuedAt": created + 130}
    with ctx.metrics.step("wait"):
        await KINDS["wait_job"].run(ctx, ctx.scenario.steps[0])
    m = ctx.metrics
    assert m.histogram("job.queued_to_in_progress").count == 5
    assert 0.9e6 <= m.histogram("job.queued_to_in_progress").max <= 1.1e6
    assert m.histogram("job.in_progress_to_terminal").count == 5
    assert m.counters["job.status.FAILED"] == 3 and m.counters["job.status.CANCELED"] == 1
    assert m.counters["job.aborted"] == 1 and m.counters["job.started"] == 5
    # executions that ended, on the timeline at their lastUpdatedAt (the HTML report's plot)
    assert m.timeline["job.ended"] == {int(created) + q + 3: 1 for q in (0, 10, 70, 80, 125)}
    detail = m.steps["wait"].detail
    assert "notified per minute: 2 2 2; started per minute: 2 2 1" in detail
    assert "rollout rate 2.3/min against maximumPerMinute 2 (+15.4%)" in detail
    assert "aborted 130 s after creation" in detail
    assert [c.passed for c in m.checks] == [True, True]


@pytest.mark.parametrize(("within", "passed"), [(2, True), (0.5, False)])
async def test_wait_job_checks_the_rollout_rate_in_local_cores_minute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, within: float, passed: bool) -> None:
    """Against local core with a 6 s minute: 10 a minute is one notification every 0.6 s;
    observed 1% faster. A retried execution (queued again) is not a rollout notification; a
    CONTINUOUS job with nothing pending and no targets left to roll out to has settled."""
    monkeypatch.setenv("FLEETSIM_LOCAL_JOBS_MINUTE_S", "6")
    iot = FakeIot()
    ctx = fake_context(tmp_path, f"""
        name: t
        steps: [{{wait_job: {{job_id: j, timeout: 5s, expect_rate_within: {within}}}}}]
        """, iot)
    created = 1_700_000_000.0
    iot.jobs["j"] = {"jobId": "j", "status": "IN_PROGRESS", "targetSelection": "CONTINUOUS",
                     "createdAt": created,
                     "jobProcessDetails": {"numberOfSucceededThings": 21},
                     "jobExecutionsRolloutConfig": {"maximumPerMinute": 10}}
    iot.job_executions["j"] = {f"t{i}": {"status": "SUCCEEDED", "queuedAt": created + i * 0.594}
                               for i in range(20)}
    iot.job_executions["j"]["again"] = {"status": "SUCCEEDED", "queuedAt": created + 99,
                                        "retryAttempt": 1}
    with ctx.metrics.step("wait"):
        await KINDS["wait_job"].run(ctx, ctx.scenario.steps[0])
    detail = ctx.metrics.steps["wait"].detail
    assert detail.startswith("job j: IN_PROGRESS; SUCCEEDED 21; notified per minute of 6 s: 11 9;")
    assert "rollout rate 10.1/min against maximumPerMinute 10 (+1.0%)" in detail
    assert [(c.name, c.passed) for c in ctx.metrics.checks] == [
        (f"job j rolled out within {within:g}% of maximumPerMinute", passed)]


def test_outcomes_are_assigned_exactly_and_by_seed() -> None:
    from fleetsim.engine.steps.job_agent import assign_outcomes

    mix = assign_outcomes({"succeed": 0.8, "fail": 0.2}, 1000, seed=1)
    assert mix.count("fail") == 200 and mix.count("succeed") == 800
    assert mix == assign_outcomes({"succeed": 0.8, "fail": 0.2}, 1000, seed=1)
    assert mix != assign_outcomes({"succeed": 0.8, "fail": 0.2}, 1000, seed=2)
    odd = assign_outcomes({"succeed": 1, "fail": 1, "reject": 1}, 10, seed=0)
    assert len(odd) == 10 and sorted(odd.count(o) for o in ("succeed", "fail", "reject")) == \
        [3, 3, 4]


async def test_job_agent_binds_every_device_with_its_planned_outcome(tmp_path: Path) -> None:
    from tests.jobs_double import FakeJobsService

    ctx = fake_context(tmp_path, """
        name: t
        fleets: [{name: f, prefix: dev, count: 4}]
        steps:
          - connect: f
          - job_agent: {fleet: f, outcomes: {succeed: 3, fail: 1}, execution_time: 0s}
        """)
    jobs = FakeJobsService()
    connect_fakes(ctx, "f", jobs)
    await KINDS["job_agent"].run(ctx, ctx.scenario.steps[1])
    for d in ctx.devices["f"]:
        jobs.queue(d.thing_name, "j1", {"operation": "x"})
    for _ in range(200):
        if all(d.job_agent and "j1" in d.job_agent.finished for d in ctx.devices["f"]):
            break
        await asyncio.sleep(0.01)
    finals = sorted(e.status for e in jobs.executions.values())
    assert finals == ["FAILED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]
    await KINDS["disconnect"].run(ctx, KINDS["disconnect"].model.model_validate(
        {"kind": "disconnect", "fleet": "f"}))
    assert all(d.job_agent is None for d in ctx.devices["f"])


async def test_create_package_creates_publishes_then_reuses(tmp_path: Path) -> None:
    iot = FakeIot()
    yaml = f"""
        name: t
        {FLEET}
        steps:
          - create_package: {{package: agent, version: '2.0', attributes: {{ch: beta}}}}
        """
    ctx = fake_context(tmp_path, yaml, iot)
    await KINDS["create_package"].run(ctx, ctx.scenario.steps[0])
    assert iot.packages["agent"]["versions"]["2.0"] == {"status": "PUBLISHED",
                                                        "attributes": {"ch": "beta"}}
    entries = [(e.kind, e.data) for e in read_entries(ctx.journal.run_dir)]
    assert ("package", {"name": "agent"}) in entries
    assert ("package_version", {"package": "agent", "version": "2.0"}) in entries
    # A second run finds both as declared: reused, nothing created nor journaled.
    (tmp_path / "again").mkdir()
    again = fake_context(tmp_path / "again", yaml, iot)
    iot.calls.clear()
    await KINDS["create_package"].run(again, again.scenario.steps[0])
    assert iot.ops() == ["GetPackage", "GetPackageVersion"]
    assert not again.reconcile.created and set(again.reconcile.reused) == {
        "package", "package_version"}


async def test_create_package_fixes_status_and_reports_what_the_lifecycle_forbids(
        tmp_path: Path) -> None:
    iot = FakeIot()
    iot.packages["agent"] = {"versions": {"1": {"status": "PUBLISHED", "attributes": {}}}}
    ctx = fake_context(tmp_path, f"""
        name: t
        {FLEET}
        steps:
          - create_package: {{package: agent, version: '1', status: DEPRECATED,
                              attributes: {{ch: x}}}}
        """, iot)
    await KINDS["create_package"].run(ctx, ctx.scenario.steps[0])
    assert iot.packages["agent"]["versions"]["1"] == {"status": "DEPRECATED", "attributes": {}}
    drift = {(d.item, d.fixed) for d in ctx.reconcile.drift}
    assert ("status is PUBLISHED (want DEPRECATED)", True) in drift
    assert ("attribute ch is missing (want x)", False) in drift  # not DRAFT: cannot change


def test_package_version_actions_follow_the_lifecycle() -> None:
    from fleetsim.engine.steps.create_package import actions_to
    assert actions_to("DRAFT", "DEPRECATED") == ("PUBLISH", "DEPRECATE")
    assert actions_to("PUBLISHED", "PUBLISHED") == ()
    assert actions_to("PUBLISHED", "DRAFT") is None
