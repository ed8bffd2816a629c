"""S3, as much as the workshop's labs need: buckets (create, delete, head, list), objects (put,
get, head, delete, list v1 and v2), multipart uploads (what `aws s3 cp` uses above 8 MB).
Buckets are global by name, as on S3, and remember the region that created them. The only
writer of the S3 tables; other features (bulk registration) call it directly."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from fleetsim.localcore.features.s3.errors import (
    S3Error,
    invalid_argument,
    no_such_bucket,
    no_such_key,
    no_such_upload,
)
from fleetsim.localcore.features.s3.store import (
    BucketRow,
    ObjectRow,
    PartRow,
    S3Store,
    UploadRow,
)

# "Bucket naming rules" (general purpose buckets): 3-63 characters, lowercase letters,
# numbers, dots and hyphens, beginning and ending with a letter or number, not an IP address.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP = re.compile(r"\d+\.\d+\.\d+\.\d+")
MAX_KEYS = 1000
MAX_KEY_BYTES = 1024  # "Naming Amazon S3 objects": a key is at most 1,024 bytes of UTF-8


def check_bucket_name(name: str) -> None:
    if not _BUCKET_NAME.fullmatch(name) or ".." in name or _IP.fullmatch(name):
        raise S3Error("InvalidBucketName", "The specified bucket is not valid.", 400,
                      BucketName=name)


@dataclass(frozen=True)
class Listing:
    """One page of a bucket listing: objects and common prefixes, in key order."""

    objects: list[ObjectRow]
    prefixes: list[str]
    truncated: bool
    last: str  # the last key or prefix on the page ('' if none): where the next page starts


@dataclass(frozen=True)
class Body:
    object: ObjectRow
    path: Path
    start: int = 0
    end: int = -1  # inclusive; -1: to the end
    extra: dict[str, str] = field(default_factory=dict)


class S3Service:
    def __init__(self, store: S3Store, clock: Callable[[], float]):
        self._store = store
        self._clock = clock

    # --- buckets -----------------------------------------------------------------------------

    def require_bucket(self, name: str) -> BucketRow:
        bucket = self._store.bucket(name)
        if bucket is None:
            raise no_such_bucket(name)
        return bucket

    def create_bucket(self, name: str, region: str) -> None:
        """"CreateBucket": a bucket you already own answers BucketAlreadyOwnedByYou, except in
        us-east-1, where the call succeeds (AWS's legacy behaviour)."""
        check_bucket_name(name)
        existing = self._store.bucket(name)
        if existing is not None:
            if region == "us-east-1" and existing.region == "us-east-1":
                return
            raise S3Error("BucketAlreadyOwnedByYou", "Your previous request to create the "
                          "named bucket succeeded and you already own it.", 409, BucketName=name)
        self._store.create_bucket(name, region, self._clock())

    def ensure_bucket(self, name: str, region: str) -> None:
        """Create the bucket unless it exists (for buckets local core itself keeps)."""
        if self._store.bucket(name) is None:
            self.create_bucket(name, region)

    def delete_bucket(self, name: str) -> None:
        self.require_bucket(name)
        if not self._store.is_empty(name):
            raise S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty", 409,
                          BucketName=name)
        self._store.delete_bucket(name)

    def list_buckets(self) -> list[BucketRow]:
        return self._store.buckets()

    # --- objects -----------------------------------------------------------------------------

    def put_object(self, bucket: str, key: str, data: bytes, content_type: str | None = None,
                   metadata: dict[str, str] | None = None) -> ObjectRow:
        self.require_bucket(bucket)
        _check_key(key)
        row = ObjectRow(bucket, key, len(data), hashlib.md5(data).hexdigest(),
                        content_type or "binary/octet-stream", json.dumps(metadata or {}),
                        self._clock(), self._store.write_blob(data))
        self._store.put_object(row)
        return row

    def head_object(self, bucket: str, key: str) -> ObjectRow:
        self.require_bucket(bucket)
        row = self._store.object(bucket, key)
        if row is None:
            raise no_such_key(key)
        return row

    def object_path(self, row: ObjectRow) -> Path:
        return self._store.blob_path(row.blob)

    def read_object(self, bucket: str, key: str) -> bytes:
        """The whole body (for other features: bulk registration reads its input file)."""
        return self.object_path(self.head_object(bucket, key)).read_bytes()

    def presigned_get(self, api_url: str, region: str, bucket: str, key: str,
                      seconds: int) -> str:
        """A SigV4-style presigned GET of an object on local core's API at `api_url`, valid for
        `seconds` from now (for links other features hand out: bulk task reports, job
        documents). Local core does not verify the signature, only the expiry."""
        now = time.gmtime(self._clock())
        date, stamp = time.strftime("%Y%m%d", now), time.strftime("%Y%m%dT%H%M%SZ", now)
        path = f"/{bucket}/{quote(key)}"
        credential = quote(f"local/{date}/{region}/s3/aws4_request", safe="")
        signature = hashlib.sha256(f"{path}{stamp}{uuid.uuid4()}".encode()).hexdigest()
        return (f"{api_url}{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                f"&X-Amz-Credential={credential}&X-Amz-Date={stamp}"
                f"&X-Amz-Expires={seconds}&X-Amz-SignedHeaders=host"
                f"&X-Amz-Signature={signature}")

    def delete_object(self, bucket: str, key: str) -> None:
        """Deleting a key that does not exist succeeds, as on S3."""
        self.require_bucket(bucket)
        self._store.delete_object(bucket, key)

    def list_objects(self, bucket: str, prefix: str, delimiter: str, after: str,
                     max_keys: int) -> Listing:
        """Keys after `after` starting with `prefix`; with a delimiter, keys that contain it
        after the prefix roll up into one common prefix each ("Organizing objects using
        prefixes"). At most `max_keys` entries (objects and prefixes together)."""
        self.require_bucket(bucket)
        if max_keys < 0:
            raise invalid_argument("max-keys must be a non-negative integer")
        objects: list[ObjectRow] = []
        prefixes: list[str] = []
        cursor = after
        if delimiter and after.startswith(prefix) and after.endswith(delimiter):
            cursor = after + "\U0010ffff"  # a page ended on a common prefix: skip past it
        while len(objects) + len(prefixes) < max_keys:
            batch = self._store.objects_after(bucket, prefix, cursor, MAX_KEYS)
            if not batch:
                return Listing(objects, prefixes, False, _last(objects, prefixes))
            for row in batch:
                cursor = row.key
                rolled = _common_prefix(row.key, prefix, delimiter)
                if rolled is not None:
                    if prefixes and prefixes[-1] == rolled:
                        continue
                    if len(objects) + len(prefixes) >= max_keys:
                        return Listing(objects, prefixes, True, _last(objects, prefixes))
                    prefixes.append(rolled)
                    # skip every key under this prefix: the next key sorts after it
                    cursor = rolled + "\U0010ffff"
                    break
                if len(objects) + len(prefixes) >= max_keys:
                    return Listing(objects, prefixes, True, _last(objects, prefixes))
                objects.append(row)
        more = bool(self._store.objects_after(bucket, prefix, cursor, 1))
        return Listing(objects, prefixes, more, _last(objects, prefixes))

    # --- multipart uploads -------------------------------------------------------------------

    def create_multipart_upload(self, bucket: str, key: str, content_type: str | None,
                                metadata: dict[str, str]) -> str:
        self.require_bucket(bucket)
        _check_key(key)
        upload_id = uuid.uuid4().hex
        self._store.create_upload(UploadRow(upload_id, bucket, key,
                                            content_type or "binary/octet-stream",
                                            json.dumps(metadata), self._clock()))
        return upload_id

    def _require_upload(self, bucket: str, key: str, upload_id: str) -> UploadRow:
        upload = self._store.upload(upload_id)
        if upload is None or upload.bucket != bucket or upload.key != key:
            raise no_such_upload(upload_id)
        return upload

    def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int,
                    data: bytes) -> str:
        """"UploadPart": part numbers 1 to 10,000. Returns the part's ETag (hex)."""
        self._require_upload(bucket, key, upload_id)
        if not 1 <= part_number <= 10000:
            raise invalid_argument("Part number must be an integer between 1 and 10000, "
                                   "inclusive")
        etag = hashlib.md5(data).hexdigest()
        self._store.put_part(upload_id, PartRow(part_number, len(data), etag,
                                                self._store.write_blob(data)))
        return etag

    def complete_multipart_upload(self, bucket: str, key: str, upload_id: str,
                                  chosen: list[tuple[int, str]]) -> ObjectRow:
        """Join the parts named (number, ETag) in ascending order; the ETag of the result is
        the MD5 of the parts' MD5s, then '-' and the number of parts, as S3 computes it."""
        upload = self._require_upload(bucket, key, upload_id)
        parts = {p.part_number: p for p in self._store.parts(upload_id)}
        numbers = [n for n, _ in chosen]
        if numbers != sorted(set(numbers)) or not numbers:
            raise S3Error("InvalidPartOrder", "The list of parts was not in ascending order. "
                          "The parts list must be specified in order of the part number.", 400)
        digest = hashlib.md5()
        data = bytearray()
        for number, etag in chosen:
            part = parts.get(number)
            if part is None or part.etag != etag.strip('"'):
                raise S3Error("InvalidPart", "One or more of the specified parts could not be "
                              "found. The part might not have been uploaded, or the specified "
                              "entity tag might not have matched the part's entity tag.", 400)
            digest.update(bytes.fromhex(part.etag))
            data += self._store.blob_path(part.blob).read_bytes()
        row = ObjectRow(bucket, key, len(data), f"{digest.hexdigest()}-{len(chosen)}",
                        upload.content_type, upload.metadata, self._clock(),
                        self._store.write_blob(bytes(data)))
        self._store.end_upload(upload_id, row)
        return row

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self._require_upload(bucket, key, upload_id)
        self._store.end_upload(upload_id, None)


def _check_key(key: str) -> None:
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", "Your key is too long", 400)


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return None if at < 0 else key[:at + len(delimiter)]


def _last(objects: list[ObjectRow], prefixes: list[str]) -> str:
    return max([o.key for o in objects[-1:]] + prefixes[-1:], default="")
