"""The plan of a distributed run (fleetsim run --ray), without Ray: how shards split a global
rate, which steps are per-device, how their figures and journals come together."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.control.journal import Journal, read_entries, settle, shard_dir
from fleetsim.distributed.driver import step_verdict
from fleetsim.distributed.worker import StepReport
from fleetsim.engine.fanout import pacer_for
from fleetsim.engine.pacing import Pacer, RateCurve
from fleetsim.engine.steps import load_scenario
from fleetsim.metrics.recorder import Metrics, merge
from fleetsim.scenario.model import Pacing


def schedule_until(pacer: Pacer, horizon: float) -> list[float]:
    """Seconds since the first start at which starts are due up to `horizon` (none late)."""
    times: list[float] = []
    while not times or times[-1] <= horizon:
        times.append(pacer._reserve(0.0))
    return times[:-1]


def shards_together(curve: RateCurve, n: int, horizon: float) -> list[float]:
    return sorted(t for k in range(1, n + 1)
                  for t in schedule_until(Pacer(curve, share=(k, n)), horizon))


@settings(deadline=None, max_examples=60)
@given(rate=st.floats(1, 2000), n=st.integers(1, 16))
def test_shards_of_a_constant_rate_start_when_one_process_would(rate: float, n: int) -> None:
    """`rate: 1000/s` is 1,000/s across all shards: each takes every N-th start of the
    schedule, so together they start exactly when one process would, interleaved."""
    curve = RateCurve(rate)
    single = schedule_until(Pacer(curve), 2.0)
    assert shards_together(curve, n, 2.0) == pytest.approx(single, abs=1e-9)
    if n > 1:  # each shard paces at rate/N
        second = Pacer(curve, share=(2, n))
        first, then = second._reserve(0.0), second._reserve(0.0)
        assert (first, then - first) == pytest.approx((1 / rate, n / rate))


@settings(deadline=None, max_examples=60)
@given(start=st.floats(1, 100), end=st.floats(1, 500), over=st.floats(0.5, 4),
       n=st.integers(2, 8), profile=st.sampled_from(["linear", "step"]))
def test_shards_of_a_ramp_start_when_one_process_would(start: float, end: float,
                                                       over: float, n: int,
                                                       profile: str) -> None:
    curve = RateCurve(start, end, over, profile)
    single = schedule_until(Pacer(curve), over * 1.5)
    assert shards_together(curve, n, over * 1.5) == pytest.approx(single, abs=1e-9)


def test_pacer_of_a_step_splits_its_rate_by_share() -> None:
    pacer = pacer_for(Pacing(rate=100, tick=0), (3, 4))
    assert schedule_until(pacer, 0.1) == pytest.approx([0.02, 0.06, 0.10])
    alone = pacer_for(Pacing(rate=100, tick=0))
    assert schedule_until(alone, 0.02) == pytest.approx([0, 0.01, 0.02])
    ticked = pacer_for(Pacing(rate=100), (3, 4))  # the default tick: 50 ms
    assert schedule_until(ticked, 0.1) == pytest.approx([0.05, 0.10, 0.10])


def test_a_shard_late_to_the_shared_origin_starts_what_was_due_then_keeps_the_schedule(
        ) -> None:
    """Shard 2 of 2 at 10/s reaches the step's origin 1 s late: the starts of its share due
    meanwhile (0.1, 0.3, ... 0.9 s) go at once, then it keeps the one schedule, and so after
    its process was busy for a while; a shard without a shared origin counts from its own
    first start."""
    late = Pacer(RateCurve(10), share=(2, 2), origin=time.time() - 1.0)
    dues = [late._reserve(1.0) for _ in range(5)] + [late._reserve(1.2) for _ in range(3)]
    assert dues == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5])
    assert [late._reserve(2.0) for _ in range(3)] == pytest.approx([1.7, 1.9, 2.1])
    alone = Pacer(RateCurve(10), share=(2, 2))
    assert [alone._reserve(1.0) for _ in range(3)] == pytest.approx([1.0, 1.2, 1.4])


def test_unpaced_steps_stay_unpaced_on_every_shard() -> None:
    pacer = Pacer(RateCurve(0), share=(2, 3))
    assert [pacer._reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert pacer_for(None, (2, 3)).curve is None


SCENARIO = """\
name: plan
fleets: [{name: d, prefix: p, count: 4}]
steps:
  - create_policy: {policy: one, document: {Version: "2012-10-17", Statement: []}}
  - create_policy: {fleet: d, policy: "{thing_name}-p", document: "{}"}
  - create_policy: {fleet: d, policy: fleet-wide, document: "{}"}
  - observe: {topics: ["#"]}
  - create_things: d
  - connect: d
  - wait: 1s
  - expect: {things: [{fleet: d}]}
  - disconnect: d
"""


def test_steps_through_devices_run_on_the_shards_the_rest_once(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    assert [s.per_device() for s in scenario.steps] == [
        False, True, False, False, True, True, False, False, True]
    assert scenario.on_worker_loss == "fail"


def test_on_worker_loss_must_be_fail_or_continue(tmp_path: Path) -> None:
    from fleetsim.errors import ScenarioInvalid

    path = tmp_path / "plan.yaml"
    path.write_text(SCENARIO.replace("steps:", "on_worker_loss: retry\nsteps:"))
    with pytest.raises(ScenarioInvalid) as e:
        load_scenario(path)
    assert "on_worker_loss" in str(e.value.problems)


def test_a_merge_read_back_as_metrics_gives_the_same_snapshot() -> None:
    clock = [1000.0]
    a, b = Metrics(clock=lambda: clock[0]), Metrics(clock=lambda: clock[0])
    with a.step("1.connect"):
        a.record("mqtt.connect", 900)
        a.error("timeout", "mqtt.connect")
    with b.step("1.connect") as record:
        b.record("mqtt.connect", 1200)
        record.status, record.detail = "partial", "1 device(s) failed"
    a.gauge("devices.connected", 3)
    b.incr("messages", 5)
    a.check("thing exists", True)
    merged = merge([a.snapshot(), b.snapshot()])
    assert Metrics.from_snapshot(merged).snapshot() == merged
    # A shard's partial step outranks another's ok one: the merge keeps the worst.
    assert merged["steps"][0]["status"] == "partial"
    assert merged["gauges"] == {"devices.connected": 3}


def test_cleanup_reads_the_journals_of_every_shard(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    driver = Journal(run_dir, {"run_id": "r1"})
    driver.record("policy", name="shared")
    for k in (1, 2, 10):
        shard = Journal(shard_dir(run_dir, k), {"run_id": "r1", "shard": k})
        shard.record("thing", name=f"t{k}")
        shard.record("thing", name=f"gone{k}")
        shard.void("thing", name=f"gone{k}")
        shard.close()
    driver.close()
    (shard_dir(run_dir, 2) / "journal.jsonl").open("a").write('{"kind": "thing", "na')  # torn
    things = [e.data["name"] for e in settle(read_entries(run_dir)) if e.kind == "thing"]
    assert things == ["t1", "t2", "t10"]
    assert json.loads((run_dir / "journal.jsonl").read_text().splitlines()[1])["name"] == \
        "shared"


@pytest.mark.parametrize(("args", "says"), [
    (["--workers", "2"], "add --ray"),
    (["--ray", "--workers", "2", "--shard", "1/2"], "give one of them"),
])
def test_ray_options_that_do_not_go_together_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    from fleetsim.cli import main

    path = tmp_path / "plan.yaml"
    path.write_text(SCENARIO)
    assert main(["run", str(path), "--state-dir", str(tmp_path / "state"), *args]) != 0
    assert says in capsys.readouterr().err


def report(status: str, failed: int = 0) -> StepReport:
    return StepReport(status, "", {"d": [(i, "timeout") for i in range(failed)]} if failed
                      else {})


@pytest.mark.parametrize(("statuses", "lost", "on_loss", "verdict"), [
    (["ok", "ok"], False, "fail", ("ok", [])),
    (["ok", "partial"], False, "fail", ("partial", [])),
    # All of shard 2's devices failed, shard 1's did not: one process would say partial.
    (["ok", "failed"], False, "fail", ("partial", [2])),
    (["failed", "failed"], False, "fail", ("failed", [])),
    (["ok"], True, "continue", ("partial", [])),
    (["ok"], True, "fail", ("failed", [])),
    ([], True, "continue", ("failed", [])),
])
def test_a_step_across_shards_fails_only_if_no_device_succeeded(
        statuses: list[str], lost: bool, on_loss: str, verdict: tuple[str, list[int]]) -> None:
    reports = {k: report(s, failed=3 if s == "failed" else 0)
               for k, s in enumerate(statuses, start=1)}
    assert step_verdict(reports, lost, on_loss) == verdict
