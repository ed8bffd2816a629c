"""The collector's policy (`fleetsim.collector`): survivors of a full collection frozen, cycles
still found, nothing left frozen after."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from fleetsim.collector import collect_all, survivors_frozen
from fleetsim.runtime import run_async


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())  # the frozen are not among them


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_what_survives_a_full_collection_is_frozen_and_walked_no_more() -> None:
    with survivors_frozen():
        kept = Node()
        assert _tracked(kept)
        gc.collect()
        assert gc.get_freeze_count() > 0
        assert not _tracked(kept)  # no later collection walks it
        young = Node()
        gc.collect(1)  # a young collection freezes nothing
        assert _tracked(young)
    assert gc.get_freeze_count() == 0
    assert _tracked(kept)


def test_a_cycle_is_collected_before_anything_is_frozen() -> None:
    with survivors_frozen():
        garbage = _cycle()
        gc.collect()
        assert garbage() is None


def test_a_cycle_through_frozen_objects_waits_for_collect_all() -> None:
    with survivors_frozen():
        a = Node()
        a.other = Node()
        a.other.other = a
        gc.collect()  # both frozen, alive
        ref = weakref.ref(a)
        del a
        gc.collect()
        assert ref() is not None
        collect_all()
        assert ref() is None
        assert gc.get_freeze_count() > 0  # the survivors frozen again


def test_reference_counting_frees_a_frozen_object() -> None:
    with survivors_frozen():
        node = Node()
        gc.collect()
        ref = weakref.ref(node)
        del node
        assert ref() is None


def test_nested_it_leaves_the_outer_in_force() -> None:
    with survivors_frozen():
        with survivors_frozen():
            pass
        kept = Node()
        gc.collect()
        assert not _tracked(kept)
    assert _tracked(kept)


def test_run_async_runs_under_it() -> None:
    async def main() -> int:
        kept = Node()
        gc.collect()
        await asyncio.sleep(0)
        return 0 if _tracked(kept) else gc.get_freeze_count()

    assert run_async(main()) > 0
    assert gc.get_freeze_count() == 0
