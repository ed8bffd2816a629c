"""`MetricsServer`: a Prometheus endpoint (`GET /metrics`) served from the run's event loop.

It is served by aiohttp on the loop that records, so a scrape reads the recorder between two
of its updates, never during one (no lock, nothing on the hot path). Its registry is its own
(`CollectorRegistry`, not prometheus_client's global one): the run's collector and the
process' CPU and memory (`process_*`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from types import TracebackType

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder

from fleetsim.errors import UserError
from fleetsim.metrics.prometheus import RecorderCollector
from fleetsim.metrics.recorder import Metrics

PATH = "/metrics"


def metrics_registry(source: Callable[[], Metrics]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecorderCollector(source))
    ProcessCollector(registry=registry)
    return registry


class MetricsServer:
    """`async with MetricsServer(source, host, port) as server:` serves `server.url` while
    the block runs; port 0 picks a free port."""

    def __init__(self, source: Callable[[], Metrics], host: str = "127.0.0.1", port: int = 0):
        self.registry = metrics_registry(source)
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"

    async def _scrape(self, request: web.Request) -> web.Response:
        # Prometheus asks for OpenMetrics in its Accept header; anything else gets text 0.0.4.
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.registry),
                            headers={"Content-Type": content_type})

    async def __aenter__(self) -> MetricsServer:
        sock = _listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        app = web.Application()
        app.router.add_get(PATH, self._scrape)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _listen(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"--metrics-host {host}: not an address of this machine "
                        f"({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise UserError(f"--metrics-port {port}: cannot listen on {host}:{port} "
                        f"({e.strerror})") from None
    sock.setblocking(False)
    return sock
