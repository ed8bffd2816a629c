"""Just-in-time provisioning and registration at CONNECT, against a local core process: the
CA registered with the workshop's CLI commands (get-registration-code, a verification
certificate, register-ca-certificate), devices over mutual TLS with SNI."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.pki import CertificateAuthority, certificate_pem, generate_key, private_key_pem
from fleetsim.pki.certs import subject_name
from fleetsim.pki.keys import write_private
from tests.awscli import aws_json
from tests.mqtt_testing import Device, RawClient, next_publish, pub, subscribe

WORKSHOP = Path("/work/shared/reference/workshop")
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})
ACCEPTED = (0x20, b"\x00\x00")


def jitp_template(policy: str) -> str:
    """The workshop's JITP template with ${IOT_POLICY} substituted, as the lab does."""
    return (WORKSHOP / "jitp-templateBody.json").read_text().replace("${IOT_POLICY}", policy)


def jitp_resources(iot: Any) -> None:
    """The policy and thing group `jitp_template("jitp-policy")` names, made if missing (the
    module shares one local core)."""
    if not any(p["policyName"] == "jitp-policy" for p in iot.list_policies()["policies"]):
        iot.create_policy(policyName="jitp-policy", policyDocument=ALLOW_ALL)
    if not iot.list_thing_groups(namePrefixFilter="bulk-group")["thingGroups"]:
        iot.create_thing_group(thingGroupName="bulk-group")


def register_ca(core: RunningLocalCore, cwd: Path, name: str, *, auto: bool = True,
                template: str | None = None, active: bool = True) -> tuple[CertificateAuthority,
                                                                           str]:
    """The labs' steps with the AWS CLI: a CA, its verification certificate for the
    registration code, register-ca-certificate. Returns (CA, caCertificateId)."""
    ca = CertificateAuthority.create(f"{name} CA", "rsa-2048")
    folder = cwd / name
    folder.mkdir()
    (folder / "rootCA.pem").write_bytes(certificate_pem(ca.cert))
    code = aws_json(core, folder, "iot", "get-registration-code")["registrationCode"]
    verification = ca.issue_device(generate_key().public_key(), code)
    (folder / "verificationCert.pem").write_bytes(certificate_pem(verification))
    args = ["iot", "register-ca-certificate", "--ca-certificate", "file://rootCA.pem",
            "--verification-cert", "file://verificationCert.pem"]
    args += ["--set-as-active"] if active else []
    args += ["--allow-auto-registration"] if auto else []
    if template is not None:
        (folder / "regconfig.json").write_text(json.dumps(
            {"templateBody": template, "roleArn": "arn:aws:iam::123456789012:role/JITP"}))
        args += ["--registration-config", "file://regconfig.json"]
    ca_id = aws_json(core, folder, *args)["certificateId"]
    return ca, ca_id


def device(core: RunningLocalCore, folder: Path, ca: CertificateAuthority, name: str,
           with_chain: bool = True, **subject: str) -> Device:
    """A device key and certificate signed by `ca`, the CA after it in the chain file (as the
    workshop's `cat deviceCert.crt rootCA.pem > deviceCertAndCACert.crt`)."""
    key = generate_key("ec-p256")
    cert = ca.issue(key.public_key(), subject_name(name, **subject))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(certificate_pem(cert) + (certificate_pem(ca.cert) if with_chain
                                                   else b""))
    write_private(key_path, private_key_pem(key))
    return Device(name, cert_path, key_path, cert.public_bytes(Encoding.DER), name,
                  core.root_ca)


async def attempt(core: RunningLocalCore, dev: Device, sni: bool = True
                  ) -> tuple[int, bytes] | None:
    """One CONNECT: the CONNACK, or None when the broker hangs up."""
    client = await RawClient.open(core.mqtt_port, dev, host="localhost" if sni else "127.0.0.1")
    try:
        return await client.connect(dev.name)
    finally:
        await client.close()


def log_text(core: RunningLocalCore) -> str:
    return (core.state_dir.parent / f"{core.state_dir.name}.log").read_text()


def wait_for_log(core: RunningLocalCore, text: str) -> str:
    deadline = time.monotonic() + 5
    while text not in (log := log_text(core)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


async def observer(core: RunningLocalCore, iot: Any, folder: Path, topic: str) -> RawClient:
    created = iot.create_keys_and_certificate(setAsActive=True)
    (folder / "observer.crt").write_text(created["certificatePem"])
    write_private(folder / "observer.key", created["keyPair"]["PrivateKey"].encode())
    if not any(p["policyName"] == "jit-observer" for p in iot.list_policies()["policies"]):
        iot.create_policy(policyName="jit-observer", policyDocument=ALLOW_ALL)
    iot.attach_policy(policyName="jit-observer", target=created["certificateArn"])
    obs = Device("observer", folder / "observer.crt", folder / "observer.key", b"", "observer",
                 core.root_ca)
    client = await RawClient.open(core.mqtt_port, obs)
    assert await client.connect(f"observer-{time.monotonic_ns()}") == ACCEPTED
    await subscribe(client, (topic, 1))
    return client


async def test_jitp_lab(core: RunningLocalCore, iot: Any, tmp_path: Path) -> None:
    jitp_resources(iot)
    ca, ca_id = register_ca(core, tmp_path, "jitp", template=jitp_template("jitp-policy"))
    dev = device(core, tmp_path, ca, "jitp-device-1", country="DE")

    assert await attempt(core, dev) is None  # "The connection was lost ... normal behaviour"
    assert await attempt(core, dev) == ACCEPTED

    cert = iot.describe_certificate(certificateId=dev.certificate_id)["certificateDescription"]
    assert (cert["status"], cert["caCertificateId"]) == ("ACTIVE", ca_id)
    thing = iot.describe_thing(thingName="jitp-device-1")
    assert thing["attributes"] == {"Country": "DE"}
    assert iot.list_thing_principals(thingName="jitp-device-1")["principals"] == [
        cert["certificateArn"]]
    assert [p["policyName"] for p in iot.list_attached_policies(
        target=cert["certificateArn"])["policies"]] == ["jitp-policy"]
    groups = iot.list_thing_groups_for_thing(thingName="jitp-device-1")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["bulk-group"]

    obs = await observer(core, iot, tmp_path, "ji/tp")
    client = await RawClient.open(core.mqtt_port, dev, host="localhost")
    assert await client.connect(dev.name) == ACCEPTED
    await client.send(pub("ji/tp", b'{"hello": "jitp"}', qos=1))
    assert await client.read() == (0x40, b"\x00\x01")  # PUBACK
    received = await next_publish(obs)
    assert received is not None and received[:2] == ("ji/tp", b'{"hello": "jitp"}')
    await client.close()
    await obs.close()


async def test_jitr_event_each_connect_until_activated(core: RunningLocalCore, iot: Any,
                                                       tmp_path: Path) -> None:
    ca, ca_id = register_ca(core, tmp_path, "jitr")
    obs = await observer(core, iot, tmp_path, "$aws/events/certificates/registered/#")
    dev = device(core, tmp_path, ca, "jitr-device-1", with_chain=False)

    assert await attempt(core, dev) is None
    received = await next_publish(obs)
    assert received is not None
    topic, event = received[0], json.loads(received[1])
    assert topic == f"$aws/events/certificates/registered/{ca_id}"
    assert {k: event[k] for k in ("certificateId", "caCertificateId", "certificateStatus",
                                  "awsAccountId")} == {
        "certificateId": dev.certificate_id, "caCertificateId": ca_id,
        "certificateStatus": "PENDING_ACTIVATION", "awsAccountId": "123456789012"}
    assert {"timestamp", "certificateRegistrationTimestamp"} <= set(event)

    assert await attempt(core, dev) is None  # still PENDING_ACTIVATION: the event again
    again = await next_publish(obs)
    assert again is not None and json.loads(again[1])["certificateId"] == dev.certificate_id
    assert await next_publish(obs, timeout=0.5) is None  # exactly one event per connect

    # What the JITR function does on the event: activate, attach a policy.
    cert_arn = iot.describe_certificate(
        certificateId=dev.certificate_id)["certificateDescription"]["certificateArn"]
    iot.update_certificate(certificateId=dev.certificate_id, newStatus="ACTIVE")
    iot.attach_policy(policyName="jit-observer", target=cert_arn)
    assert await attempt(core, dev) == ACCEPTED
    await obs.close()


async def test_unregistered_ca_is_refused(core: RunningLocalCore, iot: Any,
                                          tmp_path: Path) -> None:
    """Local core's TLS trusts registered CAs only: the handshake fails, nothing is
    registered."""
    stranger = CertificateAuthority.create("Unregistered CA", "ec-p256")
    dev = device(core, tmp_path, stranger, "stranger-1")
    try:
        refused = await attempt(core, dev)
    except ssl.SSLError:  # TLS 1.2: the handshake fails on the client's side
        refused = None
    assert refused is None
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_certificate(certificateId=dev.certificate_id)


async def test_ca_without_auto_registration_is_refused_and_logged(
        core: RunningLocalCore, iot: Any, tmp_path: Path) -> None:
    ca, ca_id = register_ca(core, tmp_path, "noauto", auto=False)
    dev = device(core, tmp_path, ca, "noauto-1")
    assert await attempt(core, dev) is None
    log = wait_for_log(core, f"refused certificate {dev.certificate_id[:12]}")
    assert f"auto-registration is not enabled on its CA certificate {ca_id}" in log
    assert iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"] == []


async def test_inactive_ca_and_missing_sni_are_refused(core: RunningLocalCore, iot: Any,
                                                       tmp_path: Path) -> None:
    ca, ca_id = register_ca(core, tmp_path, "inactive", active=False)
    dev = device(core, tmp_path, ca, "inactive-1")
    assert await attempt(core, dev) is None
    assert f"its CA certificate {ca_id} is INACTIVE" in wait_for_log(
        core, f"refused certificate {dev.certificate_id[:12]}")

    ca2, ca2_id = register_ca(core, tmp_path, "nosni")
    dev2 = device(core, tmp_path, ca2, "nosni-1")
    assert await attempt(core, dev2, sni=False) is None
    assert "sent no Server Name Indication" in wait_for_log(
        core, f"refused certificate {dev2.certificate_id[:12]}")
    assert iot.list_certificates_by_ca(caCertificateId=ca2_id)["certificates"] == []


async def test_subject_missing_a_template_parameter_fails_provisioning(
        core: RunningLocalCore, iot: Any, tmp_path: Path) -> None:
    jitp_resources(iot)
    ca, _ = register_ca(core, tmp_path, "nocountry", template=jitp_template("jitp-policy"))
    dev = device(core, tmp_path, ca, "nocountry-1")  # no C= in the subject
    assert await attempt(core, dev) is None
    log = wait_for_log(core, f"provisioning of certificate {dev.certificate_id[:12]}")
    assert "AWS::IoT::Certificate::Country" in log
    cert = iot.describe_certificate(certificateId=dev.certificate_id)["certificateDescription"]
    assert cert["status"] == "PENDING_ACTIVATION"
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="nocountry-1")
    assert await attempt(core, dev) is None  # still refused


async def test_fifty_devices_of_one_ca_at_once_are_each_registered_once(
        core: RunningLocalCore, iot: Any, tmp_path: Path) -> None:
    jitp_resources(iot)
    ca, ca_id = register_ca(core, tmp_path, "fifty", template=jitp_template("jitp-policy"))
    devices = [device(core, tmp_path, ca, f"fifty-{n:02d}", country="FR") for n in range(50)]

    # Each device twice at once: 100 connects of 50 unknown certificates. The connect that
    # registers a certificate is dropped; its twin may come after provisioning and get in.
    firsts = await asyncio.gather(*(attempt(core, d) for d in devices + devices))
    assert set(firsts) <= {None, ACCEPTED}
    assert all(None in (firsts[n], firsts[n + 50]) for n in range(50))
    certs = iot.list_certificates_by_ca(caCertificateId=ca_id, pageSize=250)["certificates"]
    assert sorted(c["certificateId"] for c in certs) == sorted(d.certificate_id
                                                               for d in devices)
    assert {c["status"] for c in certs} == {"ACTIVE"}
    for d in devices[:5]:
        assert len(iot.list_thing_principals(thingName=d.name)["principals"]) == 1
    assert "ResourceAlreadyExists" not in log_text(core)
    seconds = await asyncio.gather(*(attempt(core, d) for d in devices))
    assert seconds == [ACCEPTED] * 50

