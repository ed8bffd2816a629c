"""PLACEHOLDER written by the lead so the API can start; the broker engineer replaces this file."""

from __future__ import annotations

import asyncio
import ssl

from fleetsim.localcore.principal import Authority


class Broker:
    def __init__(self, authority: Authority, ssl_context: ssl.SSLContext, account_id: str,
                 region: str):
        self.authority = authority
        self.ssl_context = ssl_context
        self.published: list[tuple[str, bytes]] = []
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(lambda r, w: w.close(), host, port,
                                                  ssl=self.ssl_context)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()

    def publish_internal(self, topic: str, payload: bytes, qos: int = 0,
                         retain: bool = False) -> None:
        self.published.append((topic, payload))

    def disconnect_certificate(self, certificate_id: str) -> None:
        pass
