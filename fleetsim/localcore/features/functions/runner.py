"""Execution environments: one worker process each (`worker.py` under local core's own
interpreter), started on demand, kept warm and reused for later invocations of the same
function and code, at most `limit` per function ("Lambda execution environment lifecycle").
An invocation past its timeout kills its environment; so does a handler that exits or
crashes the interpreter. Either way only that invocation fails."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsim.runtime import die_with_parent

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("worker.py")
INIT_TIMEOUT_S = 10.0  # the Init phase's limit ("Lambda execution environment lifecycle")
OUTPUT_GRACE_S = 1.0  # how long to wait for output written just before an answer
MAX_LINE = 256 * 1024  # a CloudWatch Logs event's size limit
IDLE_S = 600.0  # an environment unused this long is shut down

Line = tuple[int, str]  # (epoch ms, text)


def _now_ms() -> int:
    return int(time.time() * 1000)


# Go's names for the signals a crashed runtime reports ("Runtime exited with error: signal:
# segmentation fault").
_SIGNALS = {signal.SIGSEGV: "segmentation fault", signal.SIGKILL: "killed",
            signal.SIGABRT: "aborted", signal.SIGTERM: "terminated", signal.SIGBUS: "bus error",
            signal.SIGFPE: "floating point exception", signal.SIGILL: "illegal instruction"}


def _die_with_parent() -> None:
    """A `preexec_fn`: the worker is killed when local core dies, however it dies (Linux
    PR_SET_PDEATHSIG)."""
    die_with_parent(signal.SIGKILL)


def exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "exit status unknown"
    if returncode < 0:
        return f"signal: {_SIGNALS.get(signal.Signals(-returncode), str(-returncode))}"
    return f"exit status {returncode}"


@dataclass
class Outcome:
    """One invocation: `ok` False is a function error (X-Amz-Function-Error: Unhandled)."""
    ok: bool
    body: bytes
    output: list[Line]
    duration_ms: float
    max_memory_mb: int
    # a line the platform adds before END (a timeout, an exited runtime)
    platform_line: str | None = None


@dataclass
class Spec:
    """What an environment runs: the function's code, handler, environment and revision."""
    task_dir: Path
    env: dict[str, str]
    revision: str


class Environment:
    """One worker process."""

    def __init__(self, proc: asyncio.subprocess.Process, answers: asyncio.StreamReader,
                 marker: bytes, revision: str, stream: str):
        self.proc = proc
        self.answers = answers
        self.marker = marker
        self.revision = revision
        self.stream = stream
        self.segments: asyncio.Queue[list[Line] | None] = asyncio.Queue()
        self.init_ms: float | None = None  # reported with the first invocation only
        self.init_output: list[Line] = []
        self.init_error: dict[str, Any] | None = None
        self.dead = False
        self.idle_since = time.monotonic()
        self._reader = asyncio.get_running_loop().create_task(self._read_output())

    @classmethod
    async def start(cls, spec: Spec, stream: str) -> Environment:
        marker = f"\x1efleetsim-end-{secrets.token_hex(8)}\x1e".encode()
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-P", str(WORKER), str(write_fd), marker.decode(),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, pass_fds=(write_fd,), cwd=spec.task_dir,
                env=spec.env, preexec_fn=_die_with_parent)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        answers = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(answers),
                                     os.fdopen(read_fd, "rb", buffering=0))
        env = cls(proc, answers, marker, spec.revision, stream)
        await env._init()
        return env

    async def _init(self) -> None:
        try:
            answer = await asyncio.wait_for(self._answer(), INIT_TIMEOUT_S)
        except TimeoutError:
            answer = None
        self.init_output = await self._segment()
        if answer is None:
            self.kill()
            self.init_error = {"errorType": "Runtime.Unknown",
                               "errorMessage": "The function's runtime did not start within "
                               f"{INIT_TIMEOUT_S:.0f} seconds, or exited while starting"}
            return
        self.init_ms = answer["init_ms"]
        self.init_error = answer.get("error")

    async def _answer(self) -> dict[str, Any] | None:
        try:
            header = await self.answers.readexactly(4)
            body = await self.answers.readexactly(int.from_bytes(header, "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        answer: dict[str, Any] = json.loads(body)
        return answer

    async def _segment(self) -> list[Line]:
        """The output up to the next marker (or what there is, if none comes soon)."""
        try:
            lines = await asyncio.wait_for(self.segments.get(), OUTPUT_GRACE_S)
        except TimeoutError:
            return []
        return lines or []

    async def _read_output(self) -> None:
        assert self.proc.stdout is not None
        buf, lines = b"", []
        while True:
            chunk = await self.proc.stdout.read(65536)
            now = _now_ms()
            if not chunk:
                if buf:
                    lines.append((now, buf.decode(errors="replace")))
                self.segments.put_nowait(lines)
                self.segments.put_nowait(None)
                return
            buf += chunk
            while True:
                m, n = buf.find(self.marker), buf.find(b"\n")
                if m >= 0 and (n < 0 or m < n):
                    if m:
                        lines.append((now, buf[:m].decode(errors="replace")))
                    self.segments.put_nowait(lines)
                    lines, buf = [], buf[m + len(self.marker):]
                elif n >= 0:
                    lines.append((now, buf[:n].decode(errors="replace")))
                    buf = buf[n + 1:]
                elif len(buf) > MAX_LINE:
                    lines.append((now, buf[:MAX_LINE].decode(errors="replace")))
                    buf = buf[MAX_LINE:]
                else:
                    break

    async def invoke(self, request: dict[str, Any], timeout_s: float) -> Outcome:
        started = time.perf_counter()
        assert self.proc.stdin is not None
        body = json.dumps(request).encode()
        try:
            self.proc.stdin.write(len(body).to_bytes(4, "big") + body)
            await self.proc.stdin.drain()
            answer = await asyncio.wait_for(self._answer(), timeout_s)
        except TimeoutError:
            self.kill()
            output = await self._segment()
            return Outcome(False, json.dumps({
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request['id']} Error: Task timed out after "
                                f"{timeout_s:.2f} seconds"}).encode(), output,
                timeout_s * 1000, 0, f"Task timed out after {timeout_s:.2f} seconds")
        except ConnectionError:
            answer = None
        duration = (time.perf_counter() - started) * 1000
        output = await self._segment()
        if answer is None:  # the runtime exited: sys.exit, os._exit, a crash
            self.dead = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), OUTPUT_GRACE_S)
            reason = exit_reason(self.proc.returncode)
            message = f"RequestId: {request['id']} Error: Runtime exited with error: {reason}"
            return Outcome(False, json.dumps({"errorType": "Runtime.ExitError",
                                              "errorMessage": message}).encode(),
                           output, duration, 0, f"{message}\nRuntime.ExitError")
        return Outcome(bool(answer["ok"]), answer["body"].encode(), output, duration,
                       int(answer.get("max_rss_mb", 0)))

    def kill(self) -> None:
        self.dead = True
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def shut_down(self) -> None:
        """Kill the runtime and wait (briefly) for it to exit, so that its transports close
        on this loop rather than when collected after it."""
        self.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), OUTPUT_GRACE_S)


Starter = Callable[[], Awaitable[Environment]]


@dataclass
class _Slots:
    idle: list[Environment] = field(default_factory=list)
    count: int = 0


class Pool:
    """Warm environments per function, at most `limit` each; an invocation beyond that waits
    for one to come free."""

    def __init__(self, limit: int = 4, idle_s: float = IDLE_S):
        self.limit = limit
        self.idle_s = idle_s
        self._slots: dict[tuple[str, str], _Slots] = {}
        self._revision: dict[tuple[str, str], str] = {}  # the newest a function runs
        self._freed = asyncio.Condition()

    async def acquire(self, key: tuple[str, str], revision: str, start: Starter
                      ) -> Environment:
        slots = self._slots.setdefault(key, _Slots())
        self._revision[key] = revision
        async with self._freed:
            while True:
                self._reap(slots, revision)
                if slots.idle:
                    return slots.idle.pop()
                if slots.count < self.limit:
                    slots.count += 1
                    break
                await self._freed.wait()
        try:
            return await start()
        except BaseException:
            slots.count -= 1
            raise

    def _reap(self, slots: _Slots, revision: str) -> None:
        """Shut down idle environments of an older revision, dead, or idle too long."""
        horizon = time.monotonic() - self.idle_s
        for env in list(slots.idle):
            if env.revision != revision or env.dead or env.idle_since < horizon:
                slots.idle.remove(env)
                slots.count -= 1
                env.kill()

    async def release(self, key: tuple[str, str], env: Environment) -> None:
        slots = self._slots[key]
        async with self._freed:
            if env.dead or env.init_error is not None or \
                    env.revision != self._revision.get(key):
                env.kill()
                slots.count -= 1
            else:
                env.idle_since = time.monotonic()
                slots.idle.append(env)
            self._freed.notify_all()

    def retire(self, key: tuple[str, str]) -> None:
        """Shut down a function's idle environments (deleted, or its code changed); busy ones
        are shut down when released, their revision being old."""
        self._revision[key] = ""
        slots = self._slots.get(key)
        if slots is not None:
            self._reap(slots, revision="")

    async def close(self) -> None:
        """Shut down every idle environment."""
        idle = [env for slots in self._slots.values() for env in slots.idle]
        for slots in self._slots.values():
            slots.idle.clear()
        await asyncio.gather(*(env.shut_down() for env in idle))
