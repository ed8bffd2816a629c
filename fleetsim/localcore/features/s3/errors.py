"""S3's errors: a code, a message, the HTTP status, and the resource they name, rendered as
S3's XML `<Error>` document ("Error responses" in the Amazon S3 API reference)."""

from __future__ import annotations


class S3Error(Exception):
    def __init__(self, code: str, message: str, status: int, **fields: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields  # e.g. BucketName, Key, UploadId


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=bucket)


def no_such_key(key: str) -> S3Error:
    return S3Error("NoSuchKey", "The specified key does not exist.", 404, Key=key)


def no_such_upload(upload_id: str) -> S3Error:
    return S3Error("NoSuchUpload", "The specified upload does not exist. The upload ID may be "
                   "invalid, or the upload may have been aborted or completed.", 404,
                   UploadId=upload_id)


def not_implemented(what: str) -> S3Error:
    return S3Error("NotImplemented", f"local core does not implement {what}", 501)


def invalid_argument(message: str) -> S3Error:
    return S3Error("InvalidArgument", message, 400)
