"""Reconciling the registry a scenario declares: what a run created, reused and found drifted.

Each create/attach step first describes what it declares. Absent: created (and journaled, as
ever). Present and equal: **reused**, nothing made, nothing journaled: a resource the scenario
declares and the run found existing belongs to whoever created it (an earlier kept run, a
persistent fleet, a person), so this run's clean-up leaves it. Present but different:
**drift**, one item per difference (`policy p: not attached to certificate ab12…`), fixed by
the step; a fix that clean-up must undo before it can remove what it hangs off (an
attachment, a group membership, a new default policy version) is journaled as a create
would be, so clean-up returns the resource to the state the run found it in.

With `--plan` (`Ledger.plan`) steps only describe: what they would create, fix and (for
resources journaled in the run's journal, which clean-up removes afterwards) remove is
written down here and printed, grouped by kind, instead of being done.

This module is pure: the diffs, the ledger and its renderings; the steps do the describing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Names a tally keeps (for the plan's and summary's "first few"), and drift items kept.
SAMPLE = 3
MAX_DRIFT = 1000


@dataclass(frozen=True)
class Drift:
    """One difference between what the scenario declares and what the registry holds."""

    kind: str  # the resource kind, as journaled: thing, policy, policy_attachment, ...
    name: str
    item: str  # what differs, e.g. "attribute type is missing (want ws-device)"
    fixed: bool = False

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.item}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "item": self.item, "fixed": self.fixed}


@dataclass
class Tally:
    """How many of one kind, and the first few names."""

    count: int = 0
    names: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        self.count += 1
        if len(self.names) < SAMPLE:
            self.names.append(name)

    def describe(self) -> str:
        more = self.count - len(self.names)
        return ", ".join(self.names) + (f", … ({more} more)" if more > 0 else "")


def counts(tallies: dict[str, Tally]) -> dict[str, int]:
    """How many of each kind, by kind."""
    return {k: t.count for k, t in sorted(tallies.items())}


@dataclass
class Ledger:
    """What one run (or its plan) created, reused and found drifted, by resource kind."""

    plan: bool = False
    created: dict[str, Tally] = field(default_factory=dict)
    reused: dict[str, Tally] = field(default_factory=dict)
    # Of `created`: what clean-up removes after the run (journaled in the run's journal).
    removed: dict[str, Tally] = field(default_factory=dict)
    drift: list[Drift] = field(default_factory=list)
    drift_count: int = 0
    # Certificate ARNs and `thing/NAME`s this run created (or, planning, would): nothing is
    # attached to them yet, so what hangs off them is created without being described.
    fresh: set[str] = field(default_factory=set)
    # Every thing reused (not only a Tally's first few): not the run's to remove or find left.
    reused_things: set[str] = field(default_factory=set)
    # Planning labs: the lab this ledger accounts for, and (shared by every lab's ledger)
    # which lab would create each (kind, name); a later lab that declares it again is told
    # it is made before it (`earlier`, by that lab), not a second create.
    lab: str = ""
    made_by: dict[tuple[str, str], str] = field(default_factory=dict)
    earlier: dict[str, dict[str, Tally]] = field(default_factory=dict)
    # Planning labs: account settings as the labs planned so far would leave them (shared):
    # setting -> key -> (value, the lab that sets it), e.g. events -> JOB -> (True, lab 02).
    settings: dict[str, dict[str, tuple[Any, str]]] = field(default_factory=dict)

    def create(self, kind: str, name: str, ephemeral: bool = True) -> None:
        """`kind` `name` is (or, planning, would be) created; `ephemeral`: in the run's
        journal, so clean-up removes it after the run."""
        if self.plan and self.lab:
            by = self.made_by.setdefault((kind, name), self.lab)
            if by != self.lab:
                self.by_earlier(by, kind, name)
                return
        self.created.setdefault(kind, Tally()).add(name)
        if ephemeral:
            self.removed.setdefault(kind, Tally()).add(name)

    def by_earlier(self, lab: str, kind: str, name: str) -> None:
        """Planning labs: `kind` `name` is declared here but created by earlier `lab`."""
        self.earlier.setdefault(lab, {}).setdefault(kind, Tally()).add(name)

    def set_earlier(self, setting: str, wanted: Mapping[str, Any]) -> dict[str, str]:
        """Planning labs: the keys of `setting` an earlier lab would already set to the
        value `wanted` gives them (key -> that lab); the others are recorded as set by this
        lab. Outside a plan of labs, nothing."""
        if not (self.plan and self.lab):
            return {}
        planned = self.settings.setdefault(setting, {})
        earlier = {k: planned[k][1] for k, v in wanted.items()
                   if k in planned and planned[k] == (v, planned[k][1])
                   and planned[k][1] != self.lab}
        planned.update({k: (v, self.lab) for k, v in wanted.items() if k not in earlier})
        return earlier

    def planned(self, kind: str) -> bool:
        """Planning: a `kind` is to be created by this lab (or scenario) or an earlier lab."""
        return kind in self.created or any(k == kind for k, _ in self.made_by)

    def reuse(self, kind: str, name: str) -> None:
        self.reused.setdefault(kind, Tally()).add(name)
        if kind == "thing":
            self.reused_things.add(name)

    def reuse_many(self, kind: str, names: list[str]) -> None:
        """`reuse` of each of `names`, in one go."""
        if not names:
            return
        tally = self.reused.setdefault(kind, Tally())
        tally.names += names[:max(0, SAMPLE - len(tally.names))]
        tally.count += len(names)
        if kind == "thing":
            self.reused_things.update(names)

    def drifted(self, kind: str, name: str, items: list[str], fixable: bool = True) -> None:
        """Differences found in `kind` `name`: fixed unless planning or not `fixable` (the
        caller fixes them right after, or raises)."""
        for item in items:
            self.drift_count += 1
            if len(self.drift) < MAX_DRIFT:
                self.drift.append(Drift(kind, name, item, fixed=fixable and not self.plan))

    def fresh_thing(self, name: str) -> None:
        """Thing `name` was created by this run (planning: would be)."""
        self.fresh.add(f"thing/{name}")

    def is_fresh_thing(self, name: str) -> bool:
        return f"thing/{name}" in self.fresh

    def summary(self) -> dict[str, Any]:
        """The JSON summary's `reconcile` object."""
        return {"created": {k: t.count for k, t in sorted(self.created.items())},
                "reused": {k: t.count for k, t in sorted(self.reused.items())},
                "drift": [d.as_dict() for d in self.drift],
                "drift_count": self.drift_count}


# ---- diffs: what differs, one sentence per item --------------------------------------------

def attribute_items(want: Mapping[str, str], have: Mapping[str, str]) -> list[str]:
    """Attributes of `want` that `have` lacks or holds another value of (attributes
    `have` has beyond `want` are someone else's: not drift, since UpdateThing merges)."""
    items = []
    for key, value in sorted(want.items()):
        if key not in have:
            items.append(f"attribute {key} is missing (want {value})")
        elif have[key] != value:
            items.append(f"attribute {key} is {have[key]} (want {value})")
    return items


def value_item(label: str, have: object, want: object) -> list[str]:
    """`label` differs, stated with both values when they are short."""
    if have == want:
        return []
    if len(repr(have)) + len(repr(want)) <= 80:
        return [f"{label} is {_show(have)} (want {_show(want)})"]
    return [f"{label} differs"]


def _show(value: object) -> str:
    return "none" if value is None else str(value)


def json_equal(a: str | Mapping[str, Any], b: str | Mapping[str, Any]) -> bool:
    """Two JSON documents (text or parsed) are the same document: key order and whitespace
    aside. Text that is not JSON is compared as text."""
    def parse(doc: str | Mapping[str, Any]) -> Any:
        if not isinstance(doc, str):
            return doc
        try:
            return json.loads(doc)
        except ValueError:
            return doc
    return bool(parse(a) == parse(b))


def document_item(label: str, have: str | Mapping[str, Any],
                  want: str | Mapping[str, Any]) -> list[str]:
    """`[label + " differs"]` unless the two are the same JSON document."""
    return [] if json_equal(have, want) else [f"{label} differs"]


def missing_items(what: str, want: list[str], have: set[str]) -> list[str]:
    """One item per wanted member `have` lacks: `not attached to certificate ab12…`."""
    return [f"{what} {short(w)}" for w in want if w not in have]


def short(name: str) -> str:
    """An ARN or certificate id cut to what a person reads: `cert/ab12cd34…`."""
    tail = name.rsplit(":", 1)[-1]
    kind, _, rest = tail.rpartition("/")
    ident = rest if len(rest) <= 16 else rest[:12] + "…"
    return f"{kind}/{ident}" if kind else ident


# ---- renderings ------------------------------------------------------------------------------

def _table(rows: list[tuple[str, str, int, str]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    return [f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip()
            for a, b, c, d in rows]


def _drift_rows(ledger: Ledger, verb: str) -> list[str]:
    lines = [f"  {verb if d.fixed or ledger.plan else 'not fixed'} {d}" for d in ledger.drift]
    if ledger.drift_count > len(ledger.drift):
        lines.append(f"  … and {ledger.drift_count - len(ledger.drift)} more drift items")
    return lines


def render(ledger: Ledger) -> str:
    """The console summary's Reconcile section (empty when the run declared nothing)."""
    rows = [("created", k, t.count, t.describe()) for k, t in sorted(ledger.created.items())]
    rows += [("reused", k, t.count, t.describe()) for k, t in sorted(ledger.reused.items())]
    if not rows and not ledger.drift_count:
        return ""
    drift = f"  drift: {ledger.drift_count} item(s)" if ledger.drift_count else "  drift: none"
    return "\n".join(["Reconcile", *_table(rows), drift, *_drift_rows(ledger, "fixed")]) + "\n"


def render_plan(ledger: Ledger, cleanup: bool,
                title: str = "Plan (nothing was created or changed)") -> str:
    """What `fleetsim run --plan` prints: creates, changes (drift, item by item), reuses and
    what the run's clean-up would remove afterwards, grouped by kind (planning labs: what an
    earlier lab would create, by that lab)."""
    rows = [("create", k, t.count, t.describe()) for k, t in sorted(ledger.created.items())]
    rows += [("reuse", k, t.count, t.describe()) for k, t in sorted(ledger.reused.items())]
    rows += [(f"created by {lab}", k, t.count, t.describe())
             for lab, kinds in ledger.earlier.items() for k, t in sorted(kinds.items())]
    if cleanup:
        rows += [("remove", k, t.count, t.describe())
                 for k, t in sorted(ledger.removed.items())]
    lines = [title, *_table(rows)]
    lines += _drift_rows(ledger, "change")
    if not rows and not ledger.drift_count:
        lines.append("  nothing to do")
    if not cleanup and ledger.removed:
        lines.append("  remove: nothing (the run keeps what it creates)")
    return "\n".join(lines) + "\n"
