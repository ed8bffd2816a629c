"""The Software Package Catalog ("AWS IoT Device Management Software Package Catalog"):
packages, package versions and their lifecycle, the package configuration, and the reserved
named shadow `$package` where a thing's installed package versions are kept. The only writer
of this feature's tables.

Errors are those botocore's iot model lists for each operation: ConflictException (a package
or version that exists; a lifecycle move the version's status does not allow),
ResourceNotFoundException (Get*/Update* of what does not exist) and ValidationException for
the rest, including what the API reference gives no code of its own: deleting a package that
still has versions ("All package versions must be deleted before deleting the software
package", DeletePackage) or a version that is the package's default (DeletePackageVersion),
and a version of a package that does not exist (CreatePackageVersion lists no
ResourceNotFoundException). DeletePackage and DeletePackageVersion of what does not exist
succeed: neither lists ResourceNotFoundException.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fleetsim.localcore.db import Database
from fleetsim.localcore.errors import AwsError
from fleetsim.localcore.features.packages import lifecycle
from fleetsim.localcore.features.packages.records import (
    PackageConfig,
    PackageRecord,
    VersionRecord,
)
from fleetsim.localcore.features.packages.store import PackageStore
from fleetsim.localcore.scope import Scope

if TYPE_CHECKING:
    from fleetsim.localcore.features.context import Services

# "Preparing to use Software Package Catalog", Reserved named shadow.
PACKAGE_SHADOW = "$package"


def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def conflict(message: str, resource_id: str) -> AwsError:
    return AwsError("ConflictException", message, resourceId=resource_id)


def package_arn(scope: Scope, package: str) -> str:
    return scope.arn("package", package)


def version_arn(scope: Scope, package: str, version: str) -> str:
    return scope.arn("package", f"{package}/version/{version}")


class PackageService:
    def __init__(self, db: Database, services: Services,
                 clock: Callable[[], float] = time.time):
        self._db = db
        self._store = PackageStore(db)
        self._services = services
        self._clock = clock

    # --- packages ----------------------------------------------------------------------------

    def require_package(self, scope: Scope, name: str) -> PackageRecord:
        rec = self._store.package(scope.region, name)
        if rec is None:
            raise AwsError("ResourceNotFoundException", f"Package {name} does not exist.")
        return rec

    def create_package(self, scope: Scope, name: str, description: str | None,
                       tags: dict[str, str] | None) -> PackageRecord:
        with self._db.transaction():
            if self._store.package(scope.region, name) is not None:
                raise conflict(f"Package {name} already exists.", name)
            now = self._clock()
            rec = PackageRecord(scope.region, name, description, None, dict(tags or {}), now,
                                now)
            self._store.put_package(rec)
        return rec

    def update_package(self, scope: Scope, name: str, *, description: str | None,
                       default_version: str | None, unset_default: bool) -> PackageRecord:
        if default_version is not None and unset_default:
            raise validation("defaultVersionName and unsetDefaultVersion cannot be given "
                             "together.")
        with self._db.transaction():
            rec = self.require_package(scope, name)
            if default_version is not None:
                version = self.require_version(scope, name, default_version)
                self._lifecycle(lambda: lifecycle.check_default(
                    version.status, f"Version {default_version} of package {name}"), "conflict",
                    name)
            new_default = None if unset_default else (default_version or rec.default_version)
            rec = replace(rec, description=rec.description if description is None
                          else description, default_version=new_default,
                          modified=self._clock())
            self._store.put_package(rec)
        return rec

    def delete_package(self, scope: Scope, name: str) -> None:
        with self._db.transaction():
            if self._store.package(scope.region, name) is None:
                return
            count = self._store.count_versions(scope.region, name)
            if count:
                raise validation(f"Package {name} still has {count} version(s): all package "
                                 "versions must be deleted before deleting the package.")
            self._store.delete_package(scope.region, name)

    def list_packages(self, scope: Scope, after: str, limit: int
                      ) -> tuple[list[PackageRecord], str | None]:
        return self._store.packages(scope.region, after, limit)

    # --- versions ----------------------------------------------------------------------------

    def get_version(self, scope: Scope, package: str, name: str) -> VersionRecord | None:
        return self._store.version(scope.region, package, name)

    def require_version(self, scope: Scope, package: str, name: str) -> VersionRecord:
        rec = self._store.version(scope.region, package, name)
        if rec is None:
            raise AwsError("ResourceNotFoundException",
                           f"Version {name} of package {package} does not exist.")
        return rec

    def create_version(self, scope: Scope, package: str, name: str, *,
                       description: str | None, attributes: dict[str, str] | None,
                       artifact: dict[str, Any] | None, recipe: str | None,
                       tags: dict[str, str] | None) -> VersionRecord:
        where = f"version {name} of package {package}"
        attrs = dict(attributes or {})
        self._lifecycle(lambda: lifecycle.check_attributes(attrs, where), "validation", name)
        with self._db.transaction():
            if self._store.package(scope.region, package) is None:
                raise validation(f"Package {package} does not exist: create it before its "
                                 "versions.")
            if self._store.version(scope.region, package, name) is not None:
                raise conflict(f"Version {name} of package {package} already exists.", name)
            now = self._clock()
            rec = VersionRecord(scope.region, package, name, description, attrs, artifact,
                                recipe, lifecycle.DRAFT, dict(tags or {}), now, now)
            self._store.put_version(rec)
        return rec

    def update_version(self, scope: Scope, package: str, name: str, *,
                       description: str | None, attributes: dict[str, str] | None,
                       artifact: dict[str, Any] | None, recipe: str | None,
                       action: str | None) -> VersionRecord:
        where = f"Version {name} of package {package}"
        with self._db.transaction():
            rec = self.require_version(scope, package, name)
            changed = [label for label, new, old in (
                ("attributes", attributes, rec.attributes), ("artifact", artifact, rec.artifact),
                ("recipe", recipe, rec.recipe)) if new is not None and new != old]
            self._lifecycle(lambda: lifecycle.check_editable(rec.status, changed, where),
                            "conflict", name)
            if attributes is not None:
                self._lifecycle(lambda: lifecycle.check_attributes(attributes, where),
                                "validation", name)
            status = rec.status
            if action is not None:
                status = self._lifecycle(lambda: lifecycle.next_status(rec.status, action, where),
                                         "conflict", name)
            rec = replace(
                rec, description=rec.description if description is None else description,
                attributes=rec.attributes if attributes is None else dict(attributes),
                artifact=rec.artifact if artifact is None else artifact,
                recipe=rec.recipe if recipe is None else recipe, status=status,
                modified=self._clock())
            self._store.put_version(rec)
        return rec

    def delete_version(self, scope: Scope, package: str, name: str) -> None:
        with self._db.transaction():
            rec = self._store.version(scope.region, package, name)
            if rec is None:
                return
            pkg = self._store.package(scope.region, package)
            if pkg is not None and pkg.default_version == name:
                raise validation(f"Version {name} is the default version of package {package}: "
                                 "unset it with UpdatePackage before deleting it.")
            self._store.delete_version(scope.region, package, name)

    def list_versions(self, scope: Scope, package: str, status: str | None, after: str,
                      limit: int) -> tuple[list[VersionRecord], str | None]:
        return self._store.versions(scope.region, package, status, after, limit)

    @staticmethod
    def _lifecycle(check: Callable[[], Any], kind: str, resource: str) -> Any:
        try:
            return check()
        except lifecycle.LifecycleError as e:
            raise (conflict(str(e), resource) if kind == "conflict"
                   else validation(str(e))) from None

    # --- the package configuration -----------------------------------------------------------

    def config(self, scope: Scope) -> PackageConfig:
        return self._store.config(scope.region)

    def update_config(self, scope: Scope, jobs: dict[str, Any] | None) -> None:
        if jobs is None:
            return
        current = self._store.config(scope.region)
        with self._db.transaction():
            self._store.put_config(scope.region, PackageConfig(
                bool(jobs.get("enabled", current.jobs_enabled)),
                jobs.get("roleArn", current.role_arn)))

    # --- a thing's package versions: the `$package` reserved named shadow --------------------

    def missing(self, scope: Scope, versions: dict[str, str]) -> str | None:
        """A sentence naming the first package or version of `versions` that does not exist,
        else None."""
        for package, version in sorted(versions.items()):
            if self._store.package(scope.region, package) is None:
                return f"Package {package} not found."
            if self._store.version(scope.region, package, version) is None:
                return f"Version {version} of package {package} not found."
        return None

    def installed(self, scope: Scope, thing: str) -> dict[str, str]:
        """The thing's package versions as its `$package` shadow reports them."""
        outcome = self._services.get("shadows").get(scope.region, thing, PACKAGE_SHADOW)
        if not outcome.ok:
            return {}
        reported = json.loads(outcome.body).get("state", {}).get("reported", {})
        return {k: v["version"] for k, v in reported.items()
                if isinstance(v, dict) and isinstance(v.get("version"), str)}

    def associate(self, scope: Scope, thing: str, versions: dict[str, str], *,
                  replace_all: bool = False) -> None:
        """Report `versions` in the thing's `$package` shadow: `{"state": {"reported":
        {"<package>": {"version": "<version>"}}}}` ("Preparing to use Software Package Catalog",
        Reserved named shadow). `replace_all` also removes the packages it reported before that
        `versions` does not name."""
        reported: dict[str, Any] = {p: {"version": v} for p, v in versions.items()}
        if replace_all:
            for package in self.installed(scope, thing):
                reported.setdefault(package, None)
        if not reported:
            return
        payload = json.dumps({"state": {"reported": reported}}).encode()
        outcome = self._services.get("shadows").update(scope.region, thing, PACKAGE_SHADOW,
                                                       payload)
        if not outcome.ok:
            raise validation(f"The {PACKAGE_SHADOW} shadow of thing {thing} could not be "
                             f"updated: {outcome.body.decode(errors='replace')}")
