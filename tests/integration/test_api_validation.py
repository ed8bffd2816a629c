"""Bad input gets AWS's answer, not a 500: wrong-typed members, missing members, deep JSON,
values that are not what the model allows, and the semantic checks AWS makes (a target that is
not a target, an expired certificate, a certificate registered twice, a SHA-1 CSR)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fleetsim.localcore.launcher import RunningLocalCore
from tests.helpers import ALLOW_ALL, code_of

AUTH = ("AWS4-HMAC-SHA256 Credential=KEY/20240101/us-east-1/iot/aws4_request, "
        "SignedHeaders=host, Signature=00")


def call(core: RunningLocalCore, method: str, path: str, body: Any = None,
         raw: bytes | None = None) -> tuple[int, str, dict[str, Any]]:
    """(status, x-amzn-ErrorType, JSON answer) of one iot request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(core.api_url + path, data=data, method=method, headers={
        "Authorization": AUTH, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, "", json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-amzn-ErrorType", ""), json.loads(e.read() or b"{}")


@pytest.mark.parametrize(("method", "path", "body", "where"), [
    ("POST", "/things/t1", {"attributePayload": "x"}, "attributePayload"),
    ("POST", "/policies/p1", {"policyDocument": {"Statement": []}}, "policyDocument"),
    ("PUT", "/target-policies/p1", {"target": ["a"]}, "target"),
    ("POST", "/things/t1", {"attributePayload": {"attributes": {}, "merge": "yes"}},
     "attributePayload.merge"),
    ("PATCH", "/event-configurations", {"eventConfigurations": {"THING": {"Enabled": "no"}}},
     "eventConfigurations.THING.Enabled"),
    ("PUT", "/thing-groups/updateThingGroupsForThing", {}, "thingName"),
    ("POST", "/thing-groups/g1", {"thingGroupProperties": {"attributePayload": [1]}},
     "thingGroupProperties.attributePayload"),
])
def test_wrong_or_missing_member_is_a_400_naming_it(core: RunningLocalCore, method: str,
                                                    path: str, body: Any, where: str) -> None:
    status, code, answer = call(core, method, path, body)
    assert status == 400
    assert code == "InvalidRequestException"
    assert answer["message"].startswith("1 validation error detected: ")
    assert f"at '{where}' failed to satisfy constraint: " in answer["message"]


def test_enum_length_and_range_are_checked_at_depth(core: RunningLocalCore) -> None:
    status, code, answer = call(core, "POST", "/things/t2", {
        "attributePayload": {"attributes": {"k" * 200: "v"}}})
    assert (status, code) == (400, "InvalidRequestException")
    assert "Map keys must satisfy constraint: [Member must have length less than or equal to " \
           "128]" in answer["message"]
    status, code, answer = call(core, "GET", "/things?maxResults=0")
    assert (status, code) == (400, "InvalidRequestException")
    assert ("Value '0' at 'maxResults' failed to satisfy constraint: Member must have value "
            "greater than or equal to 1") in answer["message"]


def test_deeply_nested_json_is_a_serialization_error(core: RunningLocalCore) -> None:
    status, code, _ = call(core, "POST", "/things/t3", raw=b'{"a":' + b"[" * 100_000 +
                           b"]" * 100_000 + b"}")
    assert (status, code) == (400, "SerializationException")


def test_garbage_policy_target_is_refused(iot: Any) -> None:
    iot.create_policy(policyName="target-check", policyDocument=ALLOW_ALL)
    with pytest.raises(ClientError) as e:
        iot.attach_policy(policyName="target-check", target="garbage")
    assert code_of(e) == "InvalidRequestException"
    assert "garbage is not a certificate ARN, a thing group ARN or an Amazon Cognito identity" \
        in e.value.response["Error"]["Message"]
    assert iot.list_targets_for_policy(policyName="target-check")["targets"] == []
    iot.attach_policy(policyName="target-check",
                      target="us-east-1:0f6b5e59-2d33-4a55-8d7b-1b2c3d4e5f60")  # Cognito id


def _self_signed(not_before: dt.datetime, not_after: dt.datetime) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM).decode()


def test_expired_certificate_is_not_registered(iot: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    expired = _self_signed(now - dt.timedelta(days=30), now - dt.timedelta(days=1))
    with pytest.raises(ClientError) as e:
        iot.register_certificate_without_ca(certificatePem=expired, status="ACTIVE")
    assert code_of(e) == "CertificateValidationException"
    assert "expired" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        iot.register_certificate(certificatePem=expired, setAsActive=True)
    assert code_of(e) == "CertificateValidationException"


def test_registering_an_existing_certificate_says_it_exists(iot: Any) -> None:
    created = iot.create_keys_and_certificate(setAsActive=False)
    with pytest.raises(ClientError) as e:
        iot.register_certificate(certificatePem=created["certificatePem"])
    assert code_of(e) == "ResourceAlreadyExistsException"
    assert e.value.response["Error"]["Message"] == \
        "The certificate is already provisioned or registered"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_sha1_csr_is_refused_for_its_algorithm(iot: Any) -> None:
    # cryptography no longer signs with SHA-1; the openssl command still does.
    csr = subprocess.run(["openssl", "req", "-new", "-sha1", "-newkey", "rsa:2048", "-nodes",
                          "-subj", "/CN=sha1", "-keyout", "/dev/null"],
                         capture_output=True, check=True, text=True).stdout
    algorithm = x509.load_pem_x509_csr(csr.encode()).signature_hash_algorithm
    assert algorithm is not None and algorithm.name == "sha1"
    with pytest.raises(ClientError) as e:
        iot.create_certificate_from_csr(certificateSigningRequest=csr)
    assert code_of(e) == "InvalidRequestException"
    message = e.value.response["Error"]["Message"]
    assert "SHA1" in message and "does not support" in message
    assert "does not verify" not in message


def test_policy_with_versions_delete_conflict_message(iot: Any) -> None:
    iot.create_policy(policyName="versioned", policyDocument=ALLOW_ALL)
    iot.create_policy_version(policyName="versioned", policyDocument=ALLOW_ALL,
                              setAsDefault=True)
    with pytest.raises(ClientError) as e:
        iot.delete_policy(policyName="versioned")
    assert code_of(e) == "DeleteConflictException"
    assert e.value.response["Error"]["Message"] == (
        "Cannot delete the policy because it has one or more policy versions attached to it "
        "(name=versioned)")


@pytest.mark.parametrize("condition", ["x", {"StringEquals": "x"}, 3, None, []])
def test_create_policy_refuses_malformed_condition(iot: Any, condition: Any) -> None:
    document = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "iot:Connect", "Resource": "*", "Condition": condition}]})
    with pytest.raises(ClientError) as e:
        iot.create_policy(policyName="bad-condition", policyDocument=document)
    assert code_of(e) == "MalformedPolicyException"
    assert e.value.response["Error"]["Message"].startswith("Policy document is Malformed: ")
    iot.create_policy(policyName="good-condition", policyDocument=ALLOW_ALL)
    with pytest.raises(ClientError) as e:
        iot.create_policy_version(policyName="good-condition", policyDocument=document)
    assert code_of(e) == "MalformedPolicyException"
    iot.delete_policy(policyName="good-condition")


def test_list_thing_groups_is_recursive_by_default_with_or_without_parent(iot: Any) -> None:
    iot.create_thing_group(thingGroupName="lg-root")
    iot.create_thing_group(thingGroupName="lg-child", parentGroupName="lg-root")
    iot.create_thing_group(thingGroupName="lg-grandchild", parentGroupName="lg-child")

    def names(**kw: Any) -> set[str]:
        return {g["groupName"] for g in iot.list_thing_groups(namePrefixFilter="lg-", **kw)[
            "thingGroups"]}

    assert names() == {"lg-root", "lg-child", "lg-grandchild"}
    assert names(recursive=False) == {"lg-root"}
    assert names(parentGroup="lg-root") == {"lg-child", "lg-grandchild"}
    assert names(parentGroup="lg-root", recursive=False) == {"lg-child"}


def _post_raw(core: RunningLocalCore, head: str, body_chunks: list[bytes]) -> bytes:
    """Send a request by hand (so the body can be chunked or never end); the answer's bytes."""
    url = urllib.parse.urlparse(core.api_url)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), 10) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # answered and closed before the whole body was sent
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(4096)
            if not data:
                break
            answer += data
        return answer


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_body_is_413_without_reading_it_all(core: RunningLocalCore,
                                                      chunked: bool) -> None:
    size = 8 << 20  # 8 MiB, above the 1 MiB cap
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (f"POST /things/big HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n"
            f"Content-Type: application/json\r\n{length}\r\n\r\n")
    block = b"x" * (1 << 20)
    chunks = [b"%x\r\n" % len(block) + block + b"\r\n" if chunked else block] * 8
    answer = _post_raw(core, head, chunks)
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 413")
    assert b"x-amzn-ErrorType: RequestEntityTooLargeException" in rest
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body == {"message": "Request must be smaller than 1048576 bytes"}
