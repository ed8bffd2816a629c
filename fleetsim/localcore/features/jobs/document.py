"""Job documents: where one in S3 is (`documentSource`), and the
`${aws:iot:s3-presigned-url:https://s3.../key}` placeholders AWS IoT Jobs replaces with a
presigned URL each time a device fetches the document ("Managing jobs": presigned URL
placeholders and `presignedUrlConfig`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

MAX_DOCUMENT_BYTES = 32 * 1024  # "The maximum size of a job document is 32 KB"
PLACEHOLDER = re.compile(r"\$\{aws:iot:s3-presigned-url:(https://[^}]+)\}")
_S3_HOST = re.compile(r"^(?:(?P<bucket>.+)\.)?s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com"
                      r"(?:\.cn)?$")


class DocumentError(ValueError):
    """A document or document source AWS IoT would refuse: one sentence."""


def s3_location(url: str) -> tuple[str, str]:
    """(bucket, key) of an S3 object URL, virtual-hosted or path style."""
    parts = urlsplit(url)
    m = _S3_HOST.match(parts.hostname or "")
    if parts.scheme != "https" or m is None:
        raise DocumentError(f"{url!r} is not an S3 object URL (https://BUCKET.s3.amazonaws.com/"
                            "KEY or https://s3.REGION.amazonaws.com/BUCKET/KEY)")
    path = unquote(parts.path.lstrip("/"))
    if m.group("bucket"):
        bucket, key = m.group("bucket"), path
    else:
        bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise DocumentError(f"{url!r} names no S3 object (a bucket and a key)")
    return bucket, key


def check_document(text: str) -> str:
    """A job document as AWS IoT accepts it: JSON, at most 32 KB."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"The job document is {len(text.encode())} bytes: a job document "
                            f"can have at most {MAX_DOCUMENT_BYTES} bytes.")
    try:
        value = json.loads(text)
    except ValueError as e:
        raise DocumentError(f"The job document is not valid JSON: {e}.") from None
    if not isinstance(value, dict):
        raise DocumentError("The job document must be a JSON object.")
    for url in PLACEHOLDER.findall(text):
        s3_location(url)
    return text


def substitute(text: str, presign: Callable[[str, str], str]) -> str:
    """The document with each placeholder replaced by `presign(bucket, key)` (a fresh URL per
    call), JSON-escaped where it stands."""
    def replace(m: re.Match[str]) -> str:
        bucket, key = s3_location(m.group(1))
        return json.dumps(presign(bucket, key))[1:-1]

    return PLACEHOLDER.sub(replace, text)
