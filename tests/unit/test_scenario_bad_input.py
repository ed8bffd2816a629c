"""Scenario files a user gets wrong, or that are hostile: one sentence each, at FILE:LINE:COL,
and bounded work (size, alias expansion, nesting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetsim.engine.steps import load_scenario
from fleetsim.errors import ScenarioInvalid
from fleetsim.scenario.loader import MAX_FILE_BYTES
from fleetsim.scenario.yaml_positions import MAX_DEPTH, MAX_NODES


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path)
    return caught.value.problems


def write(tmp_path: Path, data: str | bytes) -> Path:
    path = tmp_path / "s.yaml"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def test_a_file_that_is_not_utf8_is_named_at_1_1(tmp_path: Path) -> None:
    path = write(tmp_path, b"name: x\nsteps:\n  - wait: 1s  # caf\xe9\n")
    assert problems_of(path) == [
        f"{path}:1:1: the file is not UTF-8 text (byte 0xe9 at line 3, column 20); "
        "save it as UTF-8"]


def test_a_file_past_the_size_cap_is_refused_without_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsteps: [{wait: 1s}]\n" + "#" * MAX_FILE_BYTES + "\n")
    (problem,) = problems_of(path)
    assert problem == (f"{path}:1:1: the file is larger than {MAX_FILE_BYTES // 1024} KiB, "
                       "the most a scenario may be")


def test_a_nine_level_alias_bomb_is_refused_where_it_explodes(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[level]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path, "name: x\nsteps: [{wait: 1s}]\n" + "\n".join(lines) + "\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:")
    assert problem.endswith(f"refused: the document expands to more than {MAX_NODES:,} "
                            "values (through aliases or sheer size)")


def test_an_alias_inside_its_own_value_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsteps: &s [*s]\n")
    assert problems_of(path) == [
        f"{path}:2:12: refused: alias *s refers to a value that contains it"]


def test_nesting_past_the_cap_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsteps: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5))
    (problem,) = problems_of(path)
    assert problem.endswith(f"refused: values are nested more than {MAX_DEPTH} levels deep")


def test_aliases_within_the_cap_still_work(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsteps:\n  - wait: &w 1s\n  - wait: *w\n")
    assert len(load_scenario(path).steps) == 2


def test_an_unknown_step_is_the_only_problem_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nsteps:\n  - frob: 1\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:3:5: steps[0]: unknown step 'frob'; known steps: ")


def test_a_duplicate_fleet_name_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nfleets:\n  - {name: a, prefix: p}\n"
                           "  - {name: a, prefix: q}\nsteps: [{wait: 1s}]\n")
    assert problems_of(path) == [
        f"{path}:4:12: fleets[1].name: fleet name 'a' is already used by fleets[0]"]


@pytest.mark.parametrize(("payload", "message"), [
    ("{rand_int(9, 1)}", "placeholder {rand_int(9, 1)}: wrong arguments: rand_int(low, high) "
                         "its low 9 is above its high 1"),
    ("{index:xyz}", "placeholder {index:xyz}: 'xyz' is not a format for index (a number); "
                    "write e.g. {index:04d}"),
    ("{rand_int(1)}", "placeholder {rand_int(1)}: wrong arguments: rand_int(low, high) takes "
                      "two whole numbers"),
])
def test_placeholders_that_would_fail_at_run_time_fail_validation(
        tmp_path: Path, payload: str, message: str) -> None:
    path = write(tmp_path, "name: x\nfleets: [{name: a, prefix: p}]\nsteps:\n"
                           "  - connect: a\n"
                           f"  - publish: {{fleet: a, topic: t, payload: {{v: '{payload}'}}}}\n")
    (problem,) = problems_of(path)
    assert problem.endswith(message), problem
    assert "_rand_int" not in problem and "lo," not in problem  # internal names
