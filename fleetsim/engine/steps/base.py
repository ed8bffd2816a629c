"""`StepKind`: one kind of scenario step, registered once in `fleetsim.engine.steps`.

A step kind is one module of this package holding
- its model: a pydantic subclass of `StepBase`/`FleetStep` with `kind: Literal["<kind>"]`,
  whose class variables and `check` say what `fleetsim validate` checks (scalar shorthand,
  needs a connection, templates, references to fleets and earlier steps);
- its run function, `async def run(ctx: RunContext, step: <Model>) -> None`;
- the journal kinds it records (`JournalKind`: how clean-up undoes each, in which phase),
  declared in that module or, when several steps record one, beside the code they share;
- `KIND = StepKind(<Model>, run, journals=(...), plans=..., phase=...)`, listed in
  `fleetsim.engine.steps` (`plans=True`: it reconciles what it declares and, planning, only
  describes; `phase`: which process of a split run may run it, engine/split.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from fleetsim.control.cleanup import JournalKind
from fleetsim.engine.context import RunContext
from fleetsim.scenario.model import StepBase, kind_of

S = TypeVar("S", bound=StepBase)


@dataclass(frozen=True)
class StepKind(Generic[S]):
    model: type[S]
    run: Callable[[RunContext, S], Awaitable[None]]
    # Every kind of journal entry the step records (clean-up must know how to undo each).
    journals: tuple[JournalKind, ...] = ()
    # The run function reconciles (engine/reconcile.py) and honours `ctx.reconcile.plan`:
    # planning, it only describes. `fleetsim run --plan` runs only such steps.
    plans: bool = False
    # Where a run may put it (engine/split.py): "api", it calls the AWS API only and leaves
    # no session, observer or background task behind; "device", it uses the devices'
    # identities and sessions only, never the AWS API. None: neither can be promised.
    phase: Literal["api", "device"] | None = None

    @property
    def name(self) -> str:
        return kind_of(self.model)


AnyStepKind = StepKind[Any]
