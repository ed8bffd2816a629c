"""The scenario file format (v1), as pydantic models. Unknown keys are errors."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EVENT_TYPES = (
    "THING", "THING_GROUP", "THING_TYPE", "THING_GROUP_MEMBERSHIP", "THING_GROUP_HIERARCHY",
    "THING_TYPE_ASSOCIATION", "JOB", "JOB_EXECUTION", "POLICY", "CERTIFICATE", "CA_CERTIFICATE",
)
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


class AwsTarget(Strict):
    kind: Literal["aws"]
    region: str | None = None
    profile: str | None = None
    port: Literal[8883, 443] = 8883
    # AWS IoT Core quotas fleetsim keeps to: connect requests per second per account (100 is
    # the smallest regional default; some regions allow 500, and it can be raised) and
    # publishes per second per connection (100).
    connects_per_second: float = Field(default=100, gt=0)
    publishes_per_second_per_connection: float = Field(default=100, gt=0)


class LocalTarget(Strict):
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

    _rate = field_validator("rate", mode="before")(parse_rate)
    _duration = field_validator("jitter", mode="before")(parse_duration)

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


# ---- steps ---------------------------------------------------------------------------------


class StepBase(Strict):
    kind: str
    name: str | None = None  # shown in the summary; defaults to the kind


class FleetStep(StepBase):
    fleet: str
    pacing: Pacing | None = None


class EventsStep(StepBase):
    """update-event-configurations: enable or disable registry event types."""

    kind: Literal["events"]
    enable: Literal["all"] | list[Literal[EVENT_TYPES]] = Field(default_factory=list)  # type: ignore[valid-type]
    disable: Literal["all"] | list[Literal[EVENT_TYPES]] = Field(default_factory=list)  # type: ignore[valid-type]


class ObserveStep(StepBase):
    """An observer client that subscribes to topic filters and records what arrives."""

    kind: Literal["observe"]
    topics: list[str] = Field(min_length=1)
    qos: Literal[0, 1] = 0


class CreateThingsStep(FleetStep):
    kind: Literal["create_things"]
    attributes: dict[str, str] = Field(default_factory=dict)
    thing_type: str | None = None


class CreateKeysAndCertificateStep(FleetStep):
    kind: Literal["create_keys_and_certificate"]
    set_as_active: bool = True


class CreateCertificateFromCsrStep(FleetStep):
    """Each device makes its key (the fleet's key_type) and CSR; AWS signs the certificate."""

    kind: Literal["create_certificate_from_csr"]
    set_as_active: bool = True


class ProvisionStep(FleetStep):
    """The whole of "provisioning with the API" per device: thing, certificate (from a CSR by
    default, so the fleet's key_type holds), policy attached to it, certificate attached to
    the thing. With persistent identities, devices already provisioned are reused."""

    kind: Literal["provision"]
    certificate: Literal["csr", "keys_and_certificate"] = "csr"
    policy: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    thing_type: str | None = None


class CreatePolicyStep(StepBase):
    """create-policy; a `{thing_name}` in the policy name makes one policy per device."""

    kind: Literal["create_policy"]
    policy: str
    document: dict[str, Any] | str
    fleet: str | None = None


class AttachPolicyStep(FleetStep):
    kind: Literal["attach_policy"]
    policy: str


class AttachThingPrincipalStep(FleetStep):
    kind: Literal["attach_thing_principal"]


class UpdateThingsStep(FleetStep):
    kind: Literal["update_things"]
    attributes: dict[str, str]
    merge: bool = True


class ConnectStep(FleetStep):
    kind: Literal["connect"]
    client_id: str = "{thing_name}"
    timeout: Duration = 10.0
    reconnect: bool = True  # reconnect with exponential back-off when the connection drops

    _duration = field_validator("timeout", mode="before")(parse_duration)


class PublishStep(FleetStep):
    kind: Literal["publish"]
    topic: str
    payload: dict[str, Any] | list[Any] | str
    qos: Literal[0, 1] = 0
    count: int = Field(default=1, ge=1)
    interval: Duration = 0.0

    _duration = field_validator("interval", mode="before")(parse_duration)


class TelemetryStep(FleetStep):
    """Every device publishes `payload` to `topic` at `rate` for `duration`; each payload
    carries its send time so an observer measures end-to-end latency. `background: true`
    lets the next steps run meanwhile (the telemetry stops at the fleet's disconnect)."""

    kind: Literal["telemetry"]
    topic: str
    payload: dict[str, Any]
    rate: float = 0.2  # per device per second (1/5s)
    duration: Duration = 60.0
    qos: Literal[0, 1] = 0
    background: bool = False
    stamp: bool = True

    _rate = field_validator("rate", mode="before")(parse_rate)
    _duration = field_validator("duration", mode="before")(parse_duration)


class SubscribeStep(FleetStep):
    """Every device subscribes to `topics`; what they receive is counted."""

    kind: Literal["subscribe"]
    topics: list[str] = Field(min_length=1)
    qos: Literal[0, 1] = 0


class DisconnectStep(FleetStep):
    kind: Literal["disconnect"]


class WaitStep(StepBase):
    kind: Literal["wait"]
    seconds: Duration

    _duration = field_validator("seconds", mode="before")(parse_duration)


class ThingExpectation(Strict):
    fleet: str
    attributes: dict[str, str] = Field(default_factory=dict)


class MessageExpectation(Strict):
    topic: str  # an MQTT topic filter; may use {thing_name} with `fleet` (one check per device)
    fleet: str | None = None
    count: int = Field(default=1, ge=1)  # at least this many, per device when `fleet` is set


class ExpectStep(StepBase):
    """Checks, reported in the summary; a failed check fails the run."""

    kind: Literal["expect"]
    timeout: Duration = 10.0
    things: list[ThingExpectation] = Field(default_factory=list)
    messages: list[MessageExpectation] = Field(default_factory=list)

    _duration = field_validator("timeout", mode="before")(parse_duration)


Step = Annotated[
    EventsStep | ObserveStep | CreateThingsStep | CreateKeysAndCertificateStep
    | CreateCertificateFromCsrStep | ProvisionStep | CreatePolicyStep | AttachPolicyStep
    | AttachThingPrincipalStep | UpdateThingsStep | ConnectStep | PublishStep | TelemetryStep
    | SubscribeStep | DisconnectStep | WaitStep | ExpectStep,
    Field(discriminator="kind"),
]
STEP_KINDS = sorted(
    m.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in Step.__origin__.__args__  # type: ignore[attr-defined]
)
# Steps that may be written with a scalar: `- wait: 2s`.
_SCALAR_FIELD = {"wait": "seconds", "disconnect": "fleet", "connect": "fleet",
                 "create_things": "fleet", "attach_thing_principal": "fleet",
                 "create_keys_and_certificate": "fleet", "create_certificate_from_csr": "fleet",
                 "provision": "fleet"}


class StepShapeError(ValueError):
    pass


def unwrap_step(raw: Any) -> dict[str, Any]:
    """`{create_things: {fleet: a}}` → `{kind: create_things, fleet: a}`."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise StepShapeError("each step is a mapping with exactly one key, the step kind (one of "
                             + ", ".join(STEP_KINDS) + ")")
    ((kind, body),) = raw.items()
    if kind not in STEP_KINDS:
        raise StepShapeError(f"unknown step {kind!r}; known steps: {', '.join(STEP_KINDS)}")
    if body is None:
        body = {}
    elif not isinstance(body, dict):
        if kind not in _SCALAR_FIELD:
            raise StepShapeError(f"step {kind!r} takes a mapping of options")
        body = {_SCALAR_FIELD[kind]: body}
    return {"kind": kind, **body}


class Scenario(Strict):
    name: str
    description: str | None = None
    target: LocalTarget | AwsTarget = Field(default_factory=LocalTarget, discriminator="kind")
    cleanup: bool = True  # remove what the run created once it ends (fleetsim run --keep)
    fleets: list[Fleet] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_by_kind(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [s if isinstance(s, dict) and "kind" in s else unwrap_step(s) for s in value]

    @field_validator("target", mode="before")
    @classmethod
    def _target_shorthand(cls, value: Any) -> Any:
        if value in ("local", "aws"):
            return {"kind": value}
        return value

    @model_validator(mode="after")
    def _unique_fleets(self) -> Scenario:
        names = [f.name for f in self.fleets]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"fleet names must be unique; repeated: {', '.join(sorted(dupes))}")
        return self

    def fleet(self, name: str) -> Fleet:
        return next(f for f in self.fleets if f.name == name)

    def with_device_count(self, count: int) -> Scenario:
        """`--devices N`: every fleet gets N devices."""
        fleets = [f.model_copy(update={"count": count}) for f in self.fleets]
        return self.model_copy(update={"fleets": fleets})
