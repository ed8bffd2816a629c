"""One HTTP port for every AWS service local core answers, routed by the service named in the
SigV4 credential scope (`Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/
aws4_request, ...` or a presigned URL's `X-Amz-Credential`). Signatures are not verified."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from fleetsim.localcore.api import operations
from fleetsim.localcore.api.context import ApiContext
from fleetsim.localcore.api.restjson import RestJsonService, dumps
from fleetsim.localcore.api.sts import StsService

if TYPE_CHECKING:
    from fleetsim.localcore.core import LocalCore

ServiceHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Modules whose import registers handlers in `operations` (add yours here).
HANDLER_MODULES = (
    "fleetsim.localcore.api.endpoint",
    "fleetsim.localcore.api.things",
    "fleetsim.localcore.api.thing_types",
    "fleetsim.localcore.api.thing_groups",
    "fleetsim.localcore.api.certificates",
    "fleetsim.localcore.api.ca_certificates",
    "fleetsim.localcore.api.policies",
    "fleetsim.localcore.api.event_config",
)

# SigV4 signing name -> (botocore model name, handler registry) for rest-json services.
REST_JSON_SERVICES = {
    "iot": ("iot", operations.iot),
    "iotdata": ("iot-data", operations.iot_data),
    "iot-jobs-data": ("iot-jobs-data", operations.iot_jobs_data),
}


def credential_scope_service(request: web.Request) -> str | None:
    """The SERVICE of `Credential=KEY/DATE/REGION/SERVICE/aws4_request`, or None."""
    auth = request.headers.get("Authorization")
    if auth is not None:
        start = auth.find("Credential=")
        if start < 0:
            return None
        scope = auth[start + 11:].split(",", 1)[0]
    else:
        scope = request.query.get("X-Amz-Credential", "")
    parts = scope.split("/")
    return parts[3] if len(parts) >= 5 else None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, body=dumps({"message": message}),
                        content_type="application/json", headers={"x-amzn-ErrorType": code})


def build_services(core: LocalCore) -> dict[str, ServiceHandler]:
    for module in HANDLER_MODULES:
        importlib.import_module(module)
    ctx = ApiContext(core)
    services: dict[str, ServiceHandler] = {
        scope: RestJsonService(model, registry.handlers, ctx).handle
        for scope, (model, registry) in REST_JSON_SERVICES.items()
    }
    services["sts"] = StsService(core.config.account_id).handle
    return services


def build_app(core: LocalCore) -> web.Application:
    services = build_services(core)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        service = credential_scope_service(request)
        if service is None:
            return _error(403, "MissingAuthenticationTokenException",
                          "Missing Authentication Token")
        handler = services.get(service)
        if handler is None:
            return _error(400, "UnrecognizedServiceException",
                          f"local core does not serve the '{service}' service")
        return await handler(request)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    app["services"] = services
    return app


async def start_api(core: LocalCore, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(build_app(core), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner, runner.addresses[0][1]
