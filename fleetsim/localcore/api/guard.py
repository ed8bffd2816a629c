"""Who may talk to local core's API: the checks made before any service sees a request.

- **Host**: only loopback names (127.0.0.1, localhost, ::1, with any port) unless more are
  allowed (`--allow-host`). A DNS-rebinding page reaches 127.0.0.1 under its own name, so
  refusing other Host values keeps it from reading answers (create-keys-and-certificate's
  private key).
- **Browsers**: a request a web page sent cross-site is refused: `Sec-Fetch-Site` other than
  same-origin/none, an `Origin` whose host is not an allowed one, or a form-style body
  (text/plain, multipart/form-data, x-www-form-urlencoded) to a rest-json service, which botocore
  never sends and a page can send without a CORS preflight.
- **SigV4** (optional, `--credentials KEY:SECRET`): the signature of each request is recomputed
  with botocore's own signer from the configured secret and compared; a mismatch is answered as
  the service answers it (rest-json: 403 InvalidSignatureException; query/XML services such as
  STS: SignatureDoesNotMatch), an unknown access key likewise (UnrecognizedClientException /
  InvalidClientTokenId).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web
from botocore.auth import UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fleetsim.localcore.api.body import read_capped
from fleetsim.localcore.api.restjson import dumps
from fleetsim.localcore.api.sts import error_response as sts_error
from fleetsim.localcore.api.unserved import model_metadata
from fleetsim.localcore.api.unserved import response as protocol_error
from fleetsim.localcore.errors import AwsError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_FORM_TYPES = ("text/plain", "multipart/form-data", "application/x-www-form-urlencoded")
_SAME_SITE = {"same-origin", "none"}
# STS answers its own error codes (SignatureDoesNotMatch, InvalidClientTokenId) in XML.
_XML_SERVICES = {"sts"}
_SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you "
                       "provided. Check your AWS Secret Access Key and signing method. Consult "
                       "the service documentation for details.")
_UNKNOWN_KEY = "The security token included in the request is invalid."


def host_name(value: str) -> str:
    """The name of a Host header or an Origin's authority, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.rsplit(":", 1)[0] if ":" in value else value


@dataclass(frozen=True)
class Guard:
    allowed_hosts: frozenset[str] = LOOPBACK_HOSTS
    credentials: Mapping[str, str] = field(default_factory=dict)  # access key -> secret

    @classmethod
    def of(cls, extra_hosts: tuple[str, ...] = (),
           credentials: Mapping[str, str] | None = None) -> Guard:
        return cls(LOOPBACK_HOSTS | {host_name(h) for h in extra_hosts}, dict(credentials or {}))

    def _serves(self, name: str, service: str | None) -> bool:
        # S3's virtual-hosted style puts the bucket before the host: `<bucket>.localhost` (a
        # loopback name by definition, RFC 6761) or `<bucket>.<an allowed host>`.
        return name in self.allowed_hosts or (
            service == "s3" and name.partition(".")[2] in self.allowed_hosts)

    def refusal(self, request: web.Request, service: str | None) -> str | None:
        """Why a request is refused before it reaches a service, or None."""
        host = request.headers.get("Host")
        if host is not None and not self._serves(host_name(host), service):
            return (f"local core does not serve Host '{host}': it answers loopback names only "
                    "(allow more with --allow-host or $FLEETSIM_LOCAL_ALLOW_HOSTS)")
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site.lower() not in _SAME_SITE:
            return f"local core refuses requests a browser sent cross-site (Sec-Fetch-Site: {site})"
        origin = request.headers.get("Origin")
        if origin is not None and (origin == "null" or host_name(
                urlsplit(origin).netloc) not in self.allowed_hosts):
            return f"local core refuses requests a browser sent from another origin ({origin})"
        content_type = request.headers.get("Content-Type", "").lower()
        if content_type.startswith(_FORM_TYPES) and _json_protocol(service):
            return (f"local core refuses {content_type.split(';')[0]} bodies, which a web page "
                    "can send cross-site; AWS SDKs send application/json")
        return None

    async def check_signature(self, request: web.Request, scope: list[str]) -> None:
        """AwsError (403) unless the request is signed with a configured secret."""
        key, date, region, service = scope[:4]
        secret = self.credentials.get(key)
        if secret is None:
            raise AwsError("UnrecognizedClientException", _UNKNOWN_KEY, status=403)
        presigned = "Authorization" not in request.headers
        if presigned:
            given = request.query.get("X-Amz-Signature", "")
            signed = request.query.get("X-Amz-SignedHeaders", "host")
            timestamp = request.query.get("X-Amz-Date", "")
        else:
            fields = _auth_fields(request.headers["Authorization"])
            given, signed = fields.get("Signature", ""), fields.get("SignedHeaders", "host")
            timestamp = request.headers.get("X-Amz-Date", "")
        # A body whose client states its hash (S3; UNSIGNED-PAYLOAD in S3's presigned URLs) is
        # checked against it by that service.
        payload = request.headers.get("X-Amz-Content-SHA256") or (
            UNSIGNED_PAYLOAD if presigned and service == "s3"
            else hashlib.sha256(await read_capped(request)).hexdigest())
        expected = _signature(request, Credentials(key, secret), region, service, timestamp,
                              signed.split(";"), payload, presigned)
        if not timestamp.startswith(date) or not hmac.compare_digest(given, expected):
            raise AwsError("InvalidSignatureException", _SIGNATURE_MISMATCH, status=403)


def _auth_fields(header: str) -> dict[str, str]:
    _, _, rest = header.partition(" ")
    out = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        out[name] = value
    return out


class _Signer(SigV4Auth):
    """botocore's SigV4 signer with the payload hash given (the body's, or UNSIGNED-PAYLOAD)."""

    def __init__(self, credentials: Credentials, service: str, region: str, payload: str):
        super().__init__(credentials, service, region)
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self._payload


def _signature(request: web.Request, credentials: Credentials, region: str, service: str,
               timestamp: str, signed_headers: list[str], payload: str, presigned: bool) -> str:
    raw_path, _, raw_query = request.raw_path.partition("?")
    if presigned:
        raw_query = "&".join(p for p in raw_query.split("&")
                             if not p.startswith("X-Amz-Signature="))
    host = request.headers.get("Host", "")
    url = f"http://{host}{raw_path}" + (f"?{raw_query}" if raw_query else "")
    headers = {name: request.headers.get(name, "") for name in signed_headers}
    aws_request = AWSRequest(method=request.method, url=url, headers=headers)
    aws_request.context["timestamp"] = timestamp
    signer = _Signer(credentials, service, region, payload)
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)


def _json_protocol(service: str | None) -> bool:
    """Whether SDKs send this service JSON (so a form or text body can only come from a web
    page); query services (STS, IAM) take form bodies, S3 any body."""
    metadata = model_metadata(service) if service else None
    return metadata is None or metadata["protocol"] in ("json", "rest-json")


def refused(service: str | None, error: AwsError) -> web.Response:
    """`error` in the protocol of `service` (STS's own codes; S3's XML; JSON otherwise)."""
    if service in _XML_SERVICES:
        codes = {"InvalidSignatureException": "SignatureDoesNotMatch",
                 "UnrecognizedClientException": "InvalidClientTokenId"}
        return sts_error(codes.get(error.code, error.code), error.message, error.status or 403)
    metadata = model_metadata(service) if service else None
    if metadata is not None and metadata["protocol"] not in ("json", "rest-json"):
        return protocol_error(metadata["protocol"], None, error.message, error.code,
                              error.status or 403)
    return web.Response(status=error.status or 403, body=dumps({"message": error.message}),
                        content_type="application/json",
                        headers={"x-amzn-ErrorType": error.code})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guard_middleware(guard: Guard, service_of: Callable[[web.Request], list[str] | None]
                     ) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware applying `guard` before the request is routed to its service."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = service_of(request)
        service = scope[3] if scope else None
        reason = guard.refusal(request, service)
        if reason is not None:
            return refused(service, AwsError("AccessDeniedException", reason, status=403))
        if guard.credentials and scope is not None:
            try:
                await guard.check_signature(request, scope)
            except AwsError as e:
                return refused(service, e)
        return await handler(request)

    return middleware
