"""The cyclic collector's policy in a process that holds thousands of connections: what
survived a full collection is frozen, so that the next one walks only what came since.

CPython 3.11 runs a full collection whenever the objects that reached the oldest generation
since the last one are a quarter of those it kept then, and each walks every tracked object.
A process whose connections accumulate (local core, a fleet's connect ramp) thus walks all of
them again and again, with its loop stopped, for nothing: in the 20,000-device run (`python
-m bench.fleet --devices 20000 --rate 500`), the generator ran 8 full collections during its
connect ramp, the last over 1.05 M objects in 517 ms, local core 7 (397 ms at most), each
collecting nothing. They were its connect p99 (580 ms) and the starts its pacer lost.

Right after a full collection nothing unreachable is left among the tracked objects, so
`gc.freeze` then moves only live ones to the permanent generation, which no later collection
walks. Reference counting still frees a frozen object when its last reference goes; only a
reference cycle that includes a frozen object waits for `collect_all` (local core's memory
trim, once connections stop coming and going) or for the end of `survivors_frozen`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


@contextlib.contextmanager
def survivors_frozen() -> Iterator[None]:
    """While inside, what survives each full collection is frozen; after, nothing is."""
    if _freeze_survivors in gc.callbacks:  # already, further out
        yield
        return
    gc.callbacks.append(_freeze_survivors)
    try:
        yield
    finally:
        gc.callbacks.remove(_freeze_survivors)
        gc.unfreeze()


def collect_all() -> int:
    """A full collection of every tracked object, the frozen ones too (within
    `survivors_frozen`, what survives is frozen again); returns how many it found
    unreachable, as `gc.collect`."""
    gc.unfreeze()
    return gc.collect()
