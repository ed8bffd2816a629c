"""A client process for broker loads, driven by the benchmark process over a pipe: it builds
its devices' SSL contexts once, then runs the commands it is sent on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import time
import traceback
from dataclasses import dataclass
from typing import Any

from bench.devices import DeviceFiles
from bench.mqtt_client import client_context
from bench.mqtt_load import Fleet, Identity, handshakes
from bench.system import pin_self, raise_fd_limit


@dataclass
class WorkerSpec:
    tag: str
    port: int
    root_ca: str
    server_pid: int
    publishers: list[DeviceFiles]
    subscribers: list[DeviceFiles]
    cpu: int | None


async def _serve(pipe: multiprocessing.connection.Connection, spec: WorkerSpec) -> None:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    pubs = [Identity(d.name, client_context(spec.root_ca, d.cert_path, d.key_path))
            for d in spec.publishers]
    subs = [Identity(d.name, client_context(spec.root_ca, d.cert_path, d.key_path))
            for d in spec.subscribers]
    fleet = Fleet(spec.port, spec.tag)
    pipe.send({"ok": True, "contexts": len(pubs) + len(subs),
               "context_ms_each": round(1000 * (time.perf_counter() - t0)
                                        / max(1, len(pubs) + len(subs)), 3),
               "affinity": pin_self(None)})
    while True:
        command, args = await loop.run_in_executor(None, pipe.recv)
        try:
            if command == "exit":
                await fleet.close()
                pipe.send({"ok": True})
                return
            if command == "connect":
                reply = await fleet.connect(pubs, subs, args["concurrency"])
            elif command == "pump":
                reply = await fleet.pump(server_pid=spec.server_pid, **args)
            elif command == "close":
                await fleet.close()
                reply = {}
            elif command == "handshakes":
                reply = await handshakes(spec.port, pubs, server_pid=spec.server_pid, **args)
            else:
                raise ValueError(f"unknown command {command!r}")
            pipe.send({"ok": True, **reply})
        except Exception as e:  # reported to the benchmark process, which fails the part
            pipe.send({"ok": False, "error": f"{type(e).__name__}: {e}",
                       "traceback": traceback.format_exc()})


def worker_main(pipe: multiprocessing.connection.Connection, spec: WorkerSpec) -> None:
    import uvloop

    pin_self(spec.cpu)
    raise_fd_limit()
    uvloop.run(_serve(pipe, spec))


class WorkerHandle:
    """The benchmark process's side of one client process."""

    def __init__(self, spec: WorkerSpec):
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=worker_main, args=(child, spec), daemon=True,
                                   name=f"bench-client-{spec.tag}")
        self.process.start()
        child.close()
        self.ready = self._reply(120)

    def _reply(self, timeout: float) -> dict[str, Any]:
        if not self.pipe.poll(timeout):
            raise TimeoutError(f"client process {self.process.name} gave no answer in "
                               f"{timeout:.0f}s")
        reply: dict[str, Any] = self.pipe.recv()
        if not reply.get("ok"):
            raise RuntimeError(f"client process failed: {reply.get('error')}\n"
                               f"{reply.get('traceback', '')}")
        return reply

    def send(self, command: str, **args: Any) -> None:
        self.pipe.send((command, args))

    def result(self, timeout: float = 120) -> dict[str, Any]:
        return self._reply(timeout)

    def call(self, command: str, timeout: float = 120, **args: Any) -> dict[str, Any]:
        self.send(command, **args)
        return self.result(timeout)

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(TimeoutError, RuntimeError, OSError, EOFError):
                self.call("exit", timeout=15)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
