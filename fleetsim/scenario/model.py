"""The scenario file format (v1), as pydantic models. Unknown keys are errors."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

if TYPE_CHECKING:
    from fleetsim.scenario.semantics import Loc, Problem, Scope

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """`2`, `2.5`, `"500ms"`, `"10s"`, `"5m"` → seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration; write e.g. 10s, 500ms or 2m")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, Field(ge=0)]
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)\s*$")


def parse_rate(value: Any) -> float:
    """`200/s`, `30/m`, `1/5s` (one per five seconds), or a number (per second) → per second."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        rate = float(value)
    else:
        m = _RATE.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a rate; write e.g. 200/s, 30/m or 1/5s")
        per = float(m.group(2) or 1) * _UNITS[m.group(3)]
        rate = float(m.group(1)) / per
    if rate <= 0:
        raise ValueError("a rate must be more than zero")
    return rate


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceTlsOptions(Strict):
    # How devices do TLS: pyOpenSSL with each device's key and certificate decoded once
    # (openssl, fleetsim/device/tls_openssl.py: half the CPU per connect of Python's ssl, ~5
    # KB more per device, `python -m bench peer`), or Python's ssl (stdlib).
    tls_backend: Literal["stdlib", "openssl"] = "openssl"


class AwsTarget(DeviceTlsOptions):
    kind: Literal["aws"]
    region: str | None = None
    profile: str | None = None
    port: Literal[8883, 443] = 8883
    # AWS IoT Core quotas fleetsim keeps to: connect requests per second per account (100 is
    # the smallest regional default; some regions allow 500, and it can be raised) and
    # publishes per second per connection (100).
    connects_per_second: float = Field(default=100, gt=0)
    publishes_per_second_per_connection: float = Field(default=100, gt=0)


class LocalTarget(DeviceTlsOptions):
    kind: Literal["local"] = "local"


class Ramp(Strict):
    """Start rate ramped from `start` to `end` over `over`, smoothly or in `steps` plateaus."""

    start: float
    end: float
    over: Duration
    profile: Literal["linear", "step"] = "linear"
    steps: int = Field(default=4, ge=1)

    _rates = field_validator("start", "end", mode="before")(parse_rate)
    _duration = field_validator("over", mode="before")(parse_duration)


class Pacing(Strict):
    """How fast a step goes through a fleet's devices."""

    rate: float | None = None  # device starts per second
    ramp: Ramp | None = None
    concurrency: int | None = Field(default=None, ge=1)
    jitter: Duration = 0.0  # each start is delayed by a random 0..jitter
    # Starts that fall due within one tick go together at its end (engine/pacing.py); 0:
    # every start at its own time.
    tick: Duration = Field(default=0.05, ge=0, le=1)

    _rate = field_validator("rate", mode="before")(parse_rate)
    _duration = field_validator("jitter", "tick", mode="before")(parse_duration)

    @model_validator(mode="after")
    def _one_rate(self) -> Pacing:
        if self.rate is not None and self.ramp is not None:
            raise ValueError("give either 'rate' or 'ramp', not both")
        return self


class Fleet(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    prefix: str = Field(pattern=r"^[A-Za-z0-9:_-]+$")
    count: int = Field(default=1, ge=1, le=1_000_000)
    key_type: Literal["ec-p256", "rsa-2048"] = "ec-p256"
    # How thing names are made; must contain {index} when the fleet has more than one device.
    thing_name: str = "{prefix}-{index}"
    # persistent: keys, certificates and registry entries outlive the run and are reused by
    # the next one (removed by `fleetsim cleanup`); ephemeral: removed at the end of the run.
    identities: Literal["ephemeral", "persistent"] = "ephemeral"
    # The MQTT version the devices speak; mqtt5 adds reason codes (counted as error kinds such
    # as puback_not_authorized), a session expiry and topic aliases for telemetry.
    protocol: Literal["mqtt3.1.1", "mqtt5"] = "mqtt3.1.1"
    # MQTT 5: seconds the broker keeps a device's session after it disconnects (0: none).
    session_expiry: int = Field(default=0, ge=0, le=604_800)


# ---- steps: the common part; each step kind is a module of fleetsim/engine/steps ----------


class StepBase(Strict):
    """What every step kind has. A kind subclasses this (or `FleetStep`) with
    `kind: Literal["<kind>"]` and says, as class variables and `check`, what `fleetsim
    validate` needs to know about it."""

    kind: str
    name: str | None = None  # shown in the summary; defaults to the kind

    # The field a scalar fills: `- wait: 2s` is `{kind: wait, seconds: 2s}`.
    scalar_field: ClassVar[str | None] = None
    # The step's fleet must have been connected by an earlier `connect` step.
    needs_connection: ClassVar[bool] = False

    def check(self, scope: Scope, at: Loc) -> list[Problem]:
        """Problems only the whole scenario shows (templates, references to earlier steps);
        may note in `scope` what this step makes true for the steps after it."""
        return []

    def per_device(self) -> bool:
        """Whether the step goes through a fleet's devices (so that each process of a
        distributed run does its slice of them), rather than once for the whole run (then
        the driver of a distributed run does it, once)."""
        return False


class FleetStep(StepBase):
    """A step that goes through a fleet's devices."""

    fleet: str
    pacing: Pacing | None = None

    def per_device(self) -> bool:
        return True


def target_shorthand(value: Any) -> Any:
    """`target: local` / `target: aws` for `{kind: local}` / `{kind: aws}`."""
    if value in ("local", "aws"):
        return {"kind": value}
    return value


class Scenario(Strict):
    name: str
    description: str | None = None
    target: LocalTarget | AwsTarget = Field(default_factory=LocalTarget, discriminator="kind")
    cleanup: bool = True  # remove what the run created once it ends (fleetsim run --keep)
    # A distributed run (fleetsim run --ray) whose worker dies: stop, or go on without it.
    on_worker_loss: Literal["fail", "continue"] = "fail"
    fleets: list[Fleet] = Field(default_factory=list)
    # Validated as the union of the registered step kinds: see `scenario_model`.
    steps: list[StepBase] = Field(min_length=1)

    _target = field_validator("target", mode="before")(target_shorthand)

    def fleet(self, name: str) -> Fleet:
        return next(f for f in self.fleets if f.name == name)


# ---- one scenario model per set of step kinds ----------------------------------------------


class StepShapeError(ValueError):
    pass


# The step models by kind (`fleetsim.engine.steps.STEP_MODELS` imports a kind's module when
# its model is asked for: a scenario is validated with its own kinds only).
StepModels = Mapping[str, type[StepBase]]


def kind_of(model: type[StepBase]) -> str:
    """The kind a step model is written as: the one value of its `kind` Literal."""
    return model.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]


def unwrap_step(raw: Any, by_kind: StepModels) -> dict[str, Any]:
    """`{create_things: {fleet: a}}` → `{kind: create_things, fleet: a}`."""
    known = ", ".join(sorted(by_kind))
    if not isinstance(raw, dict) or len(raw) != 1:
        raise StepShapeError("each step is a mapping with exactly one key, the step kind (one of "
                             + known + ")")
    ((kind, body),) = raw.items()
    if kind not in by_kind:
        raise StepShapeError(f"unknown step {kind!r}; known steps: {known}")
    if body is None:
        body = {}
    elif not isinstance(body, dict):
        field = by_kind[kind].scalar_field
        if field is None:
            raise StepShapeError(f"step {kind!r} takes a mapping of options")
        body = {field: body}
    return {"kind": kind, **body}


@cache
def scenario_model(models: tuple[type[StepBase], ...]) -> type[Scenario]:
    """`Scenario` whose steps are validated as the discriminated union of `models` (errors
    located as `steps.<i>.<kind>.<field>`)."""
    union: Any = Union[tuple(models)]  # noqa: UP007 (a union built at run time)
    step = Annotated[union, Field(discriminator="kind")]
    return create_model("Scenario", __base__=Scenario,
                        steps=(list[step], Field(min_length=1)))


def step_models(models: Iterable[type[StepBase]]) -> tuple[type[StepBase], ...]:
    """`models` once each, in the order of their kinds (`scenario_model`'s cache key)."""
    return tuple(sorted(set(models), key=kind_of))
