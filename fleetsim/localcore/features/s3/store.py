"""The S3 feature's tables (`s3_buckets`, `s3_objects`, `s3_uploads`, `s3_parts`) and the
object bodies, one file each under `<state dir>/s3/blobs/`. A body is written (and fsynced)
before the row that names it commits, and removed after the row that named it is gone, so a
crash leaves at worst an unreferenced file, never a row without its body. Only `S3Service`
uses this module."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from fleetsim.localcore.db import Database, columns


@dataclass(frozen=True)
class BucketRow:
    name: str
    region: str
    created: float


@dataclass(frozen=True)
class ObjectRow:
    bucket: str
    key: str
    size: int
    etag: str  # hex, without quotes
    content_type: str
    metadata: str  # JSON object of x-amz-meta-* (names without the prefix)
    last_modified: float
    blob: str

    @property
    def user_metadata(self) -> dict[str, str]:
        meta: dict[str, str] = json.loads(self.metadata)
        return meta


@dataclass(frozen=True)
class UploadRow:
    upload_id: str
    bucket: str
    key: str
    content_type: str
    metadata: str
    created: float


@dataclass(frozen=True)
class PartRow:
    part_number: int
    size: int
    etag: str
    blob: str


_OBJECT_COLUMNS = "bucket, key, size, etag, content_type, metadata, last_modified, blob"


class S3Store:
    def __init__(self, db: Database, root: Path):
        self.db = db
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)

    # --- bodies ------------------------------------------------------------------------------

    def write_blob(self, data: bytes) -> str:
        name = uuid.uuid4().hex
        tmp = self.blobs / f"{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.blobs / name)
        return name

    def blob_path(self, name: str) -> Path:
        return self.blobs / name

    def remove_blobs(self, names: list[str]) -> None:
        for name in names:
            (self.blobs / name).unlink(missing_ok=True)

    # --- buckets -----------------------------------------------------------------------------

    def bucket(self, name: str) -> BucketRow | None:
        row = self.db.one("SELECT name, region, created FROM s3_buckets WHERE name = ?", (name,))
        return None if row is None else BucketRow(**columns(row))

    def buckets(self) -> list[BucketRow]:
        return [BucketRow(**columns(r)) for r in
                self.db.query("SELECT name, region, created FROM s3_buckets ORDER BY name")]

    def create_bucket(self, name: str, region: str, created: float) -> None:
        with self.db.transaction() as db:
            db.write("INSERT INTO s3_buckets (name, region, created) VALUES (?, ?, ?)",
                     (name, region, created))

    def delete_bucket(self, name: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM s3_buckets WHERE name = ?", (name,))

    def is_empty(self, bucket: str) -> bool:
        return self.db.one("SELECT 1 FROM s3_objects WHERE bucket = ? LIMIT 1", (bucket,)) is None

    # --- objects -----------------------------------------------------------------------------

    def object(self, bucket: str, key: str) -> ObjectRow | None:
        row = self.db.one(f"SELECT {_OBJECT_COLUMNS} FROM s3_objects WHERE bucket = ? AND key = ?",
                          (bucket, key))
        return None if row is None else ObjectRow(**columns(row))

    def put_object(self, row: ObjectRow) -> None:
        """Insert or replace; the replaced object's body is removed after the commit."""
        old = self.object(row.bucket, row.key)
        with self.db.transaction() as db:
            db.write(f"INSERT OR REPLACE INTO s3_objects ({_OBJECT_COLUMNS}) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (row.bucket, row.key, row.size, row.etag, row.content_type, row.metadata,
                      row.last_modified, row.blob))
        if old is not None and old.blob != row.blob:
            self.remove_blobs([old.blob])

    def delete_object(self, bucket: str, key: str) -> None:
        old = self.object(bucket, key)
        if old is None:
            return
        with self.db.transaction() as db:
            db.write("DELETE FROM s3_objects WHERE bucket = ? AND key = ?", (bucket, key))
        self.remove_blobs([old.blob])

    def objects_after(self, bucket: str, prefix: str, after: str, limit: int
                      ) -> list[ObjectRow]:
        """Objects of `bucket` whose key starts with `prefix` and sorts after `after` (in
        UTF-8 binary order, as S3 lists), at most `limit`."""
        rows = self.db.query(
            f"SELECT {_OBJECT_COLUMNS} FROM s3_objects WHERE bucket = ? AND key > ? "
            "AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
            (bucket, after, len(prefix), prefix, limit))
        return [ObjectRow(**columns(r)) for r in rows]

    # --- multipart uploads -------------------------------------------------------------------

    def create_upload(self, row: UploadRow) -> None:
        with self.db.transaction() as db:
            db.write("INSERT INTO s3_uploads (upload_id, bucket, key, content_type, metadata, "
                     "created) VALUES (?, ?, ?, ?, ?, ?)",
                     (row.upload_id, row.bucket, row.key, row.content_type, row.metadata,
                      row.created))

    def upload(self, upload_id: str) -> UploadRow | None:
        row = self.db.one("SELECT upload_id, bucket, key, content_type, metadata, created "
                          "FROM s3_uploads WHERE upload_id = ?", (upload_id,))
        return None if row is None else UploadRow(**columns(row))

    def put_part(self, upload_id: str, part: PartRow) -> None:
        old = self.db.one("SELECT blob FROM s3_parts WHERE upload_id = ? AND part_number = ?",
                          (upload_id, part.part_number))
        with self.db.transaction() as db:
            db.write("INSERT OR REPLACE INTO s3_parts (upload_id, part_number, size, etag, blob) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (upload_id, part.part_number, part.size, part.etag, part.blob))
        if old is not None and old["blob"] != part.blob:
            self.remove_blobs([old["blob"]])

    def parts(self, upload_id: str) -> list[PartRow]:
        rows = self.db.query("SELECT part_number, size, etag, blob FROM s3_parts "
                             "WHERE upload_id = ? ORDER BY part_number", (upload_id,))
        return [PartRow(**columns(r)) for r in rows]

    def end_upload(self, upload_id: str, result: ObjectRow | None) -> None:
        """Forget the upload and its parts (storing `result` in the same commit, if any)."""
        parts = self.parts(upload_id)
        old = None if result is None else self.object(result.bucket, result.key)
        with self.db.transaction() as db:
            db.write("DELETE FROM s3_parts WHERE upload_id = ?", (upload_id,))
            db.write("DELETE FROM s3_uploads WHERE upload_id = ?", (upload_id,))
            if result is not None:
                self.put_object(result)
        stale = [p.blob for p in parts]
        if old is not None:
            stale.append(old.blob)
        self.remove_blobs([b for b in stale if result is None or b != result.blob])
