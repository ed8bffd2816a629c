"""HTTP handlers of the Software Package Catalog: packages, package versions and the package
configuration (botocore's iot model: CreatePackage ... UpdatePackageConfiguration)."""

from __future__ import annotations

from typing import Any

from fleetsim.localcore.api import paging
from fleetsim.localcore.api.operations import Call, Operations
from fleetsim.localcore.features.packages.records import PackageRecord, VersionRecord
from fleetsim.localcore.features.packages.service import (
    PackageService,
    package_arn,
    version_arn,
)
from fleetsim.localcore.scope import Scope

operations = Operations()
iot = operations.iot
C = Call[PackageService]
P = dict[str, Any]


def _package(scope: Scope, rec: PackageRecord) -> P:
    out: P = {"packageName": rec.name, "packageArn": package_arn(scope, rec.name),
              "creationDate": rec.created, "lastModifiedDate": rec.modified}
    if rec.description is not None:
        out["description"] = rec.description
    if rec.default_version is not None:
        out["defaultVersionName"] = rec.default_version
    return out


def _version(scope: Scope, rec: VersionRecord) -> P:
    out: P = {"packageVersionArn": version_arn(scope, rec.package, rec.name),
              "packageName": rec.package, "versionName": rec.name,
              "attributes": dict(rec.attributes), "status": rec.status,
              "creationDate": rec.created, "lastModifiedDate": rec.modified}
    if rec.description is not None:
        out["description"] = rec.description
    if rec.artifact is not None:
        out["artifact"] = rec.artifact
    if rec.recipe is not None:
        out["recipe"] = rec.recipe
    return out


@iot("CreatePackage")
def create_package(call: C, p: P) -> P:
    rec = call.service.create_package(call.scope, p["packageName"], p.get("description"),
                                      p.get("tags"))
    out: P = {"packageName": rec.name, "packageArn": package_arn(call.scope, rec.name)}
    if rec.description is not None:
        out["description"] = rec.description
    return out


@iot("GetPackage")
def get_package(call: C, p: P) -> P:
    return _package(call.scope, call.service.require_package(call.scope, p["packageName"]))


@iot("UpdatePackage")
def update_package(call: C, p: P) -> P:
    call.service.update_package(call.scope, p["packageName"], description=p.get("description"),
                                default_version=p.get("defaultVersionName"),
                                unset_default=bool(p.get("unsetDefaultVersion")))
    return {}


@iot("DeletePackage")
def delete_package(call: C, p: P) -> P:
    call.service.delete_package(call.scope, p["packageName"])
    return {}


@iot("ListPackages")
def list_packages(call: C, p: P) -> P:
    recs, last = call.service.list_packages(call.scope, paging.decode_str(p.get("nextToken")),
                                            paging.page_size(p))
    out: P = {"packageSummaries": [
        {k: v for k, v in _package(call.scope, r).items()
         if k in ("packageName", "defaultVersionName", "creationDate", "lastModifiedDate")}
        for r in recs]}
    if last is not None:
        out["nextToken"] = paging.next_token(last)
    return out


@iot("CreatePackageVersion")
def create_version(call: C, p: P) -> P:
    rec = call.service.create_version(
        call.scope, p["packageName"], p["versionName"], description=p.get("description"),
        attributes=p.get("attributes"), artifact=p.get("artifact"), recipe=p.get("recipe"),
        tags=p.get("tags"))
    out = _version(call.scope, rec)
    return {k: out[k] for k in ("packageVersionArn", "packageName", "versionName",
                                "description", "attributes", "status") if k in out}


@iot("GetPackageVersion")
def get_version(call: C, p: P) -> P:
    return _version(call.scope, call.service.require_version(call.scope, p["packageName"],
                                                             p["versionName"]))


@iot("UpdatePackageVersion")
def update_version(call: C, p: P) -> P:
    call.service.update_version(
        call.scope, p["packageName"], p["versionName"], description=p.get("description"),
        attributes=p.get("attributes"), artifact=p.get("artifact"), recipe=p.get("recipe"),
        action=p.get("action"))
    return {}


@iot("DeletePackageVersion")
def delete_version(call: C, p: P) -> P:
    call.service.delete_version(call.scope, p["packageName"], p["versionName"])
    return {}


@iot("ListPackageVersions")
def list_versions(call: C, p: P) -> P:
    recs, last = call.service.list_versions(call.scope, p["packageName"], p.get("status"),
                                            paging.decode_str(p.get("nextToken")),
                                            paging.page_size(p))
    out: P = {"packageVersionSummaries": [
        {"packageName": r.package, "versionName": r.name, "status": r.status,
         "creationDate": r.created, "lastModifiedDate": r.modified} for r in recs]}
    if last is not None:
        out["nextToken"] = paging.next_token(last)
    return out


@iot("GetPackageConfiguration")
def get_config(call: C, p: P) -> P:
    config = call.service.config(call.scope)
    jobs: P = {"enabled": config.jobs_enabled}
    if config.role_arn is not None:
        jobs["roleArn"] = config.role_arn
    return {"versionUpdateByJobsConfig": jobs}


@iot("UpdatePackageConfiguration")
def update_config(call: C, p: P) -> P:
    call.service.update_config(call.scope, p.get("versionUpdateByJobsConfig"))
    return {}
