"""Certificates, CA certificates and policies through boto3 against a real local core."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fleetsim.localcore.launcher import RunningLocalCore
from fleetsim.pki import (
    CertificateAuthority,
    build_csr,
    certificate_pem,
    generate_key,
    load_private_key,
)
from tests.helpers import ALLOW_ALL, code_of


def test_create_keys_and_certificate(iot: Any, core: RunningLocalCore) -> None:
    out = iot.create_keys_and_certificate(setAsActive=True)
    cert = x509.load_pem_x509_certificate(out["certificatePem"].encode())
    from fleetsim.pki import certificate_id

    assert out["certificateId"] == certificate_id(cert.public_bytes(Encoding.DER))
    assert out["certificateArn"].endswith(f":cert/{out['certificateId']}")
    key = load_private_key(out["keyPair"]["PrivateKey"].encode())
    assert key.key_size == 2048  # RSA-2048 like AWS
    assert out["keyPair"]["PrivateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert out["keyPair"]["PublicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    root = x509.load_pem_x509_certificate(core.root_ca.read_bytes())
    cert.verify_directly_issued_by(root)
    desc = iot.describe_certificate(certificateId=out["certificateId"])["certificateDescription"]
    assert desc["status"] == "ACTIVE" and desc["certificateMode"] == "DEFAULT"
    assert desc["certificatePem"] == out["certificatePem"]
    assert desc["ownedBy"] == "123456789012"
    inactive = iot.create_keys_and_certificate(setAsActive=False)
    assert iot.describe_certificate(certificateId=inactive["certificateId"])[
        "certificateDescription"]["status"] == "INACTIVE"


def test_delete_certificate_rules(iot: Any) -> None:
    out = iot.create_keys_and_certificate(setAsActive=True)
    cid, arn = out["certificateId"], out["certificateArn"]
    iot.create_policy(policyName="cert-del", policyDocument=ALLOW_ALL)
    iot.attach_policy(policyName="cert-del", target=arn)
    iot.create_thing(thingName="cert-del-thing")
    iot.attach_thing_principal(thingName="cert-del-thing", principal=arn)
    with pytest.raises(ClientError) as e:
        iot.delete_certificate(certificateId=cid)
    assert code_of(e) == "CertificateStateException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 406
    assert e.value.response["Error"]["Message"] == (
        f"Certificate must be deactivated (not ACTIVE) before deletion. Id: {cid}")
    iot.update_certificate(certificateId=cid, newStatus="INACTIVE")
    with pytest.raises(ClientError) as e:
        iot.delete_certificate(certificateId=cid)
    assert code_of(e) == "DeleteConflictException"
    iot.detach_thing_principal(thingName="cert-del-thing", principal=arn)
    with pytest.raises(ClientError) as e:
        iot.delete_certificate(certificateId=cid)
    assert code_of(e) == "DeleteConflictException"  # a policy is still attached
    iot.delete_certificate(certificateId=cid, forceDelete=True)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_certificate(certificateId=cid)
    assert iot.list_targets_for_policy(policyName="cert-del")["targets"] == []


def test_revoked_certificate_cannot_be_reactivated(iot: Any) -> None:
    cid = iot.create_keys_and_certificate(setAsActive=True)["certificateId"]
    iot.update_certificate(certificateId=cid, newStatus="REVOKED")
    with pytest.raises(ClientError) as e:
        iot.update_certificate(certificateId=cid, newStatus="ACTIVE")
    assert code_of(e) == "CertificateStateException"


def test_certificate_from_csr_and_listing(iot: Any) -> None:
    key = generate_key()
    out = iot.create_certificate_from_csr(
        certificateSigningRequest=build_csr(key, "csr-device").decode(), setAsActive=True)
    cert = x509.load_pem_x509_certificate(out["certificatePem"].encode())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    listed = [c["certificateId"] for page in iot.get_paginator("list_certificates").paginate(
        PaginationConfig={"PageSize": 2}) for c in page["certificates"]]
    assert out["certificateId"] in listed and len(listed) == len(set(listed))
    with pytest.raises(ClientError) as e:
        iot.create_certificate_from_csr(certificateSigningRequest="not a csr")
    assert code_of(e) == "InvalidRequestException"


def test_register_ca_and_certificates(iot: Any, core: RunningLocalCore) -> None:
    ca = CertificateAuthority.create("my workshop CA")
    code = iot.get_registration_code()["registrationCode"]
    assert iot.get_registration_code()["registrationCode"] == code  # stable
    wrong = ca.issue_device(generate_key().public_key(), "not-the-code")
    with pytest.raises(ClientError) as e:
        iot.register_ca_certificate(caCertificate=certificate_pem(ca.cert).decode(),
                                    verificationCertificate=certificate_pem(wrong).decode())
    assert code_of(e) == "RegistrationCodeValidationException"
    verification = ca.issue_device(generate_key().public_key(), code)
    reg = iot.register_ca_certificate(
        caCertificate=certificate_pem(ca.cert).decode(),
        verificationCertificate=certificate_pem(verification).decode(),
        setAsActive=False, allowAutoRegistration=True,
        registrationConfig={"templateBody": "{}", "roleArn": "arn:aws:iam::123456789012:role/r"})
    ca_id = reg["certificateId"]
    desc = iot.describe_ca_certificate(certificateId=ca_id)
    assert desc["certificateDescription"]["status"] == "INACTIVE"
    assert desc["certificateDescription"]["autoRegistrationStatus"] == "ENABLE"
    assert desc["registrationConfig"]["templateBody"] == "{}"
    device = ca.issue_device(generate_key().public_key(), "byo-device")
    device_pem = certificate_pem(device).decode()
    with pytest.raises(ClientError) as e:  # the CA is not ACTIVE yet
        iot.register_certificate(certificatePem=device_pem, status="ACTIVE")
    assert code_of(e) == "CertificateStateException"
    iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE")
    out = iot.register_certificate(certificatePem=device_pem, status="ACTIVE")
    desc = iot.describe_certificate(certificateId=out["certificateId"])["certificateDescription"]
    assert desc["caCertificateId"] == ca_id and desc["status"] == "ACTIVE"
    by_ca = iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]
    assert [c["certificateId"] for c in by_ca] == [out["certificateId"]]
    with pytest.raises(ClientError) as e:
        iot.register_certificate(certificatePem=device_pem, status="ACTIVE")
    assert code_of(e) == "ResourceAlreadyExistsException"
    stranger = CertificateAuthority.create("unregistered").issue_device(
        generate_key().public_key())
    with pytest.raises(ClientError) as e:
        iot.register_certificate(certificatePem=certificate_pem(stranger).decode())
    assert code_of(e) == "CertificateValidationException"
    no_ca = iot.register_certificate_without_ca(certificatePem=certificate_pem(stranger).decode(),
                                                status="ACTIVE")
    desc = iot.describe_certificate(certificateId=no_ca["certificateId"])
    assert desc["certificateDescription"]["certificateMode"] == "SNI_ONLY"
    assert ca_id in [c["certificateId"] for c in iot.list_ca_certificates()["certificates"]]
    with pytest.raises(ClientError) as e:
        iot.delete_ca_certificate(certificateId=ca_id)
    assert code_of(e) == "CertificateStateException"
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    iot.delete_ca_certificate(certificateId=ca_id)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_ca_certificate(certificateId=ca_id)


# --- policies -------------------------------------------------------------------------------

def test_policy_lifecycle(iot: Any) -> None:
    created = iot.create_policy(policyName="pol", policyDocument=ALLOW_ALL)
    assert created["policyVersionId"] == "1"
    got = iot.get_policy(policyName="pol")
    assert got["policyDocument"] == ALLOW_ALL and got["defaultVersionId"] == "1"
    with pytest.raises(ClientError) as e:
        iot.create_policy(policyName="pol", policyDocument=ALLOW_ALL)
    assert code_of(e) == "ResourceAlreadyExistsException"
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="pol", target=cert["certificateArn"])
    assert iot.list_attached_policies(target=cert["certificateArn"])["policies"] == [
        {"policyName": "pol", "policyArn": created["policyArn"]}]
    assert iot.list_targets_for_policy(policyName="pol")["targets"] == [cert["certificateArn"]]
    assert [p["policyName"] for p in iot.list_principal_policies(
        principal=cert["certificateArn"])["policies"]] == ["pol"]
    with pytest.raises(ClientError) as e:
        iot.delete_policy(policyName="pol")
    assert code_of(e) == "DeleteConflictException"
    assert e.value.response["Error"]["Message"] == (
        "The policy cannot be deleted as the policy is attached to one or more principals "
        "(name=pol)")
    iot.detach_policy(policyName="pol", target=cert["certificateArn"])
    iot.delete_policy(policyName="pol")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_policy(policyName="pol")


@pytest.mark.parametrize("document", ["not json", '{"Statement": []}',
                                      '{"Statement": [{"Effect": "Allow", "Action": "iot:*"}]}'])
def test_malformed_policy(iot: Any, document: str) -> None:
    with pytest.raises(ClientError) as e:
        iot.create_policy(policyName="bad", policyDocument=document)
    assert code_of(e) == "MalformedPolicyException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_policy_versions(iot: Any) -> None:
    iot.create_policy(policyName="ver", policyDocument=ALLOW_ALL)
    for i in range(2, 6):
        out = iot.create_policy_version(policyName="ver", policyDocument=ALLOW_ALL,
                                        setAsDefault=(i == 3))
        assert out["policyVersionId"] == str(i)
    with pytest.raises(ClientError) as e:
        iot.create_policy_version(policyName="ver", policyDocument=ALLOW_ALL)
    assert code_of(e) == "VersionsLimitExceededException"
    versions = iot.list_policy_versions(policyName="ver")["policyVersions"]
    assert [(v["versionId"], v["isDefaultVersion"]) for v in versions] == [
        ("5", False), ("4", False), ("3", True), ("2", False), ("1", False)]
    assert iot.get_policy(policyName="ver")["defaultVersionId"] == "3"
    with pytest.raises(ClientError) as e:
        iot.delete_policy_version(policyName="ver", policyVersionId="3")
    assert code_of(e) == "DeleteConflictException"
    iot.set_default_policy_version(policyName="ver", policyVersionId="5")
    assert iot.get_policy_version(policyName="ver", policyVersionId="5")["isDefaultVersion"]
    with pytest.raises(ClientError) as e:
        iot.delete_policy(policyName="ver")
    assert code_of(e) == "DeleteConflictException"  # non-default versions exist
    for v in ("1", "2", "3", "4"):
        iot.delete_policy_version(policyName="ver", policyVersionId=v)
    iot.delete_policy(policyName="ver")
    assert "ver" not in [p["policyName"] for p in iot.list_policies()["policies"]]


def test_group_policies_are_inherited(iot: Any) -> None:
    iot.create_policy(policyName="root-pol", policyDocument=ALLOW_ALL)
    iot.create_policy(policyName="leaf-pol", policyDocument=ALLOW_ALL)
    root = iot.create_thing_group(thingGroupName="pol-root")
    leaf = iot.create_thing_group(thingGroupName="pol-leaf", parentGroupName="pol-root")
    iot.attach_policy(policyName="root-pol", target=root["thingGroupArn"])
    iot.attach_policy(policyName="leaf-pol", target=leaf["thingGroupArn"])
    assert [p["policyName"] for p in iot.list_attached_policies(
        target=leaf["thingGroupArn"], recursive=True)["policies"]] == ["leaf-pol", "root-pol"]
    iot.create_thing(thingName="pol-member")
    iot.add_thing_to_thing_group(thingGroupName="pol-leaf", thingName="pol-member")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    effective = iot.get_effective_policies(principal=cert["certificateArn"],
                                           thingName="pol-member")["effectivePolicies"]
    assert [p["policyName"] for p in effective] == ["leaf-pol", "root-pol"]
    assert effective[0]["policyDocument"] == ALLOW_ALL
