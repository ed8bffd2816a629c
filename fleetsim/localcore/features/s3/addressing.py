"""Which bucket and key a request names: path-style (`/bucket/key`) or virtual-hosted-style
(`Host: bucket.<endpoint host>`, `/key`), both on the one endpoint ("Virtual hosting of
buckets" in the Amazon S3 user guide).

What clients send with a custom endpoint: botocore (boto3, the AWS CLI) uses path style for an
IP endpoint such as `http://127.0.0.1:4510` whatever `addressing_style` says, and with
`addressing_style: virtual` and `http://localhost:4510` sends `Host: bucket.localhost:4510`
(curl and browsers resolve every `*.localhost` to loopback). So a host of more labels than
`localhost` or the configured host, ending in one of them, names a bucket; anything else is
path style."""

from __future__ import annotations

from urllib.parse import unquote


def split_host(host: str) -> str:
    """The host name of a Host header, without the port (IPv6 literals kept whole)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def virtual_bucket(host: str, endpoint_hosts: tuple[str, ...]) -> str | None:
    """The bucket a virtual-hosted-style Host names, or None for path style."""
    name = split_host(host)
    for suffix in endpoint_hosts:
        if name.endswith("." + suffix) and len(name) > len(suffix) + 1:
            return name[:-len(suffix) - 1]
    return None


def bucket_and_key(raw_path: str, host: str, endpoint_hosts: tuple[str, ...]
                   ) -> tuple[str, str]:
    """(bucket, key) of a request; '' for what it does not name (the service, a bucket)."""
    path = raw_path.partition("?")[0]
    bucket = virtual_bucket(host, endpoint_hosts)
    if bucket is not None:
        return bucket, unquote(path[1:])
    name, _, key = path[1:].partition("/")
    return unquote(name), unquote(key)
