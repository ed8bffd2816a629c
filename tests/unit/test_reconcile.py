"""Reconciling: the pure diffs and the ledger (engine/reconcile.py), and the create/attach
steps run twice against the fakes: created, then reused; drift reported item by item and
fixed; planning calls nothing that changes the registry."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fleetsim.engine.context import RunContext
from fleetsim.engine.reconcile import (
    Ledger,
    attribute_items,
    document_item,
    json_equal,
    render,
    render_plan,
)
from fleetsim.engine.steps import KINDS
from tests.fakes import FakeIot, fake_context, journal_kinds

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8)
ATTRIBUTES = st.dictionaries(NAMES, NAMES, max_size=5)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)
# What describing may call; anything else changes the registry.
READ_ONLY = re.compile(r"^(Describe|List|Get)")


@given(ATTRIBUTES, ATTRIBUTES)
def test_attribute_items_name_each_difference(want: dict[str, str],
                                              have: dict[str, str]) -> None:
    items = attribute_items(want, have)
    differing = {k for k, v in want.items() if have.get(k) != v}
    assert len(items) == len(differing)
    for key, item in zip(sorted(differing), items, strict=True):
        assert item.startswith(f"attribute {key} is ") and item.endswith(f"(want {want[key]})")
    # UpdateThing merges what is declared into what is there: afterwards, no drift
    assert attribute_items(want, {**have, **want}) == []


@given(JSON)
def test_the_same_document_in_any_spelling_is_not_drift(doc: object) -> None:
    text = json.dumps(doc)
    assert json_equal(json.dumps(doc, indent=3, sort_keys=True), text)
    assert document_item("default version document", text, json.dumps(doc, indent=1)) == []


@given(JSON, JSON)
def test_another_document_is_drift(a: object, b: object) -> None:
    drift = document_item("default version document", json.dumps(a), json.dumps(b))
    assert drift == ([] if a == b else ["default version document differs"])


def test_a_fleet_of_ten_thousand_is_one_plan_line_per_kind() -> None:
    ledger = Ledger(plan=True)
    for i in range(10_000):
        ledger.create("thing", f"dev-{i}")
        ledger.create("certificate", f"dev-{i}")
    ledger.create("policy", "p", ephemeral=False)
    ledger.reuse("thing_group", "g")
    ledger.drifted("policy_attachment", "p", ["not attached to thing group g"])
    text = render_plan(ledger, cleanup=True)
    lines = text.splitlines()
    assert len(lines) < 12
    (things,) = [line for line in lines if line.split()[:2] == ["create", "thing"]]
    assert "10000" in things and "dev-0, dev-1, dev-2, … (9997 more)" in things
    (removed,) = [line for line in lines if line.split()[:2] == ["remove", "thing"]]
    assert "10000" in removed
    assert not [line for line in lines if line.split()[:2] == ["remove", "policy"]]
    assert "  change policy_attachment p: not attached to thing group g" in lines
    assert "nothing was created" in lines[0]
    assert ledger.summary()["created"] == {"certificate": 10_000, "policy": 1, "thing": 10_000}


def test_the_summary_states_created_reused_and_drift() -> None:
    ledger = Ledger()
    ledger.create("thing", "a")
    ledger.reuse("policy", "p")
    ledger.drifted("thing_group", "g", ["parent is x (want y)"], fixable=False)
    assert ledger.summary() == {
        "created": {"thing": 1}, "reused": {"policy": 1}, "drift_count": 1,
        "drift": [{"kind": "thing_group", "name": "g", "item": "parent is x (want y)",
                   "fixed": False}]}
    text = render(ledger)
    assert "not fixed thing_group g: parent is x (want y)" in text
    assert render(Ledger()) == ""


SCENARIO = """
name: t
fleets: [{name: f, prefix: dev, count: 2}]
steps:
  - create_things: {fleet: f, attributes: {type: ws}}
  - create_policy: {policy: p, document: {Version: "2012-10-17", Statement: []}}
  - create_thing_group: {group: g, policies: [p]}
  - add_to_thing_group: {fleet: f, group: g}
"""


async def _run(tmp_path: Path, iot: FakeIot, plan: bool = False) -> RunContext:
    tmp_path.mkdir(exist_ok=True)
    ctx = fake_context(tmp_path, SCENARIO, iot)
    ctx.reconcile.plan = plan
    for step in ctx.scenario.steps:
        await KINDS[step.kind].run(ctx, step)
    return ctx


async def test_a_second_run_reuses_everything_and_journals_nothing(tmp_path: Path) -> None:
    iot = FakeIot()
    first = (await _run(tmp_path / "1", iot)).reconcile
    assert first.summary()["created"] == {
        "policy": 1, "policy_attachment": 1, "thing": 2, "thing_group": 1,
        "thing_group_membership": 2}
    iot.calls.clear()
    ctx = await _run(tmp_path / "2", iot)
    assert [op for op in iot.ops() if not READ_ONLY.match(op)] == []
    assert ctx.reconcile.summary()["created"] == {}
    assert ctx.reconcile.summary()["reused"] == {
        "policy": 1, "policy_attachment": 1, "thing": 2, "thing_group": 1,
        "thing_group_membership": 2}
    assert ctx.reconcile.drift == []
    assert journal_kinds(ctx) == []  # what it reused belongs to the first run


async def test_drift_is_reported_item_by_item_and_fixed(tmp_path: Path) -> None:
    iot = FakeIot()
    await _run(tmp_path / "1", iot)
    iot.things["dev-1"]["attributes"] = {}  # by hand: attribute removed,
    iot.policies["p"] = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}'
    iot.attached[iot._arn("thinggroup", "g")] = []  # the group's policy detached
    iot.calls.clear()
    ctx = await _run(tmp_path / "2", iot)
    ledger = ctx.reconcile
    assert sorted(str(d) for d in ledger.drift) == [
        "policy p: default version document differs",
        "policy_attachment p: not attached to thing group g",
        "thing dev-1: attribute type is missing (want ws)"]
    assert all(d.fixed for d in ledger.drift)
    assert iot.things["dev-1"]["attributes"] == {"type": "ws"}
    assert json.loads(iot.policies["p"]) == {"Version": "2012-10-17", "Statement": []}
    assert iot.attached[iot._arn("thinggroup", "g")] == ["p"]
    assert ledger.summary()["created"] == {}
    # what clean-up must undo to leave the resources as it found them is journaled; the
    # attribute fix needs no undo
    assert sorted(journal_kinds(ctx)) == ["policy_attachment", "policy_version"]


async def test_planning_changes_nothing(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = await _run(tmp_path, iot, plan=True)
    ledger = ctx.reconcile
    assert journal_kinds(ctx) == []
    assert [op for op in iot.ops() if not READ_ONLY.match(op)] == []
    assert not iot.things and not iot.policies and not iot.groups
    assert ledger.summary()["created"] == {
        "policy": 1, "policy_attachment": 1, "thing": 2, "thing_group": 1,
        "thing_group_membership": 2}
    assert ledger.drift == []


async def test_planning_certificates_and_their_attachments(tmp_path: Path) -> None:
    iot = FakeIot()
    ctx = fake_context(tmp_path, """
        name: t
        fleets: [{name: f, prefix: dev, count: 3}]
        steps:
          - provision: {fleet: f, policy: p}
          - update_things: {fleet: f, attributes: {room: "{index}"}}
        """, iot)
    ctx.reconcile.plan = True
    for step in ctx.scenario.steps:
        await KINDS[step.kind].run(ctx, step)
    assert [op for op in iot.ops() if not READ_ONLY.match(op)] == []
    assert ctx.reconcile.summary()["created"] == {
        "certificate": 3, "policy_attachment": 3, "thing": 3, "thing_principal": 3}
    assert journal_kinds(ctx) == []


def test_planning_labs_a_later_lab_is_told_who_creates_what_it_declares_again() -> None:
    made_by: dict[tuple[str, str], str] = {}
    first = Ledger(plan=True, lab="lab 01 (A)", made_by=made_by)
    second = Ledger(plan=True, lab="lab 02 (B)", made_by=made_by)
    first.create("thing_group", "g")
    first.create("thing_group", "g")  # the same lab twice: its own create
    second.create("thing_group", "g")
    second.create("thing_group", "h")
    assert first.created["thing_group"].count == 2
    assert second.created["thing_group"].names == ["h"]
    assert second.earlier["lab 01 (A)"]["thing_group"].names == ["g"]
    assert "removed" not in second.earlier and second.removed["thing_group"].count == 1
    assert second.planned("thing_group") and not second.planned("policy")
    text = render_plan(second, cleanup=True, title="Lab 02: B")
    assert text.splitlines()[0] == "Lab 02: B"
    assert re.search(r"created by lab 01 \(A\)\s+thing_group\s+1\s+g$", text, re.M)


def test_a_run_or_a_single_plan_counts_every_create() -> None:
    for ledger in (Ledger(), Ledger(plan=True)):
        ledger.create("thing", "t")
        ledger.create("thing", "t")
        assert ledger.created["thing"].count == 2 and not ledger.earlier


def test_planning_labs_a_setting_an_earlier_lab_makes_is_that_labs() -> None:
    settings: dict[str, dict[str, tuple[object, str]]] = {}
    first = Ledger(plan=True, lab="lab 01 (A)", settings=settings)
    second = Ledger(plan=True, lab="lab 02 (B)", settings=settings)
    assert first.set_earlier("events", {"JOB": True, "THING": True}) == {}
    assert second.set_earlier("events", {"JOB": True, "THING": False}) == {"JOB": "lab 01 (A)"}
    assert settings["events"] == {"JOB": (True, "lab 01 (A)"), "THING": (False, "lab 02 (B)")}
    assert Ledger(plan=True).set_earlier("events", {"JOB": True}) == {}  # one scenario
