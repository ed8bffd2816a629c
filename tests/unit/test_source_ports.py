"""Local ports taken in turn (`fleetsim.device.source_ports`): the kernel's range read and
parsed, ports in use and reserved skipped, connect() left to choose when none is free."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.device import source_ports
from fleetsim.device.source_ports import SourcePorts, _ranges


@given(st.lists(st.tuples(st.integers(1, 65535), st.integers(0, 100)), max_size=6),
       st.sampled_from([",", ", ", "\t"]))
def test_reserved_ranges_are_read_as_the_kernel_writes_them(
        ranges: list[tuple[int, int]], separator: str) -> None:
    text = separator.join(f"{a}-{a + n}" if n else str(a) for a, n in ranges) + "\n"
    assert _ranges(text) == [(a, a + n) for a, n in ranges]


@pytest.fixture
def free_ports() -> Iterator[list[socket.socket]]:
    """Three consecutive ports, each held by a socket the test may close (the rest are closed
    after it)."""
    held: list[socket.socket] = []
    for _ in range(200):
        first = socket.socket()
        first.bind(("127.0.0.1", 0))
        base = first.getsockname()[1]
        if base > 65533:
            first.close()
            continue
        rest = []
        try:
            for p in (base + 1, base + 2):
                s = socket.socket()
                rest.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            for s in (first, *rest):
                s.close()
            continue
        held = [first, *rest]
        break
    assert held, "no three consecutive free ports"
    yield held
    for s in held:
        s.close()


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def test_ports_are_taken_in_turn_skipping_those_in_use_and_reserved(
        free_ports: list[socket.socket]) -> None:
    low = _port(free_ports[0])
    for s in free_ports[1:]:
        s.close()  # low stays held by another socket; low + 1 is reserved
    ports = SourcePorts(low, low + 2, reserved=frozenset({low + 1}))
    ports._next = 0
    with socket.socket() as sock:
        assert ports.bind(sock, socket.AF_INET)
        assert _port(sock) == low + 2


def test_with_every_port_taken_connect_chooses(free_ports: list[socket.socket]) -> None:
    low = _port(free_ports[0])
    ports = SourcePorts(low, low + 2)
    with socket.socket() as sock:
        assert not ports.bind(sock, socket.AF_INET)
        assert _port(sock) == 0  # unbound: connect() picks, as before


def test_the_machine_range_is_the_kernels(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    (tmp_path / "ip_local_port_range").write_text("40000\t40009\n")
    (tmp_path / "ip_local_reserved_ports").write_text("40001,40003-40004\n")
    monkeypatch.setattr(source_ports, "_PROC", tmp_path)
    ports = SourcePorts.of_this_machine()
    assert ports is not None
    assert (ports._low, ports._count) == (40000, 10)
    assert ports._reserved == {40001, 40003, 40004}
    for broken in ("nonsense\n", "5000 4000\n"):
        (tmp_path / "ip_local_port_range").write_text(broken)
        assert SourcePorts.of_this_machine() is None
