"""Pure parts of the s3 and bulk features: aws-chunked bodies, addressing, report lines."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.localcore.features.bulk import report
from fleetsim.localcore.features.s3 import chunked
from fleetsim.localcore.features.s3.addressing import bucket_and_key, virtual_bucket

HOSTS = ("localhost", "127.0.0.1")


def encode(chunks: list[bytes], signed: bool) -> bytes:
    out = b""
    for c in [*chunks, b""]:
        extension = b";chunk-signature=" + b"0" * 64 if signed else b""
        out += f"{len(c):x}".encode() + extension + b"\r\n" + c + (b"\r\n" if c else b"")
    return out + b"\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"


@given(st.lists(st.binary(max_size=300), max_size=6), st.booleans())
def test_aws_chunked_round_trip(chunks: list[bytes], signed: bool) -> None:
    chunks = [c for c in chunks if c]
    assert chunked.decode(encode(chunks, signed)) == b"".join(chunks)


def test_aws_chunked_errors_name_the_problem() -> None:
    with pytest.raises(chunked.ChunkedError, match="not hexadecimal"):
        chunked.decode(b"zz\r\nabc\r\n")
    with pytest.raises(chunked.ChunkedError, match="shorter"):
        chunked.decode(b"10\r\nabc\r\n0\r\n")
    assert chunked.is_aws_chunked("aws-chunked", "")
    assert chunked.is_aws_chunked("", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert not chunked.is_aws_chunked("gzip", "UNSIGNED-PAYLOAD")


@given(st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True),
       st.text(min_size=1, max_size=40))
def test_path_and_virtual_style_name_the_same_object(bucket: str, key: str) -> None:
    path = "/" + quote(key, safe="/~")
    assert bucket_and_key(f"/{bucket}{path}?x-id=GetObject", "127.0.0.1:4510", HOSTS) == \
        (bucket, key)
    assert bucket_and_key(path, f"{bucket}.localhost:4510", HOSTS) == (bucket, key)


def test_plain_hosts_are_path_style() -> None:
    assert virtual_bucket("127.0.0.1:4510", HOSTS) is None
    assert virtual_bucket("localhost", HOSTS) is None
    assert virtual_bucket("[::1]:4510", HOSTS) is None
    assert virtual_bucket("my.bucket.localhost:1", HOSTS) == "my.bucket"
    assert bucket_and_key("/", "127.0.0.1:4510", HOSTS) == ("", "")


def test_report_lines_have_aws_shape() -> None:
    line = json.loads(report.result_line(3, "PEM", {"thing": "arn:aws:iot:r:1:thing/t"}))
    assert line == {"response": {"CertificatePem": "PEM",
                                 "ResourceArns": {"thing": "arn:aws:iot:r:1:thing/t"}},
                    "offset": 3}
    assert json.loads(report.error_line(1, "C", "m")) == \
        {"offset": 1, "errorCode": "C", "errorMessage": "m"}


def test_input_lines_and_parameters() -> None:
    data = b'{"a": "1"}\n\n{"b": "2"}\n'
    assert list(report.input_lines(data)) == [(0, '{"a": "1"}'), (2, '{"b": "2"}')]
    assert report.parameters('{"a": "1"}') == {"a": "1"}
    with pytest.raises(report.LineError, match="not valid JSON"):
        report.parameters("{")
    with pytest.raises(report.LineError, match="not a JSON object"):
        report.parameters("[1]")
    with pytest.raises(report.LineError, match="must be strings: n"):
        report.parameters('{"n": 1}')
