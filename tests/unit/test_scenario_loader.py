"""Scenario files: every problem reported as FILE:LINE:COL, valid files loaded whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetsim.engine.steps import load_scenario
from fleetsim.errors import ScenarioInvalid
from fleetsim.scenario.model import AwsTarget, LocalTarget, parse_duration, parse_rate

ROOT = Path(__file__).resolve().parents[2]


def problems(tmp_path: Path, text: str, devices: int | None = None) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path, devices=devices)
    prefix = f"{path}:"
    assert all(p.startswith(prefix) for p in caught.value.problems)
    return [p[len(prefix):] for p in caught.value.problems]


@pytest.mark.parametrize("name", ["api-provisioning.yaml", "load-telemetry.yaml",
                                  "shadows.yaml"])
def test_shipped_scenarios_are_valid(name: str) -> None:
    scenario = load_scenario(ROOT / "scenarios" / name)
    assert scenario.steps


def test_target_shorthands() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "api-provisioning.yaml")
    assert isinstance(scenario.target, LocalTarget)


def test_aws_target(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ntarget: {kind: aws, region: eu-west-1, port: 443}\n"
                    "steps: [{wait: 1s}]\n")
    target = load_scenario(path).target
    assert isinstance(target, AwsTarget) and target.port == 443


def test_device_tls_backend(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ntarget: {kind: local, tls_backend: stdlib}\nsteps: [{wait: 1s}]\n")
    assert load_scenario(path).target.tls_backend == "stdlib"
    assert load_scenario(ROOT / "scenarios" / "api-provisioning.yaml").target.tls_backend == \
        "openssl"  # the default
    [problem] = problems(tmp_path, "name: x\ntarget: {kind: aws, tls_backend: gnutls}\n"
                                   "steps: [{wait: 1s}]\n")
    assert "tls_backend" in problem and "'stdlib' or 'openssl'" in problem


def test_not_yaml(tmp_path: Path) -> None:
    assert problems(tmp_path, "name: [unclosed\n") == [
        "2:1: not valid YAML: expected ',' or ']', but got '<stream end>'"]


def test_duplicate_and_unknown_keys(tmp_path: Path) -> None:
    out = problems(tmp_path, "name: a\nname: b\ncolour: red\nsteps: [{wait: 1}]\n")
    assert out == ["2:1: name: key 'name' is written twice",
                   "3:1: colour: unknown key 'colour'"]


def test_missing_key_points_at_its_mapping(tmp_path: Path) -> None:
    out = problems(tmp_path, "name: a\nfleets:\n  - {name: f}\nsteps: [{wait: 1}]\n")
    assert out == ["3:5: fleets[0]: missing required key 'prefix'"]


def test_step_shape_errors_keep_indices(tmp_path: Path) -> None:
    out = problems(tmp_path, "name: a\nsteps:\n  - frob: 1\n  - wait: x\n  - {a: 1, b: 2}\n")
    assert out[0].startswith("3:5: steps[0]: unknown step 'frob'; known steps: ")
    assert out[1].startswith("4:11: steps[1].wait.seconds: 'x' is not a duration")
    assert out[2].startswith("5:5: steps[2]: each step is a mapping with exactly one key")


def test_devices_override_needs_index_in_names(tmp_path: Path) -> None:
    text = "name: a\nfleets:\n  - {name: f, prefix: p, thing_name: '{prefix}'}\n" \
           "steps: [{create_things: f}]\n"
    assert problems(tmp_path, text, devices=3) == [
        "3:38: fleets[0].thing_name: fleet 'f' has 3 devices, so its thing_name must contain "
        "{index} to give each a unique name"]


def test_steps_out_of_order(tmp_path: Path) -> None:
    text = ("name: a\nfleets: [{name: f, prefix: p}]\nsteps:\n"
            "  - telemetry: {fleet: f, topic: t, payload: {}}\n"
            "  - expect: {messages: [{topic: t}]}\n")
    out = problems(tmp_path, text)
    assert out == ["4:24: steps[0].telemetry.fleet: fleet 'f' is not connected yet: add a "
                   "'connect' step before this one",
                   "5:25: steps[1].expect.messages[0]: expecting messages needs an 'observe' "
                   "step before"]


def test_pacing_rate_or_ramp(tmp_path: Path) -> None:
    text = ("name: a\nfleets: [{name: f, prefix: p}]\nsteps:\n"
            "  - create_things: {fleet: f, pacing: {rate: 5/s, ramp: {start: 1, end: 2, "
            "over: 1s}}}\n")
    assert problems(tmp_path, text) == [
        "4:39: steps[0].create_things.pacing: give either 'rate' or 'ramp', not both"]


def test_a_pacing_tick_is_a_duration_up_to_a_second(tmp_path: Path) -> None:
    text = ("name: a\nfleets: [{name: f, prefix: p}]\nsteps:\n"
            "  - create_things: {fleet: f, pacing: {rate: 5/s, tick: 2s}}\n")
    out = problems(tmp_path, text)
    assert len(out) == 1 and "steps[0].create_things.pacing.tick" in out[0]
    assert "less than or equal to 1" in out[0]


@pytest.mark.parametrize(("text", "seconds"), [(2, 2.0), ("500ms", 0.5), ("2m", 120.0),
                                               ("1.5s", 1.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "per_second"), [("200/s", 200.0), ("30/m", 0.5),
                                                  ("1/5s", 0.2), (4, 4.0)])
def test_rates(text: object, per_second: float) -> None:
    assert parse_rate(text) == per_second


@pytest.mark.parametrize("bad", ["fast", "0/s", "-1"])
def test_bad_rates(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(bad)


def test_shadow_steps_are_checked(tmp_path: Path) -> None:
    text = ("name: a\nfleets: [{name: s, prefix: p}]\nsteps:\n"
            "  - connect: s\n"
            "  - shadow_desired: {fleet: s, desired: {a: '{bogus}'}}\n"
            "  - shadow: {fleet: s, named: cfg, report: {b: '{index}'}}\n"
            "  - shadow_desired: {fleet: s, named: cfg, desired: {b: 1}}\n"
            "  - expect: {shadows: [{fleet: nope}]}\n")
    assert problems(tmp_path, text) == [
        "5:21: steps[1].shadow_desired.wait: waiting for convergence needs a 'shadow' step "
        "(classic) for fleet 's' before this one, or 'wait: false'",
        "5:41: steps[1].shadow_desired.desired: unknown placeholder {bogus}; known names: "
        "client_id, date, fleet, index, now, prefix, thing_name, timestamp, timestamp_ms; "
        "functions: choice(option, ...), rand_float(low, high[, digits]), rand_int(low, high)",
        "8:32: steps[4].expect.shadows[0].fleet: no fleet named 'nope' (fleets: s)"]


def test_shadow_needs_a_connection_and_a_valid_name(tmp_path: Path) -> None:
    text = ("name: a\nfleets: [{name: s, prefix: p}]\nsteps:\n"
            "  - shadow: s\n  - shadow: {fleet: s, named: 'a b'}\n")
    out = problems(tmp_path, text)
    assert out == ["5:31: steps[1].shadow.named: String should match pattern "
                   "'^[a-zA-Z0-9:_-]{1,64}$'"]
    assert problems(tmp_path, text.replace("named: 'a b'", "named: ab")) == [
        "4:13: steps[0].shadow.fleet: fleet 's' is not connected yet: add a 'connect' step "
        "before this one",
        "5:21: steps[1].shadow.fleet: fleet 's' is not connected yet: add a 'connect' step "
        "before this one"]
