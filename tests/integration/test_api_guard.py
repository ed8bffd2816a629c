"""Who may talk to the API: loopback Host names only (unless allowed), no browser cross-site
requests, and optional SigV4 verification with botocore's own signer."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from tests.conftest import start_core
from tests.helpers import aws_client, code_of

SCOPE = "X-Amz-Credential=KEY%2F20240101%2Fus-east-1%2Fiot%2Faws4_request"
AUTH = ("AWS4-HMAC-SHA256 Credential=KEY/20240101/us-east-1/iot/aws4_request, "
        "SignedHeaders=host, Signature=00")


def send(core: RunningLocalCore, method: str, path: str, headers: dict[str, str],
         body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    url = urlparse(core.api_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers,
                        skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


def thing_exists(core: RunningLocalCore, name: str) -> bool:
    status, _, _ = send(core, "GET", f"/things/{name}", {"Authorization": AUTH})
    return status == 200


def test_a_web_page_cannot_create_a_thing(core: RunningLocalCore) -> None:
    # What a cross-site <form enctype="text/plain"> or fetch() without preflight can send.
    status, headers, body = send(core, "POST", f"/things/from-page?{SCOPE}", {
        "Content-Type": "text/plain", "Origin": "https://evil.example",
        "Sec-Fetch-Site": "cross-site"}, b"{}")
    assert status == 403 and headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "cross-site" in json.loads(body)["message"]
    status, _, body = send(core, "POST", f"/things/from-form?{SCOPE}",
                           {"Content-Type": "text/plain"}, b"{}")
    assert status == 403 and "text/plain" in json.loads(body)["message"]
    status, _, _ = send(core, "POST", f"/things/from-origin?{SCOPE}",
                        {"Content-Type": "application/json", "Origin": "null"}, b"{}")
    assert status == 403
    assert not any(thing_exists(core, n) for n in ("from-page", "from-form", "from-origin"))


def test_only_loopback_hosts_are_served(core: RunningLocalCore) -> None:
    port = urlparse(core.api_url).port
    status, _, body = send(core, "GET", "/things", {"Authorization": AUTH,
                                                    "Host": f"rebind.evil.example:{port}"})
    assert status == 403
    assert "does not serve Host 'rebind.evil.example" in json.loads(body)["message"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
        status, _, _ = send(core, "GET", "/things", {"Authorization": AUTH, "Host": host})
        assert status == 200, host


def test_same_origin_and_sdk_requests_pass(core: RunningLocalCore) -> None:
    status, _, _ = send(core, "GET", "/things", {"Authorization": AUTH,
                                                 "Sec-Fetch-Site": "none"})
    assert status == 200
    aws_client(core.api_url).create_thing(thingName="from-sdk")
    assert thing_exists(core, "from-sdk")


@pytest.fixture(scope="module")
def signed_core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    running = start_core(tmp_path_factory.mktemp("signed") / "core", extra_args=(
        "--allow-host", "devbox.example", "--credentials", "AKIDLOCAL:s3cret"))
    yield running
    running.stop()


def client(core: RunningLocalCore, service: str, key: str, secret: str) -> Any:
    return boto3.client(service, endpoint_url=core.api_url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


def test_correctly_signed_requests_pass(signed_core: RunningLocalCore) -> None:
    iot = client(signed_core, "iot", "AKIDLOCAL", "s3cret")
    iot.create_thing(thingName="signed", attributePayload={"attributes": {"a": "b"}})
    assert iot.describe_thing(thingName="signed")["attributes"] == {"a": "b"}
    assert iot.list_things(maxResults=5)["things"]
    data = client(signed_core, "iot-data", "AKIDLOCAL", "s3cret")
    data.update_thing_shadow(thingName="signed", payload=b'{"state":{"reported":{"x":1}}}')
    sts = client(signed_core, "sts", "AKIDLOCAL", "s3cret")
    assert sts.get_caller_identity()["Account"] == "123456789012"
    url = iot.generate_presigned_url("list_things", Params={"maxResults": 1})
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200


def test_wrong_secret_fails_as_the_service_answers(signed_core: RunningLocalCore) -> None:
    iot = client(signed_core, "iot", "AKIDLOCAL", "wrong")
    with pytest.raises(ClientError) as e:
        iot.create_thing(thingName="forged")
    assert code_of(e) == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert e.value.response["Error"]["Message"].startswith(
        "The request signature we calculated does not match the signature you provided.")
    with pytest.raises(ClientError) as e:
        client(signed_core, "sts", "AKIDLOCAL", "wrong").get_caller_identity()
    assert code_of(e) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as e:
        client(signed_core, "iot", "NOBODY", "s3cret").list_things()
    assert code_of(e) == "UnrecognizedClientException"
    status, _, _ = send(signed_core, "GET", "/things", {"Authorization": AUTH})  # Signature=00
    assert status == 403
    things = client(signed_core, "iot", "AKIDLOCAL", "s3cret").list_things(maxResults=250)
    assert "forged" not in [t["thingName"] for t in things["things"]]


def test_allowed_host_is_served(signed_core: RunningLocalCore) -> None:
    iot = client(signed_core, "iot", "AKIDLOCAL", "s3cret")
    port = urlparse(signed_core.api_url).port

    def add_host(request: Any, **_: Any) -> None:
        request.headers["Host"] = f"devbox.example:{port}"
    iot.meta.events.register("before-sign.iot", add_host)
    assert "things" in iot.list_things(maxResults=1)
    status, _, _ = send(signed_core, "GET", "/things", {"Host": "other.example"})
    assert status == 403


def test_s3_virtual_hosts_and_object_bodies_pass_the_guard(core: RunningLocalCore) -> None:
    """`<bucket>.localhost` is loopback (RFC 6761) and S3 bodies carry any content type, while
    a JSON service still refuses a form body and another host is still refused, in S3's XML."""
    port = core.api_url.rsplit(":", 1)[1]
    s3_auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=K/20240101/us-east-1/s3/"
                                "aws4_request, SignedHeaders=host, Signature=00"}
    aws_client(core.api_url, "s3").create_bucket(Bucket="guarded")
    put = urllib.request.Request(core.api_url + "/o.txt", data=b"x", method="PUT", headers={
        **s3_auth, "Host": f"guarded.localhost:{port}",
        "Content-Type": "application/x-www-form-urlencoded"})
    urllib.request.urlopen(put, timeout=5).close()
    evil = urllib.request.Request(core.api_url + "/o.txt", headers={
        **s3_auth, "Host": f"guarded.evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(evil, timeout=5)
    assert e.value.code == 403 and b"<Code>AccessDeniedException</Code>" in e.value.read()
