"""Provisioning by template on the device side, against the fakes: register_thing per device,
what a template's resourceArns journal, the bulk file and reports, the claim client's
request/reply over a session, and the scenario checks of the new steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.device import DeviceError
from fleetsim.device.behaviours.claim import CREATE_FROM_CSR, ClaimClient, provision_topic
from fleetsim.engine import bulk
from fleetsim.engine.provisioning import resource_names
from fleetsim.engine.steps import KINDS, load_scenario
from fleetsim.errors import ScenarioInvalid
from fleetsim.metrics import Metrics
from fleetsim.pki.keys import load_private_key
from tests.fakes import FakeIot, FakeSession, fake_context, journal_kinds
from tests.unit.test_steps import WORKSHOP_TEMPLATE


async def test_register_thing_per_device(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, f"""
        name: t
        fleets: [{{name: f, prefix: dev, count: 2, key_type: rsa-2048}}]
        steps:
          - register_thing:
              fleet: f
              template: {WORKSHOP_TEMPLATE}
              parameters: {{ThingName: "{{thing_name}}", SerialNumber: "sn-{{index}}"}}
        """, iot)
    await KINDS["register_thing"].run(ctx, ctx.scenario.steps[0])
    calls = [p for op, p in iot.calls if op == "RegisterThing"]
    assert sorted(p["parameters"]["SerialNumber"] for p in calls) == ["sn-0", "sn-1"]
    assert all(p["templateBody"] == WORKSHOP_TEMPLATE.read_text() for p in calls)
    for d in ctx.devices["f"]:
        assert d.identity is not None and d.identity.certificate_pem is not None
        # The certificate is for the key the device made: its own key, never sent.
        cert = x509.load_pem_x509_certificate(d.identity.certificate_pem)
        assert cert.public_key() == load_private_key(d.identity.private_key_pem).public_key()
        assert d.identity.key_type == "rsa-2048"
        assert d.certificate_arn in iot.principals[d.thing_name]
    kinds = journal_kinds(ctx)
    assert kinds.count("thing") == kinds.count("certificate") == 2
    assert kinds.count("thing_principal") == kinds.count("policy_attachment") == 2
    assert kinds.count("policy") == 1  # one policy from one document: journaled once
    ops = {op for (_, op) in ctx.metrics.latency}
    assert {"provision.keys", "provision.certificate", "api.RegisterThing"} <= ops


async def test_register_thing_failure_drops_the_device(tmp_path: Path) -> None:
    iot = FakeIot()
    iot.fail("RegisterThing", "InvalidRequestException", "Thing group bulk-group not found")
    ctx = fake_context(tmp_path, f"""
        name: t
        fleets: [{{name: f, prefix: dev, count: 2}}]
        steps: [{{register_thing: {{fleet: f, template: {WORKSHOP_TEMPLATE},
                                    parameters: {{ThingName: "{{thing_name}}"}}}}}}]
        """, iot)
    await KINDS["register_thing"].run(ctx, ctx.scenario.steps[0])
    failed = [d for d in ctx.devices["f"] if d.failed]
    assert len(failed) == 1 and "bulk-group not found" in (failed[0].failed or "")
    assert journal_kinds(ctx).count("thing") == 1


def test_resource_names_by_type() -> None:
    assert resource_names({
        "thing": "arn:aws:iot:us-east-1:123456789012:thing/bulky1",
        "certificate": "arn:aws:iot:us-east-1:123456789012:cert/abc",
        "policy": "arn:aws:iot:us-east-1:123456789012:policy/p:1"}) == {
        "thing": ["bulky1"], "cert": ["abc"], "policy": ["p:1"]}


@given(st.lists(st.dictionaries(st.sampled_from(["ThingName", "SerialNumber", "CSR"]),
                                st.text()), max_size=20))
def test_bulk_file_is_one_json_line_per_device(lines: list[dict[str, str]]) -> None:
    text = bulk.parameters_file(lines).decode()
    assert [json.loads(line) for line in text.splitlines()] == lines
    assert text.count("\n") == len(lines)


def test_reports_by_offset() -> None:
    reports = bulk.Reports()
    reports.add_lines("RESULTS", json.dumps({"response": {"CertificatePem": "C", "ResourceArns": {
        "thing": "arn:aws:iot:r:a:thing/x"}}, "offset": 3}) + "\n\n")
    reports.add_lines("ERRORS", json.dumps({"offset": 1, "errorCode": "InvalidRequestException",
                                            "errorMessage": "bad line"}))
    assert reports.results[3]["CertificatePem"] == "C"
    assert reports.errors == {1: ("InvalidRequestException", "bad line")}


def _claim_service(accept: bool) -> Any:
    """Answers claim requests as AWS IoT does, on `<request topic>/accepted|rejected`."""
    def respond(session: FakeSession, topic: str, payload: bytes) -> None:
        assert f"{topic}/accepted" in session.subscriptions  # subscribed before asking
        assert f"{topic}/rejected" in session.subscriptions
        if topic == CREATE_FROM_CSR:
            session.deliver(f"{topic}/accepted", {
                "certificateId": "c1", "certificatePem": "PEM",
                "certificateOwnershipToken": "tok"})
        elif accept:
            assert json.loads(payload)["certificateOwnershipToken"] == "tok"
            session.deliver(f"{topic}/accepted", {"thingName": "lamp-7",
                                                  "deviceConfiguration": {"a": "b"}})
        else:
            session.deliver(f"{topic}/rejected", {"statusCode": 400,
                                                  "errorCode": "InvalidRequest",
                                                  "errorMessage": "template disabled"})
    return respond


@pytest.mark.parametrize("accept", [True, False])
async def test_claim_client_request_and_reply(accept: bool) -> None:
    session, metrics = FakeSession("lamp", _claim_service(accept)), Metrics()
    client = ClaimClient(session, metrics, timeout=1)
    session.on_message(lambda m: client.on_message(m.topic, m.payload))
    created = await client.create_certificate("CSR")
    assert (created.certificate_id, created.token, created.private_key_pem) == \
        ("c1", "tok", None)
    if accept:
        registered = await client.register_thing("lamps", created.token, {"Serial": "7"})
        assert registered.thing_name == "lamp-7"
        assert registered.device_configuration == {"a": "b"}
    else:
        with pytest.raises(DeviceError, match="template disabled") as e:
            await client.register_thing("lamps", created.token, {})
        assert e.value.kind == "claim_InvalidRequest"
        assert metrics.op_errors[("", "claim.register")] == {"claim_InvalidRequest": 1}
    assert session.published[-1][0] == provision_topic("lamps")


async def test_claim_client_times_out_without_a_reply() -> None:
    session = FakeSession("lamp")
    client = ClaimClient(session, Metrics(), timeout=0.05)
    with pytest.raises(DeviceError) as e:
        await client.create_certificate(None)
    assert e.value.kind == "claim_timeout"


def test_a_missing_template_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nfleets: [{name: f, prefix: d}]\n"
                    "steps: [{register_thing: {fleet: f, template: nope.json}}]\n")
    with pytest.raises(ScenarioInvalid, match=r"steps.0.register_thing.template: nope.json "
                                              r"is not a readable file"):
        load_scenario(path)


def test_template_files_are_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.json").write_text("{}")
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nfleets: [{name: f, prefix: d}]\n"
                    "steps: [{register_thing: {fleet: f, template: sub/t.json}}]\n")
    step: Any = load_scenario(path).steps[0]
    assert Path(step.template) == tmp_path / "sub" / "t.json"


@pytest.mark.parametrize("claim", ["", "claim_policy: p, claim_key: k.pem",
                                   "claim_certificate: c.pem"])
def test_fleet_provision_needs_one_claim(tmp_path: Path, claim: str) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nfleets: [{name: f, prefix: d}]\n"
                    f"steps: [{{fleet_provision: {{fleet: f, template: t, {claim}}}}}]\n")
    with pytest.raises(ScenarioInvalid, match="give either 'claim_policy'"):
        load_scenario(path)


async def test_expect_counts_a_shared_topic_per_device(tmp_path: Path) -> None:
    ctx = fake_context(tmp_path, """
        name: t
        fleets: [{name: f, prefix: dev, count: 3}]
        steps:
          - observe: {topics: [iot/ws]}
          - expect: {timeout: 0s, messages: [{topic: iot/ws, fleet: f}]}
        """)

    class Seen:
        def matching(self, topic: str) -> list[int]:
            return [1, 2]

        async def wait_for_count(self, topic: str, count: int, timeout: float) -> None:
            raise TimeoutError

    ctx.observer = Seen()  # type: ignore[assignment]
    with pytest.raises(Exception, match="at least 3 message"):
        await KINDS["expect"].run(ctx, ctx.scenario.steps[1])
    assert [(c.name, c.passed) for c in ctx.metrics.checks] == \
        [("at least 3 message(s) on iot/ws", False)]


async def test_bulk_hands_out_certificates_and_errors_by_offset(tmp_path: Path) -> None:
    """Line 1 of the file is in ERRORS: its device fails with AWS's code and message, counted
    by kind; the others take their certificates from RESULTS by offset."""
    from fleetsim.engine.steps.bulk_register import _hand_out

    iot = FakeIot()
    ctx = fake_context(tmp_path, "name: t\nfleets: [{name: f, prefix: dev, count: 3}]\n"
                                 "steps: [{wait: 0s}]\n", iot)
    devices = ctx.devices["f"]
    keys, reports = {}, bulk.Reports()
    for offset, d in enumerate(devices):
        identity = await ctx.keys.new_identity("f", d.index, d.thing_name, "ec-p256")
        keys[d.index] = identity.private_key_pem, {}
        if offset == 1:
            continue
        out = iot._op_register_thing("{}", {"ThingName": d.thing_name,
                                            "CSR": identity.csr_pem().decode()})
        reports.results[offset] = {"CertificatePem": out["certificatePem"],
                                   "ResourceArns": out["resourceArns"]}
    reports.errors[1] = ("InvalidRequestException", "The parameters are not valid JSON")
    # dev-2 was there before the task (a kept run's): reused, and not journaled by this run
    await _hand_out(ctx, devices, keys, reports, 0.0, frozenset({devices[2].thing_name}),
                    package_shadow=False)
    assert [d.failed is None for d in devices] == [True, False, True]
    assert ctx.reconcile.summary()["created"]["thing"] == 1
    assert ctx.reconcile.summary()["reused"]["thing"] == 1
    assert "line 1 of the bulk file: InvalidRequestException" in (devices[1].failed or "")
    assert devices[0].identity is not None and devices[2].certificate_arn is not None
    assert ctx.metrics.op_errors[("", "provision.task")] == {"InvalidRequestException": 1}
    assert journal_kinds(ctx).count("thing") == 1  # dev-0's; dev-2's thing is not this run's
    assert journal_kinds(ctx).count("thing_principal") == 2
