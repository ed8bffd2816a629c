"""S3's REST front on local core's one port: addressing, the operation a method and its
subresource name, request bodies (plain or `aws-chunked`), answers and errors in S3's XML.
Presigned URLs (SigV4 `X-Amz-*` or SigV2 `AWSAccessKeyId`/`Expires`) work with any HTTP
client, curl included; an expired one is refused as S3 refuses it. Signatures themselves are
not verified (local core accepts any credentials)."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from aiohttp import web

from fleetsim.localcore.features.s3 import chunked, wire
from fleetsim.localcore.features.s3.addressing import bucket_and_key
from fleetsim.localcore.features.s3.errors import S3Error, invalid_argument, not_implemented
from fleetsim.localcore.features.s3.service import MAX_KEYS, S3Service
from fleetsim.localcore.features.s3.store import ObjectRow
from fleetsim.localcore.scope import Scope

log = logging.getLogger(__name__)

# Query parameters that are not subresources: signing, listing, response overrides, botocore's
# `x-id` operation hint, multipart parameters handled below.
_PLAIN = {"x-id", "prefix", "delimiter", "marker", "max-keys", "encoding-type", "list-type",
          "continuation-token", "start-after", "fetch-owner", "uploadId", "partNumber",
          "uploads", "AWSAccessKeyId", "Signature", "Expires"}


def _is_plain(name: str) -> bool:
    return name in _PLAIN or name.startswith(("X-Amz-", "x-amz-", "response-"))


def _metadata(request: web.Request) -> dict[str, str]:
    return {k[11:].lower(): v for k, v in request.headers.items()
            if k.lower().startswith("x-amz-meta-")}


def check_not_expired(query: dict[str, str], now: float) -> None:
    """A presigned URL past its expiry gets 403 AccessDenied "Request has expired"."""
    expires_at: float | None = None
    if "X-Amz-Date" in query and "X-Amz-Expires" in query:
        try:
            signed = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
            expires_at = signed.replace(tzinfo=dt.UTC).timestamp() + int(query["X-Amz-Expires"])
        except ValueError as e:
            raise S3Error("AuthorizationQueryParametersError", "X-Amz-Date must be in the "
                          "ISO8601 Long Format and X-Amz-Expires an integer", 400) from e
    elif "AWSAccessKeyId" in query and "Expires" in query:
        try:
            expires_at = float(query["Expires"])
        except ValueError as e:
            raise invalid_argument("Expires must be a number of seconds since the epoch") from e
    if expires_at is not None and now > expires_at:
        raise S3Error("AccessDenied", "Request has expired", 403,
                      Expires=wire.iso(expires_at), ServerTime=wire.iso(now))


class S3Front:
    def __init__(self, service: S3Service, account_id: str,
                 endpoint_hosts: tuple[str, ...], clock: Callable[[], float] = time.time):
        self.service = service
        self.account_id = account_id
        self.endpoint_hosts = endpoint_hosts
        self.clock = clock

    async def handle(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        bucket, key = bucket_and_key(request.raw_path, request.host, self.endpoint_hosts)
        query = dict(parse_qsl(request.query_string, keep_blank_values=True))
        try:
            check_not_expired(query, self.clock())
            return await self._dispatch(request, scope, bucket, key, query)
        except S3Error as e:
            return self._error(request, e, bucket, key)
        except chunked.ChunkedError as e:
            return self._error(request, S3Error("IncompleteBody", "The aws-chunked request "
                                                f"body is not valid: {e}", 400), bucket, key)
        except Exception:
            log.exception("S3 %s %s failed", request.method, request.path)
            return self._error(request, S3Error("InternalError", "We encountered an internal "
                                                "error. Please try again.", 500), bucket, key)

    def _error(self, request: web.Request, e: S3Error, bucket: str, key: str
               ) -> web.Response:
        if request.method == "HEAD":  # S3 answers HEAD errors without a body
            return web.Response(status=e.status)
        resource = "/" + "/".join(p for p in (bucket, key) if p)
        return web.Response(status=e.status, body=wire.error(e, resource),
                            content_type="application/xml")

    async def _dispatch(self, request: web.Request, scope: Scope, bucket: str, key: str,
                        query: dict[str, str]) -> web.StreamResponse:
        method = request.method
        extra = sorted(q for q in query if not _is_plain(q))
        if not bucket:
            if method == "GET" and not extra:
                return _xml(wire.bucket_list(self.service.list_buckets(), self.account_id))
            raise not_implemented(f"{method} on the service with {extra or 'no subresource'}")
        if not key:
            return await self._bucket(request, scope, bucket, query, extra)
        if extra:
            raise not_implemented(f"the object subresource(s) {', '.join(extra)}")
        if method == "PUT":
            if "x-amz-copy-source" in request.headers:
                raise not_implemented("CopyObject")
            data = await _body(request)
            if "uploadId" in query:
                etag = self.service.upload_part(bucket, key, query["uploadId"],
                                                _int(query.get("partNumber", ""), "partNumber"),
                                                data)
                return web.Response(headers={"ETag": f'"{etag}"'})
            row = self.service.put_object(bucket, key, data, request.headers.get("Content-Type"),
                                          _metadata(request))
            return web.Response(headers={"ETag": f'"{row.etag}"'})
        if method in ("GET", "HEAD"):
            return await self._get(request, self.service.head_object(bucket, key), query)
        if method == "DELETE":
            if "uploadId" in query:
                self.service.abort_multipart_upload(bucket, key, query["uploadId"])
            else:
                self.service.delete_object(bucket, key)
            return web.Response(status=204)
        if method == "POST" and "uploads" in query:
            upload_id = self.service.create_multipart_upload(
                bucket, key, request.headers.get("Content-Type"), _metadata(request))
            return _xml(wire.initiate_upload(bucket, key, upload_id))
        if method == "POST" and "uploadId" in query:
            chosen = wire.parse_complete(await request.read())
            row = self.service.complete_multipart_upload(bucket, key, query["uploadId"], chosen)
            location = f"{request.scheme}://{request.host}/{bucket}/{key}"
            return _xml(wire.complete_upload(location, bucket, key, row.etag))
        raise not_implemented(f"{method} on an object")

    async def _bucket(self, request: web.Request, scope: Scope, bucket: str,
                      query: dict[str, str], extra: list[str]) -> web.StreamResponse:
        method = request.method
        if extra == ["location"] and method == "GET":
            region = self.service.require_bucket(bucket).region
            constraint = "" if region == "us-east-1" else region
            return _xml(wire.document("LocationConstraint", [constraint]))
        if extra:
            raise not_implemented(f"the bucket subresource(s) {', '.join(extra)}")
        if method == "PUT":
            self.service.create_bucket(bucket, _location(await request.read()) or scope.region)
            return web.Response(headers={"Location": f"/{bucket}"})
        if method == "DELETE":
            self.service.delete_bucket(bucket)
            return web.Response(status=204)
        if method == "HEAD":
            region = self.service.require_bucket(bucket).region
            return web.Response(headers={"x-amz-bucket-region": region})
        if method == "GET":
            return self._list(bucket, query)
        raise not_implemented(f"{method} on a bucket")

    def _list(self, bucket: str, query: dict[str, str]) -> web.Response:
        v2 = query.get("list-type") == "2"
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = min(_int(query.get("max-keys", str(MAX_KEYS)), "max-keys"), MAX_KEYS)
        token = query.get("continuation-token", "")
        if v2:
            after = max(_decode_token(token) if token else "", query.get("start-after", ""))
        else:
            after = query.get("marker", "")
        page = self.service.list_objects(bucket, prefix, delimiter, after, max_keys)
        return _xml(wire.listing(
            bucket, page, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
            url_encode=query.get("encoding-type") == "url", v2=v2,
            marker=query.get("marker", ""), continuation=token,
            start_after=query.get("start-after", ""),
            next_token=base64.urlsafe_b64encode(page.last.encode()).decode()))

    async def _get(self, request: web.Request, row: ObjectRow, query: dict[str, str]
                   ) -> web.StreamResponse:
        headers = {"ETag": f'"{row.etag}"', "Last-Modified": wire.http_date(row.last_modified),
                   "Content-Type": row.content_type, "Accept-Ranges": "bytes"}
        headers |= {f"x-amz-meta-{k}": v for k, v in row.user_metadata.items()}
        headers |= {k[9:]: v for k, v in query.items() if k.startswith("response-")}
        status, start, end = 200, 0, row.size - 1
        wanted = request.headers.get("Range")
        if wanted:
            start, end = _range(wanted, row.size)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{row.size}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = max(0, end - start + 1)
        await response.prepare(request)
        if request.method == "GET" and end >= start:
            with open(self.service.object_path(row), "rb") as f:
                f.seek(start)
                await response.write(f.read(end - start + 1))
        await response.write_eof()
        return response


def _xml(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/xml")


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise invalid_argument(f"{name} must be an integer, not {value!r}") from None


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        raise invalid_argument("The continuation token provided is incorrect") from None


def _location(body: bytes) -> str | None:
    """The LocationConstraint of a CreateBucketConfiguration body, if any."""
    if not body.strip():
        return None
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not "
                      "validate against our published schema", 400) from e
    for el in root.iter():
        if el.tag.rpartition("}")[2] == "LocationConstraint" and el.text:
            return el.text.strip()
    return None


def _range(header: str, size: int) -> tuple[int, int]:
    """A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range, as S3 honours it."""
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    try:
        if unit.strip() != "bytes" or "," in spec:
            raise ValueError
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), (int(last) if last else size - 1)
    except ValueError:
        raise invalid_argument(f"The Range header {header!r} is not valid") from None
    if start >= size:
        raise S3Error("InvalidRange", "The requested range is not satisfiable", 416)
    return start, min(end, size - 1)


async def _body(request: web.Request) -> bytes:
    data = await request.read()
    if chunked.is_aws_chunked(request.headers.get("Content-Encoding", ""),
                              request.headers.get("x-amz-content-sha256", "")):
        return chunked.decode(data)
    return data
