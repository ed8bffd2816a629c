"""The package version lifecycle as AWS documents it ("Preparing to use Software Package
Catalog", Package version lifecycle), pure: which `action` moves a version from which status,
what each status lets UpdatePackageVersion change, and which versions may be a package's
default.

- A new version is DRAFT: its description, attributes (and artifact, recipe) can be edited.
- DRAFT -> PUBLISHED (`action: PUBLISH`); PUBLISHED -> DEPRECATED (`DEPRECATE`); DEPRECATED ->
  PUBLISHED (`PUBLISH`). Any status -> deleted (DeletePackageVersion).
- PUBLISHED and DEPRECATED versions: only the description (and tags) can be edited; only they
  can be named a package's default version.
"""

from __future__ import annotations

DRAFT, PUBLISHED, DEPRECATED = "DRAFT", "PUBLISHED", "DEPRECATED"
TRANSITIONS: dict[tuple[str, str], str] = {
    (DRAFT, "PUBLISH"): PUBLISHED,
    (PUBLISHED, "DEPRECATE"): DEPRECATED,
    (DEPRECATED, "PUBLISH"): PUBLISHED,
}
# botocore's CreatePackageVersion: "The combined size of all the attributes on a package
# version is limited to 3KB."
MAX_ATTRIBUTES_BYTES = 3 * 1024


class LifecycleError(ValueError):
    """One sentence naming what the version's status does not allow."""


def next_status(status: str, action: str, where: str) -> str:
    """The status `action` moves a version in `status` to; LifecycleError if the lifecycle has
    no such move."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == status)
        raise LifecycleError(
            f"{where} is {status}: the action {action} does not apply to it (allowed: "
            f"{', '.join(allowed) or 'none'}).") from None


def check_editable(status: str, changed: list[str], where: str) -> None:
    """Only a DRAFT version's attributes, artifact and recipe can change."""
    if status != DRAFT and changed:
        raise LifecycleError(f"{where} is {status}: its {', '.join(changed)} can be changed only "
                             "while it is DRAFT.")


def check_default(status: str, where: str) -> None:
    """A package's default version must be PUBLISHED or DEPRECATED."""
    if status == DRAFT:
        raise LifecycleError(f"{where} is DRAFT: only a PUBLISHED or DEPRECATED version can be "
                             "the package's default version.")


def check_attributes(attributes: dict[str, str], where: str) -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
    if size > MAX_ATTRIBUTES_BYTES:
        raise LifecycleError(f"The attributes of {where} take {size} bytes; their combined size "
                             f"is limited to {MAX_ATTRIBUTES_BYTES} bytes (3KB).")

