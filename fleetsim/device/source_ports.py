"""Local ports for a fleet's connections, taken in turn here rather than searched for by
`connect()` (issue 9's 20,000-device run).

Linux gives an unbound socket its port at `connect()` (`__inet_hash_connect`): it scans the
ephemeral range from a hashed offset, ports of one parity first, and checks each port in use
against the connection table. One process holding thousands of connections to one endpoint
uses most of that parity's ports, so past ~14,000 connections (half of the default 28,232
ports) every connect scanned ~14,000 ports before trying the other parity: `perf record` of
the generator in the second half of the 20,000-device ramp put 54% of its CPU in
`__inet_hash_connect` and `__inet_check_established`, and it ran out of CPU there.

`bind()` to one given port costs one lookup. A process's connections take the ports of the
kernel's ephemeral range (`ip_local_port_range`, minus `ip_local_reserved_ports`) in turn from
a random start, skipping a port something else holds (EADDRINUSE: another process, a
TIME_WAIT). Where the range cannot be read, or a socket cannot be bound within a few tries,
`connect()` chooses as before. The source address stays the one routing picks.
"""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path

_PROC = Path("/proc/sys/net/ipv4")
TRIES = 32  # ports tried per socket before leaving the choice to connect()
_ANY: dict[int, str] = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


def _ranges(text: str) -> list[tuple[int, int]]:
    """'32768-33000,40000' -> [(32768, 33000), (40000, 40000)]."""
    found = []
    for part in text.replace("\t", ",").replace(" ", ",").split(","):
        low, _, high = part.strip().partition("-")
        if low:
            found.append((int(low), int(high or low)))
    return found


class SourcePorts:
    """The ports of a range, handed to this process's sockets in turn."""

    def __init__(self, low: int, high: int, reserved: frozenset[int] = frozenset()):
        self._low, self._count, self._reserved = low, high - low + 1, reserved
        self._next = random.randrange(self._count)

    @classmethod
    def of_this_machine(cls) -> SourcePorts | None:
        """The kernel's ephemeral range; None where it cannot be read (not Linux)."""
        try:
            low, high = map(int, (_PROC / "ip_local_port_range").read_text().split())
            reserved_text = (_PROC / "ip_local_reserved_ports").read_text()
        except (OSError, ValueError):
            return None
        if not 0 < low <= high < 65536:
            return None
        return cls(low, high, frozenset(p for a, b in _ranges(reserved_text)
                                        for p in range(a, b + 1)))

    def bind(self, sock: socket.socket, family: int) -> bool:
        """Bind `sock` to the next free port; False (unbound) if none was found in `TRIES`."""
        address = _ANY.get(family)
        if address is None:
            return False
        for _ in range(TRIES):
            port = self._low + self._next
            self._next = (self._next + 1) % self._count
            if port in self._reserved:
                continue
            try:
                sock.bind((address, port))
                return True
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    return False
        return False
