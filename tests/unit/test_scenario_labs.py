"""Scenarios made of labs (`labs:` with `include:`): loading, and every problem reported at
FILE:LINE:COL of the file it is in (the included file's own positions; the `include:` line
for a missing file, a cycle or two labs making the same things)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleetsim.engine.labs import load_run
from fleetsim.errors import ScenarioInvalid
from fleetsim.scenario.labs import Labs
from tests.conftest import ROOT

LAB = """\
name: {name}
fleets:
  - {{name: f, prefix: {prefix}, count: 2}}
steps:
  - create_things: f
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioInvalid) as e:
        load_run(path)
    return e.value.problems


def test_workshop_is_every_lab_in_the_workshops_order() -> None:
    labs = load_run(ROOT / "scenarios" / "workshop.yaml")
    assert isinstance(labs, Labs)
    assert [lab.name for lab in labs.labs] == [
        "Enable Logging", "Registry Events + Device Provisioning with the API",
        "Single Device Provisioning", "Bulk Device Provisioning", "JITP", "JITR", "IoT Jobs",
        "Fleet Indexing", "Thing Groups + Fine-Grained Logging"]
    assert [Path(lab.file).name for lab in labs.labs][:3] == [
        "enable-logging.yaml", "api-provisioning.yaml", "single-provisioning.yaml"]
    # the logging searches need Enable Logging: a failure there stops the run
    assert labs.labs[0].on_failure == "stop"
    assert all(lab.on_failure == "continue" for lab in labs.labs[1:-1])


def test_labs_run_included_scenarios_in_order(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", LAB.format(name="one", prefix="a"))
    write(tmp_path / "sub" / "two.yaml", LAB.format(name="two", prefix="b"))
    top = write(tmp_path / "top.yaml", """\
        name: top
        labs:
          - {name: First, include: one.yaml}
          - {name: Second, include: sub/two.yaml, on_failure: continue}
        """)
    labs = load_run(top)
    assert isinstance(labs, Labs)
    assert [(lab.name, lab.scenario.name, lab.on_failure) for lab in labs.labs] == [
        ("First", "one", "stop"), ("Second", "two", "continue")]
    assert labs.cleanup is True and labs.target.kind == "local"
    assert len(labs.steps) == 2 and len(labs.fleets) == 2


def test_a_missing_include_is_reported_at_its_include_line(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", LAB.format(name="one", prefix="a"))
    top = write(tmp_path / "top.yaml", """\
        name: top
        labs:
          - {name: First, include: one.yaml}
          - name: Second
            include: nowhere/two.yaml
        """)
    assert problems(top) == [
        f"{top}:5:14: labs[1].include: nowhere/two.yaml is not a readable file (looked for "
        f"{tmp_path / 'nowhere' / 'two.yaml'})"]


def test_an_error_inside_an_included_file_is_at_its_own_position(tmp_path: Path) -> None:
    bad = write(tmp_path / "labs" / "bad.yaml", """\
        name: bad
        fleets:
          - {name: f, prefix: p}
        steps:
          - create_things: g
          - wait: soon
        """)
    write(tmp_path / "one.yaml", LAB.format(name="one", prefix="a"))
    top = write(tmp_path / "top.yaml", """\
        name: top
        labs:
          - {name: First, include: one.yaml}
          - {name: Bad, include: labs/bad.yaml}
        """)
    assert problems(top) == [
        f"{bad}:6:11: steps[1].wait.seconds: 'soon' is not a duration; write e.g. 10s, 500ms "
        "or 2m"]
    bad.write_text(bad.read_text().replace("  - wait: soon\n", ""))
    assert problems(top) == [
        f"{bad}:5:20: steps[0].create_things.fleet: no fleet named 'g' (fleets: f)"]


def test_an_include_cycle_is_refused_at_the_include_that_closes_it(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "name: a\nlabs:\n  - {name: B, include: b.yaml}\n")
    b = write(tmp_path / "b.yaml", "name: b\nlabs:\n  - {name: A, include: a.yaml}\n")
    assert problems(a) == [
        f"{b}:3:24: labs[0].include: a.yaml includes this file again (a.yaml -> b.yaml -> "
        "a.yaml): a lab cannot include the labs it is part of"]
    me = write(tmp_path / "me.yaml", "name: me\nlabs:\n  - {name: Me, include: ./me.yaml}\n")
    assert problems(me)[0].startswith(f"{me}:3:25: labs[0].include: ./me.yaml includes this "
                                      "file again (me.yaml -> me.yaml)")


def test_included_labs_are_played_in_place_with_their_names(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", LAB.format(name="one", prefix="a"))
    write(tmp_path / "two.yaml", LAB.format(name="two", prefix="b"))
    write(tmp_path / "pair.yaml", """\
        name: pair
        labs:
          - {name: One, include: one.yaml}
          - {name: Two, include: two.yaml}
        """)
    write(tmp_path / "three.yaml", LAB.format(name="three", prefix="c"))
    top = write(tmp_path / "top.yaml", """\
        name: top
        labs:
          - {name: Pair, include: pair.yaml}
          - {name: Three, include: three.yaml}
        """)
    labs = load_run(top)
    assert isinstance(labs, Labs)
    assert [lab.name for lab in labs.labs] == ["Pair: One", "Pair: Two", "Three"]


def test_two_labs_making_the_same_things_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "bulk.yaml", LAB.format(name="bulk", prefix="bulky"))
    write(tmp_path / "index.yaml", LAB.format(name="index", prefix="bulky"))
    top = write(tmp_path / "top.yaml", """\
        name: top
        labs:
          - {name: Bulk, include: bulk.yaml}
          - {name: Indexing, include: index.yaml}
        """)
    assert problems(top) == [
        f"{top}:4:31: labs[1].include: fleet 'f' of lab 'Indexing' makes thing(s) bulky-0, "
        "bulky-1 that lab 'Bulk' (fleet 'f') makes too; give one of the fleets another prefix"]


def test_two_labs_registering_the_same_ca_are_refused(tmp_path: Path) -> None:
    ca_lab = """\
        name: {name}
        steps:
          - register_ca: {{ca: ca, template: t.json}}
        """
    (tmp_path / "t.json").write_text("{}")
    write(tmp_path / "p.yaml", ca_lab.format(name="p"))
    write(tmp_path / "r.yaml", ca_lab.format(name="r"))
    top = write(tmp_path / "top.yaml", """\
        name: top
        labs:
          - {name: JITP, include: p.yaml}
          - {name: JITR, include: r.yaml}
        """)
    assert problems(top) == [
        f"{top}:4:27: labs[1].include: lab 'JITR' registers the CA in {tmp_path / 'ca'} that "
        "lab 'JITP' registers too (one CA registered twice makes AWS IoT refuse its devices: "
        "CertificateConflictException); give it a CA folder of its own"]


def test_the_labs_file_itself_is_checked(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", LAB.format(name="one", prefix="a"))
    top = write(tmp_path / "top.yaml", """\
        name: top
        labs:
          - {name: One, include: one.yaml, after: x}
          - {name: One, include: one.yaml}
        steps:
          - wait: 1s
        """)
    assert problems(top) == [
        f"{top}:3:36: labs[0].after: unknown key 'after'",
        f"{top}:5:1: steps: a scenario has either 'labs' or 'fleets' and 'steps': move these "
        "into a file of their own and include it"]
    top.write_text("name: top\nlabs:\n  - {name: One, include: one.yaml}\n"
                   "  - {name: One, include: one.yaml}\n")
    assert f"{top}:4:12: labs[1].name: lab name 'One' is already used by labs[0]" in \
        problems(top)
    top.write_text("name: top\nlabs: []\n")
    assert problems(top) == [f"{top}:2:7: labs: List should have at least 1 item after "
                             "validation, not 0"]


def test_a_run_of_labs_passes_when_every_lab_asked_for_passed(tmp_path: Path) -> None:
    from fleetsim.engine.labs import LabOutcome, LabsRunResult
    from fleetsim.metrics.recorder import Metrics
    from fleetsim.metrics.report import render_labs
    from fleetsim.target import Target

    def result(*statuses: str, kept: bool = False) -> LabsRunResult:
        target = Target("local", "us-east-1", "127.0.0.1")
        r = LabsRunResult("r", "top", target, Metrics(), tmp_path, kept=kept)
        r.labs = [LabOutcome(f"L{i}", "f.yaml", 1, s, 1.0) for i, s in enumerate(statuses)]
        return r

    assert result("pass", "pass", "pass").passed
    assert not result("pass", "fail", "pass").passed
    assert not result("pass", "pass", "not_run").passed  # Clean Up asked for, not done
    assert result("pass", "pass", "not_run", kept=True).passed  # --keep: not asked for
    assert not result("fail", "not_run", "not_run", kept=True).passed
    table = render_labs([lab.as_json() for lab in result("pass", "fail", "not_run").labs])
    assert table.splitlines()[0] == "Labs (1/3 passed)"
    assert [line.split()[:3] for line in table.splitlines()[2:]] == [
        ["1", "L0", "PASS"], ["2", "L1", "FAIL"], ["3", "L2", "not"]]
    assert table.splitlines()[4].split()[3:5] == ["run", "-"]
