"""The Software Package Catalog: packages, package versions (DRAFT, PUBLISHED, DEPRECATED), the
package configuration, and a thing's package versions in its `$package` reserved named shadow
(the provisioning feature's templates set them through `PackageService.associate`)."""

from __future__ import annotations

from fleetsim.localcore.features.context import FeatureContext
from fleetsim.localcore.features.packages import api
from fleetsim.localcore.features.packages.service import PackageService

NAME = "packages"


def install(ctx: FeatureContext) -> None:
    service = PackageService(ctx.db, ctx.services)
    ctx.services.provide(NAME, service)
    ctx.http.add(api.operations, service)
