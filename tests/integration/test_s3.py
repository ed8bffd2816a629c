"""S3 on local core's port: boto3, the AWS CLI (`s3 mb/cp/ls/presign`), curl on presigned
URLs, path and virtual-hosted addressing, S3's XML errors, objects kept across a restart; and
services local core does not serve answering one NotImplemented error in their protocol."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fleetsim.localcore.launcher import RunningLocalCore
from tests.awscli import aws
from tests.conftest import start_core
from tests.helpers import aws_client, code_of

pytestmark = pytest.mark.interop


def test_objects_with_boto3(core: RunningLocalCore) -> None:
    s3 = aws_client(core.api_url, "s3")
    s3.create_bucket(Bucket="bkt3")
    s3.put_object(Bucket="bkt3", Key="a/one.json", Body=b"1", ContentType="application/json",
                  Metadata={"who": "me"})
    for i in range(5):
        s3.put_object(Bucket="bkt3", Key=f"k{i}", Body=b"x" * i)
    got = s3.get_object(Bucket="bkt3", Key="a/one.json")
    assert got["Body"].read() == b"1" and got["ContentType"] == "application/json"
    assert got["Metadata"] == {"who": "me"}
    assert s3.head_object(Bucket="bkt3", Key="k3")["ContentLength"] == 3
    assert s3.get_object(Bucket="bkt3", Key="k4", Range="bytes=1-2")["Body"].read() == b"xx"
    v2 = s3.list_objects_v2(Bucket="bkt3", Delimiter="/", MaxKeys=3)
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["a/"]
    assert [o["Key"] for o in v2["Contents"]] == ["k0", "k1"] and v2["IsTruncated"]
    rest = s3.list_objects_v2(Bucket="bkt3", Delimiter="/",
                              ContinuationToken=v2["NextContinuationToken"])
    assert [o["Key"] for o in rest["Contents"]] == ["k2", "k3", "k4"]
    v1 = s3.list_objects(Bucket="bkt3", Prefix="k", Marker="k2")
    assert [o["Key"] for o in v1["Contents"]] == ["k3", "k4"]
    s3.delete_object(Bucket="bkt3", Key="k0")
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="bkt3", Key="k0")
    with pytest.raises(Exception) as e:
        s3.delete_bucket(Bucket="bkt3")
    assert code_of(e) == "BucketNotEmpty"
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.list_objects_v2(Bucket="ghost")
    assert "bkt3" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_cli_and_presigned_url_with_curl(core: RunningLocalCore, tmp_path: Path) -> None:
    (tmp_path / "bulk.json").write_text('{"ThingName": "x"}\n')
    aws(core, tmp_path, "s3", "mb", "s3://ws-cli")
    aws(core, tmp_path, "s3", "cp", "bulk.json", "s3://ws-cli/")
    assert "bulk.json" in aws(core, tmp_path, "s3", "ls", "s3://ws-cli/").stdout
    url = aws(core, tmp_path, "s3", "presign", "s3://ws-cli/bulk.json").stdout.strip()
    out = subprocess.run(["curl", "-sSf", url], capture_output=True, text=True, timeout=10)
    assert out.stdout == '{"ThingName": "x"}\n'
    v4 = aws_client(core.api_url, "s3").generate_presigned_url(
        "get_object", Params={"Bucket": "ws-cli", "Key": "bulk.json"}, ExpiresIn=60)
    assert subprocess.run(["curl", "-sSf", v4], capture_output=True, text=True,
                          timeout=10).stdout == '{"ThingName": "x"}\n'
    expired = url.rsplit("Expires=", 1)[0] + "Expires=1"
    out = subprocess.run(["curl", "-sS", expired], capture_output=True, text=True, timeout=10)
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in out.stdout
    aws(core, tmp_path, "s3", "cp", "s3://ws-cli/bulk.json", "back.json")
    assert (tmp_path / "back.json").read_text() == '{"ThingName": "x"}\n'


def test_virtual_hosted_style(core: RunningLocalCore) -> None:
    """What botocore sends with `addressing_style: virtual` and http://localhost:PORT."""
    aws_client(core.api_url, "s3").create_bucket(Bucket="vhost")
    port = core.api_url.rsplit(":", 1)[1]
    auth = ("AWS4-HMAC-SHA256 Credential=K/20240101/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=00")
    headers = {"Host": f"vhost.localhost:{port}", "Authorization": auth}
    put = urllib.request.Request(core.api_url + "/dir/v.txt", data=b"hello", method="PUT",
                                 headers=headers)
    urllib.request.urlopen(put, timeout=5).close()
    got = urllib.request.Request(core.api_url + "/dir/v.txt", headers=headers)
    with urllib.request.urlopen(got, timeout=5) as response:
        assert response.read() == b"hello"
    assert aws_client(core.api_url, "s3").get_object(
        Bucket="vhost", Key="dir/v.txt")["Body"].read() == b"hello"
    missing = urllib.request.Request(core.api_url + "/nope", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(missing, timeout=5)
    body = e.value.read().decode()
    assert e.value.code == 404 and "<Code>NoSuchKey</Code>" in body and "<Key>nope</Key>" in body


@pytest.mark.parametrize(("args", "operation"), [
    (("sns", "list-topics"), "ListTopics"),                         # query
    (("cloudformation", "list-stacks"), "ListStacks"),              # query
    (("dynamodb", "list-tables"), "ListTables"),                    # json
    (("apigateway", "get-rest-apis"), "GetRestApis"),               # rest-json
    (("route53", "list-hosted-zones"), "ListHostedZones"),          # rest-xml
    (("ec2", "describe-vpcs"), "DescribeVpcs"),                     # ec2
])
def test_unserved_service_is_one_readable_error(core: RunningLocalCore, tmp_path: Path,
                                                args: tuple[str, ...], operation: str) -> None:
    out = aws(core, tmp_path, *args, check=False)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"An error occurred (NotImplemented) when calling the "
                               f"{operation} operation: local core does not serve")


def test_sqs_with_endpoint_url(core: RunningLocalCore, tmp_path: Path) -> None:
    """AWS CLI v1 sends SQS to queue.amazonaws.com unless --endpoint-url is given."""
    out = aws(core, tmp_path, "sqs", "list-queues", "--endpoint-url", core.api_url,
              check=False)
    assert "An error occurred (NotImplemented) when calling the ListQueues operation" \
        in out.stderr


def test_objects_survive_a_restart(tmp_path: Path) -> None:
    first = start_core(tmp_path / "core")
    try:
        s3 = aws_client(first.api_url, "s3")
        s3.create_bucket(Bucket="keep")
        s3.put_object(Bucket="keep", Key="k", Body=b"kept")
    finally:
        first.stop()
    second = start_core(tmp_path / "core")
    try:
        assert aws_client(second.api_url, "s3").get_object(
            Bucket="keep", Key="k")["Body"].read() == b"kept"
    finally:
        second.stop()
