"""S3's XML documents (namespace `http://s3.amazonaws.com/doc/2006-03-01/`): errors, bucket
lists, object listings (v1 and v2), multipart upload answers; timestamps as S3 writes them."""

from __future__ import annotations

import datetime as dt
import email.utils
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from urllib.parse import quote
from xml.sax.saxutils import escape

from fleetsim.localcore.features.s3.errors import S3Error
from fleetsim.localcore.features.s3.service import Listing
from fleetsim.localcore.features.s3.store import BucketRow

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def iso(ts: float) -> str:
    """`2009-10-12T17:50:30.000Z`, as listings write LastModified and CreationDate."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(ts * 1000) % 1000:03d}Z"


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _el(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def document(root: str, parts: Iterable[str]) -> bytes:
    return (_DECL + f'<{root} xmlns="{NS}">' + "".join(parts) + f"</{root}>").encode()


def error(e: S3Error, resource: str) -> bytes:
    fields = "".join(_el(k, v) for k, v in e.fields.items())
    return (_DECL + "<Error>" + _el("Code", e.code) + _el("Message", e.message) + fields +
            _el("Resource", resource) + _el("RequestId", uuid.uuid4().hex[:16].upper()) +
            "</Error>").encode()


def owner(account_id: str) -> str:
    return f"<Owner>{_el('ID', account_id)}{_el('DisplayName', 'local')}</Owner>"


def bucket_list(buckets: list[BucketRow], account_id: str) -> bytes:
    items = "".join(f"<Bucket>{_el('Name', b.name)}{_el('CreationDate', iso(b.created))}"
                    f"{_el('BucketRegion', b.region)}</Bucket>" for b in buckets)
    return document("ListAllMyBucketsResult", [owner(account_id), f"<Buckets>{items}</Buckets>"])


def listing(bucket: str, page: Listing, *, prefix: str, delimiter: str, max_keys: int,
            url_encode: bool, v2: bool, marker: str = "", continuation: str = "",
            start_after: str = "", next_token: str = "") -> bytes:
    """ListBucketResult of ListObjects (v1) or ListObjectsV2. With `encoding-type=url` keys,
    prefixes, delimiter and markers are URL-encoded, as S3 does for that parameter."""
    def enc(value: str) -> str:
        return quote(value, safe="/") if url_encode else value

    parts = [_el("Name", bucket), _el("Prefix", enc(prefix))]
    if v2:
        if continuation:
            parts.append(_el("ContinuationToken", continuation))
        if start_after:
            parts.append(_el("StartAfter", enc(start_after)))
        parts.append(_el("KeyCount", len(page.objects) + len(page.prefixes)))
        if page.truncated:
            parts.append(_el("NextContinuationToken", next_token))
    else:
        parts.append(_el("Marker", enc(marker)))
        if page.truncated and delimiter:
            parts.append(_el("NextMarker", enc(page.last)))
    parts.append(_el("MaxKeys", max_keys))
    if delimiter:
        parts.append(_el("Delimiter", enc(delimiter)))
    if url_encode:
        parts.append(_el("EncodingType", "url"))
    parts.append(_el("IsTruncated", "true" if page.truncated else "false"))
    for o in page.objects:
        parts.append(f"<Contents>{_el('Key', enc(o.key))}"
                     f"{_el('LastModified', iso(o.last_modified))}"
                     f"{_el('ETag', chr(34) + o.etag + chr(34))}{_el('Size', o.size)}"
                     f"{_el('StorageClass', 'STANDARD')}</Contents>")
    for p in page.prefixes:
        parts.append(f"<CommonPrefixes>{_el('Prefix', enc(p))}</CommonPrefixes>")
    return document("ListBucketResult", parts)


def initiate_upload(bucket: str, key: str, upload_id: str) -> bytes:
    return document("InitiateMultipartUploadResult",
                    [_el("Bucket", bucket), _el("Key", key), _el("UploadId", upload_id)])


def complete_upload(location: str, bucket: str, key: str, etag: str) -> bytes:
    return document("CompleteMultipartUploadResult",
                    [_el("Location", location), _el("Bucket", bucket), _el("Key", key),
                     _el("ETag", f'"{etag}"')])


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """(PartNumber, ETag) of a CompleteMultipartUpload request, in document order."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not "
                      f"validate against our published schema ({e})", 400) from e
    parts = []
    for part in root.iter():
        if part.tag.rpartition("}")[2] != "Part":
            continue
        fields = {c.tag.rpartition("}")[2]: (c.text or "") for c in part}
        try:
            parts.append((int(fields["PartNumber"]), fields["ETag"]))
        except (KeyError, ValueError) as e:
            raise S3Error("MalformedXML", "Each Part needs a PartNumber and an ETag", 400) from e
    return parts
