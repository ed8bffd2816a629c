"""What the account holds whose name starts with a prefix, as journal entries: `fleetsim
cleanup --prefix P` removes it even without a journal (the state dir lost, a run on another
machine).

Only what has a name is matched, by that name: things (with their shadows, and the
certificates attached to them and to no thing outside the prefix), thing groups (static and
dynamic: ListThingGroups lists both, each described to tell which delete it takes), thing
types, policies, topic rules, jobs, provisioning templates, Lambda functions, S3 buckets (and
what is in them), IAM roles and software packages (with every version of them). A CA
certificate has no name: it is matched by its subject's common name (register_ca's
`common_name`), and goes with the device certificates it admitted (AWS keeps them only while
their CA is registered) but not with their things outside the prefix. Account settings
(indexing, logging, event configurations) have nothing to restore them to without a journal:
they are not touched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.x509.oid import NameOID

from fleetsim.control.cleanup import GONE, error_code
from fleetsim.control.clients import AwsClients
from fleetsim.control.journal import Entry

# (journal kind, client, paginated operation, page key, the item's name key, entry key)
_NAMED: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("thing_group", "iot", "list_thing_groups", "thingGroups", "groupName", "name"),
    ("thing_type", "iot", "list_thing_types", "thingTypes", "thingTypeName", "name"),
    ("policy", "iot", "list_policies", "policies", "policyName", "name"),
    ("topic_rule", "iot", "list_topic_rules", "rules", "ruleName", "name"),
    ("job", "iot", "list_jobs", "jobs", "jobId", "job_id"),
    ("provisioning_template", "iot", "list_provisioning_templates", "templates",
     "templateName", "name"),
    ("function", "lambda_", "list_functions", "Functions", "FunctionName", "name"),
    ("iam_role", "iam", "list_roles", "Roles", "RoleName", "name"),
)


async def _items(client: Any, operation: str, key: str, **params: Any
                 ) -> AsyncIterator[Any]:
    async for page in client.get_paginator(operation).paginate(**params):
        for item in page.get(key, []):
            yield item


async def find_by_prefix(clients: AwsClients, prefix: str) -> list[Entry]:
    """Journal entries for everything named `prefix...` (an empty prefix is refused: it
    would match everything)."""
    if not prefix:
        raise ValueError("a prefix must not be empty")
    found: list[Entry] = []
    for kind, client_name, operation, key, name_key, entry_key in _NAMED:
        client = getattr(clients, client_name)
        params = {"namePrefixFilter": prefix} if operation == "list_thing_groups" else {}
        async for item in _items(client, operation, key, **params):
            name = item[name_key]
            if name.startswith(prefix):
                # Named for removal: a policy is detached from whatever holds it.
                found.append(Entry(kind, {entry_key: name, **(
                    {"detach_all": True} if kind == "policy" else {})}))
    buckets = (await clients.s3.list_buckets()).get("Buckets", [])
    found += [Entry("s3_bucket", {"bucket": b["Name"]}) for b in buckets
              if b["Name"].startswith(prefix)]
    found = await _dynamic_groups(clients, found)
    return (found + await _packages(clients, prefix) + await _ca_certificates(clients, prefix)
            + await _things(clients, prefix))


async def _packages(clients: AwsClients, prefix: str) -> list[Entry]:
    """Each package named `prefix...` and all its versions: AWS deletes a package only once
    it has no version left (API reference, "DeletePackage")."""
    out = []
    async for package in _items(clients.iot, "list_packages", "packageSummaries"):
        name = package["packageName"]
        if name.startswith(prefix):
            out.append(Entry("package", {"name": name}))
            out += [Entry("package_version", {"package": name, "version": v["versionName"]})
                    async for v in _items(clients.iot, "list_package_versions",
                                          "packageVersionSummaries", packageName=name)]
    return out


async def _dynamic_groups(clients: AwsClients, found: list[Entry]) -> list[Entry]:
    """The thing groups found, a dynamic one (DescribeThingGroup answers its `queryString`)
    as a `dynamic_thing_group`: DeleteThingGroup refuses it, DeleteDynamicThingGroup deletes
    it."""
    async def which(entry: Entry) -> Entry:
        if entry.kind != "thing_group":
            return entry
        try:
            group = await clients.iot.describe_thing_group(thingGroupName=entry.data["name"])
        except ClientError as e:
            if error_code(e) in GONE:
                return entry
            raise
        return Entry("dynamic_thing_group", entry.data) if group.get("queryString") else entry
    return list(await asyncio.gather(*(which(e) for e in found)))


async def _ca_certificates(clients: AwsClients, prefix: str) -> list[Entry]:
    """The CA certificates whose subject's common name starts with `prefix`
    (DescribeCACertificate's `certificatePem`); their admitted certificates' things are
    removed only when named with the prefix too."""
    out = []
    async for ca in _items(clients.iot, "list_ca_certificates", "certificates"):
        ca_id = ca["certificateId"]
        try:
            described = await clients.iot.describe_ca_certificate(certificateId=ca_id)
        except ClientError as e:
            if error_code(e) in GONE:
                continue
            raise
        common_name = subject_common_name(described["certificateDescription"]["certificatePem"])
        if common_name is not None and common_name.startswith(prefix):
            out.append(Entry("ca_certificate", {
                "id": ca_id, "name": f"{ca_id[:12]}… (CN {common_name})",
                "things_prefix": prefix}))
    return out


def subject_common_name(pem: str) -> str | None:
    """The certificate's subject CN (the first, if several); None without one."""
    names = x509.load_pem_x509_certificate(pem.encode()).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


async def _things(clients: AwsClients, prefix: str) -> list[Entry]:
    iot = clients.iot
    things = [t["thingName"] async for t in _items(iot, "list_things", "things")
              if t["thingName"].startswith(prefix)]
    limit = asyncio.Semaphore(16)

    async def around(thing: str) -> list[Entry]:
        async with limit:
            out = [Entry("thing", {"name": thing})] + await _shadows(clients, thing)
            try:
                principals = [p async for p in _items(iot, "list_thing_principals",
                                                      "principals", thingName=thing)]
            except ClientError as e:
                if error_code(e) in GONE:
                    return out
                raise
            for arn in principals:
                if ":cert/" not in arn:
                    continue
                holders = [t async for t in _items(iot, "list_principal_things", "things",
                                                   principal=arn)]
                if all(h.startswith(prefix) for h in holders):
                    out.append(Entry("certificate", {"id": arn.rsplit("/", 1)[-1],
                                                     "arn": arn}))
            return out

    return [e for entries in await asyncio.gather(*(around(t) for t in things))
            for e in entries]


async def _shadows(clients: AwsClients, thing: str) -> list[Entry]:
    """The thing's classic shadow (GetThingShadow) and its named shadows
    (ListNamedShadowsForThing), those that are there: on AWS a shadow outlives its thing."""
    out = []
    try:
        await clients.iot_data.get_thing_shadow(thingName=thing)
        out.append(Entry("shadow", {"thing": thing}))
    except ClientError as e:
        if error_code(e) not in GONE:
            raise
    token: str | None = None
    while True:
        try:
            page = await clients.iot_data.list_named_shadows_for_thing(
                thingName=thing, **({"nextToken": token} if token else {}))
        except ClientError as e:
            if error_code(e) in GONE:
                return out
            raise
        out += [Entry("shadow", {"thing": thing, "shadow": s}) for s in page.get("results", [])]
        token = page.get("nextToken")
        if not token:
            return out
