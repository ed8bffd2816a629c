"""One HTTP port for every AWS service local core answers, routed by the service named in the
SigV4 credential scope (`Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/
aws4_request, ...` or a presigned URL's `X-Amz-Credential`). The REGION of the same scope picks
the registry a call sees. Signatures are verified only when credentials are configured
(`guard.py`, which also keeps browsers and foreign Host names out)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fleetsim.localcore.api.body import MAX_BODY_BYTES
from fleetsim.localcore.api.guard import Guard, guard_middleware
from fleetsim.localcore.api.jsonproto import JsonService
from fleetsim.localcore.api.operations import HttpHandlers, RawService
from fleetsim.localcore.api.queryproto import QueryService
from fleetsim.localcore.api.restjson import RestJsonService, dumps
from fleetsim.localcore.api.sts import StsService
from fleetsim.localcore.api.unserved import not_served
from fleetsim.localcore.scope import Scope

LINGER_S = 1.0

ServiceHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# SigV4 signing name -> botocore model name, for rest-json services.
REST_JSON_SERVICES = {"iot": "iot", "iotdata": "iot-data", "iot-jobs-data": "iot-jobs-data",
                      "lambda": "lambda"}
# SigV4 signing name -> botocore model name, for json services.
JSON_SERVICES = {"logs": "logs"}
# SigV4 signing name -> botocore model name, for query services (STS answers itself: sts.py).
QUERY_SERVICES = {"iam": "iam"}
# Request bodies larger than body.MAX_BODY_BYTES a service accepts: Lambda takes a 50 MB .zip
# in base64 and 6 MB invocation payloads ("Lambda quotas").
BODY_LIMITS = {"lambda": 70 * 1024 * 1024}


def credential_scope(request: web.Request) -> list[str] | None:
    """[KEY, DATE, REGION, SERVICE, aws4_request] of the request's credential scope, or None."""
    auth = request.headers.get("Authorization")
    if auth is not None:
        start = auth.find("Credential=")
        if start < 0:
            return None
        scope = auth[start + 11:].split(",", 1)[0]
    else:
        scope = request.query.get("X-Amz-Credential", "")
    parts = scope.split("/")
    return parts if len(parts) >= 5 else None


def credential_scope_service(request: web.Request) -> str | None:
    """The SERVICE of `Credential=KEY/DATE/REGION/SERVICE/aws4_request`; `s3` for a SigV2
    signature (`Authorization: AWS KEY:SIG`, or a presigned URL's `AWSAccessKeyId` and
    `Signature`), which only S3 still accepts (boto3 and `aws s3 presign` presign GETs that
    way); otherwise None."""
    parts = credential_scope(request)
    if parts:
        return parts[3]
    auth = request.headers.get("Authorization", "")
    if auth.startswith("AWS ") or ("AWSAccessKeyId" in request.query and
                                   "Signature" in request.query):
        return "s3"
    return None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, body=dumps({"message": message}),
                        content_type="application/json", headers={"x-amzn-ErrorType": code})


def build_services(handlers: HttpHandlers, account_id: str, default_region: str
                   ) -> dict[str, ServiceHandler]:
    def region_of(request: web.Request) -> str:
        parts = credential_scope(request)
        return parts[2] if parts and parts[2] else default_region

    services: dict[str, ServiceHandler] = {
        scope: RestJsonService(model, handlers.of(model), account_id, region_of,
                               max_body=BODY_LIMITS.get(scope, MAX_BODY_BYTES)).handle
        for scope, model in REST_JSON_SERVICES.items()
    }
    services.update({
        scope: JsonService(model, handlers.of(model), account_id, region_of).handle
        for scope, model in JSON_SERVICES.items()})
    services.update({
        scope: QueryService(model, handlers.of(model), account_id, region_of).handle
        for scope, model in QUERY_SERVICES.items()})
    services["sts"] = StsService(account_id).handle
    for name, raw in handlers.raw_services().items():
        services[name] = _scoped(raw, account_id, region_of)
    return services


def _scoped(raw: RawService, account_id: str, region_of: Callable[[web.Request], str]
            ) -> ServiceHandler:
    async def handle(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await raw(request, Scope(account_id, region_of(request)))
        return response
    return handle


def guard_middlewares(guard: Guard | None) -> list[Any]:
    """The checks made before routing: loopback Host, no browser cross-site requests, and
    SigV4 signatures when credentials are configured (`guard.py`)."""
    return [guard_middleware(guard or Guard.of(), credential_scope)]


def build_app(handlers: HttpHandlers, account_id: str, default_region: str,
              guard: Guard | None = None) -> web.Application:
    services = build_services(handlers, account_id, default_region)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        service = credential_scope_service(request)
        if service is None:
            return _error(403, "MissingAuthenticationTokenException",
                          "Missing Authentication Token")
        handler = services.get(service)
        if handler is None:
            return not_served(request, service, list(services))
        return await handler(request)

    app = web.Application(client_max_size=64 * 1024 * 1024,
                          middlewares=guard_middlewares(guard))
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def start_api(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    # An answer given before the body was read (413 past the cap) is followed by at most a
    # second of discarding what the client still sends, not aiohttp's default ten.
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           lingering_time=LINGER_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner, runner.addresses[0][1]
