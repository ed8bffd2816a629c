"""`job_agent`: each connected device of a fleet runs the job agent behaviour
(fleetsim.device.behaviours.job_agent) until the fleet disconnects: the workshop's flow or the
notify-next / start-next flow, with the fleet's outcome mix, execution times, progress updates
and step timeout."""

from __future__ import annotations

import random
import zlib
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from fleetsim.device import DeviceError
from fleetsim.device.behaviours.job_agent import OUTCOMES, Flow, JobAgent, JobPlan, Outcome
from fleetsim.engine import devices as dev
from fleetsim.engine.context import Device, RunContext
from fleetsim.engine.fanout import for_each_device
from fleetsim.engine.steps.base import StepKind
from fleetsim.errors import UserError
from fleetsim.scenario.model import Duration, FleetStep, Strict, parse_duration

SUCCEED: Outcome = "succeed"


class ExecutionTime(Strict):
    """How long a device takes to run a job: `fixed` (`mean`), `uniform` (`min`..`max`),
    `normal` (`mean`, `stddev`, never below 0) or `exponential` (`mean`)."""

    distribution: Literal["fixed", "uniform", "normal", "exponential"] = "fixed"
    mean: Duration = 0.0
    min: Duration = 0.0
    max: Duration = 0.0
    stddev: Duration = 0.0

    _duration = field_validator("mean", "min", "max", "stddev", mode="before")(parse_duration)

    @model_validator(mode="after")
    def _ordered(self) -> ExecutionTime:
        if self.distribution == "uniform" and self.max < self.min:
            raise ValueError("a uniform execution time needs min <= max")
        return self

    def sample(self, rng: random.Random) -> float:
        if self.distribution == "uniform":
            return rng.uniform(self.min, self.max)
        if self.distribution == "normal":
            return max(0.0, rng.gauss(self.mean, self.stddev))
        if self.distribution == "exponential":
            return rng.expovariate(1 / self.mean) if self.mean > 0 else 0.0
        return self.mean


def _execution_time(value: object) -> object:
    """`2s` is shorthand for a fixed time."""
    if isinstance(value, str | int | float):
        return {"distribution": "fixed", "mean": value}
    return value


class JobAgentStep(FleetStep):
    kind: Literal["job_agent"]
    flow: Flow = "notify-next"
    # Shares of the fleet's devices per outcome (normalised; exact counts, shuffled by seed).
    outcomes: dict[Outcome, float] = Field(default_factory=lambda: {SUCCEED: 1.0})
    execution_time: ExecutionTime = Field(default_factory=ExecutionTime)
    progress: int = Field(default=0, ge=0, le=100)  # statusDetails updates per execution
    step_timeout: int | None = Field(default=None, ge=1, le=10080)  # stepTimeoutInMinutes
    poll: Duration = 15.0  # the workshop flow's GetPendingJobExecutions period (the lab's)
    timeout: Duration = 10.0  # for each answer of the Jobs service
    qos: Literal[0, 1] = 0
    seed: int = 0

    scalar_field: ClassVar[str | None] = "fleet"
    needs_connection: ClassVar[bool] = True
    _duration = field_validator("poll", "timeout", mode="before")(parse_duration)
    _time = field_validator("execution_time", mode="before")(_execution_time)

    @field_validator("outcomes")
    @classmethod
    def _shares(cls, value: dict[Outcome, float]) -> dict[Outcome, float]:
        if any(share < 0 for share in value.values()) or sum(value.values()) <= 0:
            raise ValueError(f"outcome shares must be >= 0 and not all 0 (outcomes: "
                             f"{', '.join(OUTCOMES)})")
        return value


def assign_outcomes(shares: dict[Outcome, float], n: int, seed: int) -> list[Outcome]:
    """One outcome per device: each outcome's share of `n` rounded by largest remainder (so
    the counts add up to `n` exactly), in an order shuffled by `seed`."""
    total = sum(shares.values())
    exact = {o: shares[o] / total * n for o in shares}
    counts = {o: int(v) for o, v in exact.items()}
    left = n - sum(counts.values())
    for o in sorted(exact, key=lambda o: (counts[o] - exact[o], OUTCOMES.index(o)))[:left]:
        counts[o] += 1
    out: list[Outcome] = [o for o in OUTCOMES if o in counts for _ in range(counts[o])]
    random.Random(seed).shuffle(out)
    return out


async def run(ctx: RunContext, step: JobAgentStep) -> None:
    devices = [d for d in ctx.fleet_devices(step.fleet) if d.session]
    fleet = ctx.devices[step.fleet]
    # By global index, so that the shards of a run (--shard) split one assignment.
    n = max([fleet[0].fleet.count if fleet else 0, *(d.index + 1 for d in fleet)])
    outcomes = assign_outcomes(step.outcomes, n, step.seed)

    def planner(d: Device) -> JobAgent:
        def plan(job_id: str) -> JobPlan:
            rng = random.Random(zlib.crc32(f"{step.seed}/{d.index}/{job_id}".encode()))
            return JobPlan(outcomes[d.index], step.execution_time.sample(rng), step.progress)

        assert d.session is not None
        return JobAgent(d.session, d.thing_name, ctx.metrics, plan, step.flow,
                        step.step_timeout, step.poll, step.timeout, step.qos)

    async def start(d: Device) -> None:
        if d.job_agent is not None:
            d.job_agent.close()
        agent = d.job_agent = planner(d)
        dev.listen(d, agent.on_message)
        try:
            await agent.start()
        except DeviceError as e:
            raise UserError(f"{d.thing_name}: the job agent could not subscribe to "
                            f"{agent.jobs.prefix}/... ({e})") from e

    await for_each_device(ctx, devices, start, step.pacing)


KIND = StepKind(JobAgentStep, run)
