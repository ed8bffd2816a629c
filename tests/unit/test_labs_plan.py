"""`run --plan` of labs: the labs' ledgers added up into the total."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetsim.engine.labs_plan import total
from fleetsim.engine.reconcile import SAMPLE, Ledger

KINDS = st.sampled_from(["thing", "policy", "thing_group"])
CREATES = st.lists(st.lists(st.tuples(KINDS, st.text("abc", min_size=1, max_size=3)),
                            max_size=8), max_size=4)


@given(CREATES)
def test_the_total_counts_each_labs_creates_once(labs: list[list[tuple[str, str]]]) -> None:
    made_by: dict[tuple[str, str], str] = {}
    ledgers = []
    for n, creates in enumerate(labs):
        ledger = Ledger(plan=True, lab=f"lab {n}", made_by=made_by)
        for kind, name in creates:
            ledger.create(kind, name)
        ledgers.append(ledger)
    summed = total(ledgers)
    for kind in {k for creates in labs for k, _ in creates}:
        assert summed.created[kind].count == sum(
            1 for n, creates in enumerate(labs) for k, name in creates
            if k == kind and made_by[(k, name)] == f"lab {n}")
        assert summed.removed[kind].count == summed.created[kind].count
        assert len(summed.created[kind].names) <= SAMPLE
