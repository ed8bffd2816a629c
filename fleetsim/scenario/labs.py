"""A scenario made of labs: `labs:` lists scenario files (`include:`, relative to the file
that names them) that one run plays one after the other, each with its own fleets and
steps, all against one target and written to one journal, so that one clean-up at the end
removes what every lab created. An included file may itself be made of labs (its labs are
played in its place); a file that includes itself, directly or through others, is refused.

Problems are reported as `FILE:LINE:COL` of the file they are in: the included file's own
position for what is wrong inside it, the `include:` line for a file that is missing or
makes a cycle."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from fleetsim.errors import ScenarioInvalid
from fleetsim.scenario.loader import Located, located, parse_document, validation_problems
from fleetsim.scenario.model import (
    AwsTarget,
    Fleet,
    LocalTarget,
    Scenario,
    StepBase,
    Strict,
    target_shorthand,
)
from fleetsim.scenario.semantics import FLEET_NAMES
from fleetsim.scenario.templating import Template
from fleetsim.scenario.yaml_positions import YamlDocument

# Thing names rendered per lab to find two labs making the same thing; beyond this many
# devices (a load test, not a workshop) the check is not made.
MAX_NAMES_CHECKED = 100_000


class LabEntry(Strict):
    name: str = Field(min_length=1, max_length=80)
    include: str = Field(min_length=1)  # a scenario file, relative to this file's folder
    # A failed lab stops the run (the labs after it are "not run"), unless the labs after
    # it do not depend on it: then `continue`.
    on_failure: Literal["stop", "continue"] = "stop"


class LabsFile(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    # Every lab runs against this target; an included file's own `target` is not used.
    target: LocalTarget | AwsTarget = Field(default_factory=LocalTarget, discriminator="kind")
    cleanup: bool = True  # remove what every lab created once the last one ends
    labs: list[LabEntry] = Field(min_length=1)

    _target = field_validator("target", mode="before")(target_shorthand)


@dataclass(frozen=True)
class Lab:
    name: str
    file: str  # as the including file names it, joined to its folder
    scenario: Scenario
    on_failure: Literal["stop", "continue"] = "stop"


@dataclass(frozen=True)
class Labs:
    """A run of several scenarios (labs), in order."""

    name: str
    target: LocalTarget | AwsTarget
    cleanup: bool
    labs: tuple[Lab, ...]
    description: str | None = None

    @property
    def fleets(self) -> list[Fleet]:
        return [f for lab in self.labs for f in lab.scenario.fleets]

    @property
    def steps(self) -> list[StepBase]:
        return [s for lab in self.labs for s in lab.scenario.steps]


LoadOne = Callable[[Path], Scenario]


def is_labs(doc: YamlDocument) -> bool:
    return isinstance(doc.data, dict) and "labs" in doc.data


def load_labs(path: Path, load_one: LoadOne, doc: YamlDocument | None = None,
              chain: tuple[Path, ...] = ()) -> Labs:
    """The labs of `path` (a file with `labs:`), each included scenario loaded by
    `load_one`; raises ScenarioInvalid with every problem of this file and of the files it
    includes. `chain`: the files that include this one, outermost first."""
    label = str(path)
    doc = doc if doc is not None else parse_document(path)
    problems: list[Located] = [located(label, pos, loc, f"key {loc[-1]!r} is written twice")
                               for loc, pos in doc.duplicate_keys()]
    data = doc.data
    assert isinstance(data, dict)
    for key in ("steps", "fleets"):
        if key in data:
            problems.append(located(label, doc.key_position((key,)), (key,),
                                    "a scenario has either 'labs' or 'fleets' and 'steps': "
                                    "move these into a file of their own and include it"))
    head = None
    try:
        head = LabsFile.model_validate({k: v for k, v in data.items()
                                        if k not in ("steps", "fleets")})
    except ValidationError as e:
        problems += validation_problems(label, doc, e)
    extra: list[str] = []  # problems inside included files, already located there
    labs: list[tuple[int, Lab]] = []  # each with the index of the entry that brought it
    if head is not None:
        here = path.resolve()
        seen: dict[str, int] = {}
        for i, entry in enumerate(head.labs):
            if entry.name in seen:
                problems.append(located(label, doc.position(("labs", i, "name")),
                                        ("labs", i, "name"), f"lab name {entry.name!r} is "
                                        f"already used by labs[{seen[entry.name]}]"))
            seen.setdefault(entry.name, i)
            at = ("labs", i, "include")
            file = Path(os.path.normpath(path.parent / entry.include))
            if not file.is_file():
                problems.append(located(label, doc.position(at), at, f"{entry.include} is not "
                                        f"a readable file (looked for {file})"))
                continue
            if file.resolve() in (*chain, here):
                cycle = " -> ".join(p.name for p in (*chain, here, file.resolve()))
                problems.append(located(label, doc.position(at), at, f"{entry.include} "
                                        f"includes this file again ({cycle}): a lab cannot "
                                        "include the labs it is part of"))
                continue
            try:
                labs += [(i, lab) for lab in _entry_labs(entry, file, load_one,
                                                          (*chain, here))]
            except ScenarioInvalid as e:
                extra += e.problems
        if not problems and not extra:
            problems += _clashes(label, doc, labs)
    if problems or extra:
        raise ScenarioInvalid([p[2] for p in sorted(set(problems))] + extra)
    assert head is not None
    return Labs(head.name, head.target, head.cleanup, tuple(lab for _, lab in labs),
                head.description)


def _entry_labs(entry: LabEntry, file: Path, load_one: LoadOne,
                chain: tuple[Path, ...]) -> list[Lab]:
    """One lab, or the labs of an included file made of labs (named `entry: its lab`)."""
    doc = parse_document(file)
    if not is_labs(doc):
        return [Lab(entry.name, str(file), load_one(file), entry.on_failure)]
    inner = load_labs(file, load_one, doc, chain)
    return [Lab(f"{entry.name}: {lab.name}", lab.file, lab.scenario,
                "stop" if entry.on_failure == "stop" and lab.on_failure == "stop"
                else "continue")
            for lab in inner.labs]


def thing_names(scenario: Scenario) -> dict[str, str]:
    """The thing names a scenario's fleets make, each with its fleet's name."""
    names: dict[str, str] = {}
    for fleet in scenario.fleets:
        t = Template(fleet.thing_name, FLEET_NAMES)
        for i in range(fleet.count):
            names[t.render({"fleet": fleet.name, "prefix": fleet.prefix, "index": i})] = \
                fleet.name
    return names


def _clashes(label: str, doc: YamlDocument, labs: list[tuple[int, Lab]]) -> list[Located]:
    """Two labs whose fleets make things of the same name (the later lab would take over, or
    fail to create, the earlier one's things, and clean-up could not tell them apart), or that
    register the same CA; reported at the `include:` of the entry that brought the later."""
    if sum(f.count for _, lab in labs for f in lab.scenario.fleets) > MAX_NAMES_CHECKED:
        return []
    owner: dict[str, tuple[int, str]] = {}
    problems: list[Located] = []
    # A CA folder a lab registers -> the first lab that does. The same CA registered twice:
    # "more than one CA certificate that has the same subject field and public key" is what
    # AWS IoT answers with CertificateConflictException (API reference,
    # "CertificateConflictException"); RegisterCACertificate may also refuse it outright
    # (ResourceAlreadyExistsException).
    cas: dict[str, int] = {}
    for k, (entry, lab) in enumerate(labs):
        at = ("labs", entry, "include")
        for step in lab.scenario.steps:
            ca = str(getattr(step, "ca", "")) if step.kind == "register_ca" else ""
            if not ca:
                continue
            if ca in cas and cas[ca] != k:
                problems.append(located(
                    label, doc.position(at), at,
                    f"lab {lab.name!r} registers the CA in {ca} that lab "
                    f"{labs[cas[ca]][1].name!r} registers too (one CA registered twice makes "
                    "AWS IoT refuse its devices: CertificateConflictException); give it a CA "
                    "folder of its own"))
            cas.setdefault(ca, k)
        mine = thing_names(lab.scenario)
        taken = sorted(n for n in mine if n in owner and owner[n][0] != k)
        if taken:
            first = owner[taken[0]]
            problems.append(located(
                label, doc.position(at), at,
                f"fleet {mine[taken[0]]!r} of lab {lab.name!r} makes thing(s) "
                f"{', '.join(taken[:3])}{' ...' if len(taken) > 3 else ''} that lab "
                f"{labs[first[0]][1].name!r} (fleet {first[1]!r}) makes too; give one of the "
                "fleets another prefix"))
        for n, fleet in mine.items():
            owner.setdefault(n, (k, fleet))
    return problems
