"""`create_package`: a software package and one version of it in the Software Package Catalog
("AWS IoT Device Management Software Package Catalog"), so that a provisioning template's
`PackageVersions` can name it (the template then reports that version in the thing's `$package`
reserved named shadow).

A new version is DRAFT; `status` (PUBLISHED by default) is reached with UpdatePackageVersion's
`action` along the documented lifecycle (DRAFT -> PUBLISHED <-> DEPRECATED; nothing goes back
to DRAFT). Clean-up deletes the versions a run created (unsetting the package's default first
if it is one of them: DeletePackageVersion refuses the default version), then the packages,
which AWS deletes only once they have no version left."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from botocore.exceptions import ClientError
from pydantic import Field

from fleetsim.control.cleanup import GONE, JournalKind, Phase, error_code, with_retry
from fleetsim.control.clients import AwsClients
from fleetsim.engine.context import RunContext
from fleetsim.engine.describe import describe
from fleetsim.engine.fanout import api_call
from fleetsim.engine.provisioning import journaled
from fleetsim.engine.reconcile import attribute_items, value_item
from fleetsim.engine.steps.base import StepKind
from fleetsim.scenario.model import StepBase

NAME = r"^[a-zA-Z0-9_.-]{1,128}$"  # botocore: PackageName
VERSION = r"^[a-zA-Z0-9_.-]{1,64}$"  # botocore: VersionName
Status = Literal["DRAFT", "PUBLISHED", "DEPRECATED"]
# "Package version lifecycle": the UpdatePackageVersion actions from one status to another.
_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("DRAFT", "PUBLISHED"): ("PUBLISH",), ("DEPRECATED", "PUBLISHED"): ("PUBLISH",),
    ("PUBLISHED", "DEPRECATED"): ("DEPRECATE",), ("DRAFT", "DEPRECATED"): ("PUBLISH",
                                                                        "DEPRECATE"),
}


def actions_to(have: str, want: str) -> tuple[str, ...] | None:
    """The actions that take a version from `have` to `want` (none if they are equal), or
    None if the lifecycle has no way there (back to DRAFT)."""
    return () if have == want else _ACTIONS.get((have, want))


async def _delete_version(clients: AwsClients, d: dict[str, Any]) -> None:
    iot, package, version = clients.iot, d["package"], d["version"]
    try:
        have = await iot.get_package(packageName=package)
    except ClientError as e:
        if error_code(e) in GONE:
            return
        raise
    if have.get("defaultVersionName") == version:
        await with_retry(lambda: iot.update_package(packageName=package,
                                                    unsetDefaultVersion=True))
    await with_retry(lambda: iot.delete_package_version(packageName=package,
                                                        versionName=version))


PACKAGE_VERSION = JournalKind("package_version", Phase.DELETE, _delete_version)
# After the DELETE phase: "All package versions must be deleted before deleting the software
# package" (API reference, DeletePackage).
PACKAGE = JournalKind(
    "package", Phase.AFTER_DELETE,
    lambda c, d: with_retry(lambda: c.iot.delete_package(packageName=d["name"])))


class CreatePackageStep(StepBase):
    kind: Literal["create_package"]
    package: str = Field(pattern=NAME)
    description: str | None = Field(default=None, max_length=1024)
    version: str | None = Field(default=None, pattern=VERSION)
    attributes: dict[str, str] = Field(default_factory=dict)
    status: Status = "PUBLISHED"

    scalar_field: ClassVar[str | None] = "package"


async def run(ctx: RunContext, step: CreatePackageStep) -> None:
    """The package, then its version, each described first: absent, created (journaled
    before the call); there, reused. An existing version's drift is fixed where the
    lifecycle allows: its attributes while it is DRAFT, its status by the documented
    actions; what it does not allow is reported, not fixed."""
    ledger, name = ctx.reconcile, step.package
    have = await describe(ctx, "GetPackage", name, packageName=name)
    if have is None:
        ledger.create(PACKAGE.name, name)
        if not ledger.plan:
            params: dict[str, Any] = {"packageName": name}
            if step.description is not None:
                params["description"] = step.description
            await journaled(ctx.journal, PACKAGE.name, {"name": name},
                            api_call(ctx, "CreatePackage", name, **params))
    else:
        ledger.reuse(PACKAGE.name, name)
    if step.version is not None:
        await _version(ctx, step, step.version, fresh_package=have is None)


async def _version(ctx: RunContext, step: CreatePackageStep, version: str, *,
                   fresh_package: bool) -> None:
    ledger, label = ctx.reconcile, f"{step.package}/{version}"
    ids = {"packageName": step.package, "versionName": version}
    have = None if fresh_package else await describe(ctx, "GetPackageVersion", label, **ids)
    if have is None:
        ledger.create(PACKAGE_VERSION.name, label)
        if ledger.plan:
            return
        params: dict[str, Any] = dict(ids)
        if step.attributes:
            params["attributes"] = step.attributes
        await journaled(ctx.journal, PACKAGE_VERSION.name,
                        {"package": step.package, "version": version},
                        api_call(ctx, "CreatePackageVersion", label, **params))
        for action in actions_to("DRAFT", step.status) or ():
            await api_call(ctx, "UpdatePackageVersion", label, action=action, **ids)
        return
    status = str(have.get("status", "DRAFT"))
    attrs = attribute_items(step.attributes, have.get("attributes") or {})
    actions = actions_to(status, step.status)
    if not attrs and actions == ():
        ledger.reuse(PACKAGE_VERSION.name, label)
        return
    # Attributes change only while the version is DRAFT ("Package version lifecycle").
    ledger.drifted(PACKAGE_VERSION.name, label, attrs, fixable=status == "DRAFT")
    ledger.drifted(PACKAGE_VERSION.name, label, value_item("status", status, step.status),
                   fixable=actions is not None)
    if ledger.plan:
        return
    if attrs and status == "DRAFT":
        await api_call(ctx, "UpdatePackageVersion", label,
                       attributes={**(have.get("attributes") or {}), **step.attributes}, **ids)
    for action in actions or ():
        await api_call(ctx, "UpdatePackageVersion", label, action=action, **ids)


KIND = StepKind(CreatePackageStep, run, journals=(PACKAGE, PACKAGE_VERSION), plans=True)
