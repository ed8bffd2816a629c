"""The Software Package Catalog through the real local core process: packages and versions with
their lifecycle and errors, a provisioning template's PackageVersions written to the thing's
`$package` reserved named shadow (register-thing; a missing version fails with nothing
created), and the AWS CLI's package commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fleetsim.localcore.launcher import RunningLocalCore
from tests.awscli import AWS, aws, aws_json
from tests.conftest import start_core
from tests.helpers import aws_client, code_of
from tests.integration.test_cleanup_everything import fleetsim
from tests.integration.test_provisioning import counts, csr_pem

pytestmark = pytest.mark.timeout(120)

def template(package_versions: Any, *, override: str | None = None) -> str:
    thing: dict[str, Any] = {"Type": "AWS::IoT::Thing", "Properties": {
        "ThingName": {"Ref": "ThingName"}, "PackageVersions": package_versions}}
    if override is not None:
        thing["OverrideSettings"] = {"PackageVersions": override}
    return json.dumps({
        "Parameters": {"ThingName": {"Type": "String"}, "CSR": {"Type": "String"}},
        "Resources": {
            "thing": thing,
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
                "CertificateSigningRequest": {"Ref": "CSR"}, "Status": "ACTIVE"}}}})


SCENARIO = """\
name: packaged
fleets:
  - {name: pk, prefix: pkrun-, count: 2, key_type: ec-p256}
steps:
  - create_package: {package: pkrun-agent, version: "3.0"}
  - register_thing:
      fleet: pk
      template: template.json
      parameters: {ThingName: "{thing_name}"}
      csr_parameter: CSR
"""


def package_shadow(data: Any, thing: str) -> dict[str, Any]:
    body = data.get_thing_shadow(thingName=thing, shadowName="$package")["payload"].read()
    return json.loads(body)["state"]["reported"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLocalCore]:
    """In `<state>/localcore`, so that `fleetsim run/cleanup --state-dir <state>` use it."""
    running = start_core(tmp_path_factory.mktemp("packages") / "state" / "localcore")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def data(core: RunningLocalCore) -> Any:
    return aws_client(core.api_url, "iot-data")


def test_packages_and_versions_have_aws_shapes_and_lifecycle(iot: Any) -> None:
    created = iot.create_package(packageName="shapes", description="firmware")
    assert created["packageArn"].endswith(":package/shapes")
    assert created["packageArn"].startswith("arn:aws:iot:us-east-1:")
    version = iot.create_package_version(packageName="shapes", versionName="1.0.0",
                                         attributes={"file": "s3://b/k"})
    assert version["status"] == "DRAFT"
    assert version["packageVersionArn"].endswith(":package/shapes/version/1.0.0")
    got = iot.get_package_version(packageName="shapes", versionName="1.0.0")
    assert got["attributes"] == {"file": "s3://b/k"} and "creationDate" in got

    # DRAFT: attributes can change; a DRAFT version cannot be deprecated nor be the default.
    iot.update_package_version(packageName="shapes", versionName="1.0.0",
                               attributes={"file": "s3://b/k2"})
    with pytest.raises(ClientError) as e:
        iot.update_package_version(packageName="shapes", versionName="1.0.0",
                                   action="DEPRECATE")
    assert code_of(e) == "ConflictException"
    with pytest.raises(ClientError) as e:
        iot.update_package(packageName="shapes", defaultVersionName="1.0.0")
    assert code_of(e) == "ConflictException"

    # PUBLISHED: only the description changes; it can be the default, deprecated, re-published.
    iot.update_package_version(packageName="shapes", versionName="1.0.0", action="PUBLISH")
    with pytest.raises(ClientError) as e:
        iot.update_package_version(packageName="shapes", versionName="1.0.0",
                                   attributes={"file": "other"})
    assert code_of(e) == "ConflictException"
    iot.update_package_version(packageName="shapes", versionName="1.0.0", description="ok")
    iot.update_package(packageName="shapes", defaultVersionName="1.0.0")
    assert iot.get_package(packageName="shapes")["defaultVersionName"] == "1.0.0"
    iot.update_package_version(packageName="shapes", versionName="1.0.0", action="DEPRECATE")
    listed = iot.list_package_versions(packageName="shapes", status="DEPRECATED")
    assert [v["versionName"] for v in listed["packageVersionSummaries"]] == ["1.0.0"]
    iot.update_package_version(packageName="shapes", versionName="1.0.0", action="PUBLISH")
    assert iot.get_package_version(packageName="shapes",
                                   versionName="1.0.0")["status"] == "PUBLISHED"

    # The default version and a package with versions cannot be deleted.
    with pytest.raises(ClientError) as e:
        iot.delete_package_version(packageName="shapes", versionName="1.0.0")
    assert code_of(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        iot.delete_package(packageName="shapes")
    assert code_of(e) == "ValidationException"
    iot.update_package(packageName="shapes", unsetDefaultVersion=True)
    assert "defaultVersionName" not in iot.get_package(packageName="shapes")
    iot.delete_package_version(packageName="shapes", versionName="1.0.0")
    iot.delete_package(packageName="shapes")
    with pytest.raises(ClientError) as e:
        iot.get_package(packageName="shapes")
    assert code_of(e) == "ResourceNotFoundException"


def test_package_errors(iot: Any) -> None:
    iot.create_package(packageName="errs")
    with pytest.raises(ClientError) as e:
        iot.create_package(packageName="errs")
    assert code_of(e) == "ConflictException"
    with pytest.raises(ClientError) as e:
        iot.create_package(packageName="bad/name")
    assert code_of(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        iot.create_package_version(packageName="nope", versionName="1")
    assert code_of(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        iot.create_package_version(packageName="errs", versionName="1",
                                   attributes={"a": "x" * 4000})
    assert code_of(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        iot.get_package_version(packageName="errs", versionName="9")
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        iot.update_package(packageName="errs", defaultVersionName="1", unsetDefaultVersion=True)
    assert code_of(e) == "ValidationException"
    # Deleting what is not there succeeds (neither operation lists ResourceNotFoundException).
    iot.delete_package_version(packageName="errs", versionName="9")
    iot.delete_package(packageName="never-made")


def test_list_packages_pages(iot: Any) -> None:
    for i in range(5):
        iot.create_package(packageName=f"page-{i}")
    names: list[str] = []
    token: dict[str, str] = {}
    while True:
        out = iot.list_packages(maxResults=2, **token)
        names += [p["packageName"] for p in out["packageSummaries"]]
        if "nextToken" not in out:
            break
        token = {"nextToken": out["nextToken"]}
    assert [n for n in names if n.startswith("page-")] == [f"page-{i}" for i in range(5)]


def test_package_configuration(iot: Any) -> None:
    assert iot.get_package_configuration()["versionUpdateByJobsConfig"]["enabled"] is False
    role = "arn:aws:iam::123456789012:role/packages"
    iot.update_package_configuration(versionUpdateByJobsConfig={"enabled": True,
                                                                "roleArn": role})
    assert iot.get_package_configuration()["versionUpdateByJobsConfig"] == {
        "enabled": True, "roleArn": role}


def _package(iot: Any, name: str, *versions: str) -> None:
    iot.create_package(packageName=name)
    for v in versions:
        iot.create_package_version(packageName=name, versionName=v)
        iot.update_package_version(packageName=name, versionName=v, action="PUBLISH")


def test_register_thing_writes_package_versions_to_the_package_shadow(
        iot: Any, data: Any) -> None:
    _package(iot, "agent", "2.1.0")
    _package(iot, "os", "5.0", "5.1")
    body = template({"agent": "2.1.0", "os": "5.0"})
    out = iot.register_thing(templateBody=body, parameters={
        "ThingName": "pkg-thing", "CSR": csr_pem("pkg-thing")})
    assert out["resourceArns"]["thing"].endswith(":thing/pkg-thing")
    assert package_shadow(data, "pkg-thing") == {"agent": {"version": "2.1.0"},
                                                 "os": {"version": "5.0"}}

    # Again with another version: DO_NOTHING (the default) keeps, FAIL refuses, REPLACE sets.
    again = {"ThingName": "pkg-thing", "CSR": csr_pem("pkg-thing")}
    iot.register_thing(templateBody=template({"os": "5.1"}), parameters=again)
    assert package_shadow(data, "pkg-thing")["os"] == {"version": "5.0"}
    with pytest.raises(ClientError) as e:
        iot.register_thing(templateBody=template({"os": "5.1"}, override="FAIL"),
                           parameters={"ThingName": "pkg-thing", "CSR": csr_pem("pkg-thing")})
    assert code_of(e) == "ResourceConflictsException"
    iot.register_thing(templateBody=template({"os": "5.1"}, override="REPLACE"),
                       parameters={"ThingName": "pkg-thing", "CSR": csr_pem("pkg-thing")})
    assert package_shadow(data, "pkg-thing") == {"os": {"version": "5.1"}}


def test_package_versions_from_parameters(iot: Any, data: Any) -> None:
    _package(iot, "sensor-fw", "7")
    body = json.loads(template({"sensor-fw": {"Ref": "Firmware"}}))
    body["Parameters"]["Firmware"] = {"Type": "String", "Default": "7"}
    iot.register_thing(templateBody=json.dumps(body), parameters={
        "ThingName": "param-thing", "CSR": csr_pem("param-thing")})
    assert package_shadow(data, "param-thing") == {"sensor-fw": {"version": "7"}}


@pytest.mark.parametrize(("versions", "says"), [
    ({"absent-package": "1"}, "Package absent-package not found"),
    ({"agent2": "9.9"}, "Version 9.9 of package agent2 not found"),
])
def test_template_naming_a_missing_package_or_version_creates_nothing(
        iot: Any, data: Any, versions: dict[str, str], says: str) -> None:
    if "agent2" in versions:
        _package(iot, "agent2", "1.0")
    before = counts(iot)
    with pytest.raises(ClientError) as e:
        iot.register_thing(templateBody=template(versions), parameters={
            "ThingName": "never-thing", "CSR": csr_pem("never-thing")})
    assert code_of(e) == "ResourceRegistrationFailureException"
    assert says in str(e.value)
    assert counts(iot) == before
    with pytest.raises(ClientError) as e:
        data.get_thing_shadow(thingName="never-thing", shadowName="$package")
    assert code_of(e) == "ResourceNotFoundException"


def test_template_with_package_versions_not_an_object_is_invalid(iot: Any) -> None:
    with pytest.raises(ClientError) as e:
        iot.register_thing(templateBody=template(["agent", "1"]), parameters={
            "ThingName": "x-thing", "CSR": csr_pem("x-thing")})
    assert code_of(e) == "InvalidRequestException"
    assert "PackageVersions must be an object" in str(e.value)


@pytest.mark.interop
@pytest.mark.skipif(not AWS.exists(), reason="AWS CLI not installed (make tools)")
def test_package_commands_with_the_aws_cli(core: RunningLocalCore, iot: Any,
                                           tmp_path: Path) -> None:
    made = aws_json(core, tmp_path, "iot", "create-package", "--package-name", "cli-pkg")
    assert made["packageName"] == "cli-pkg"
    version = aws_json(core, tmp_path, "iot", "create-package-version", "--package-name",
                       "cli-pkg", "--version-name", "1.2.3", "--attributes", "channel=beta")
    assert version["status"] == "DRAFT"
    got = aws_json(core, tmp_path, "iot", "get-package-version", "--package-name", "cli-pkg",
                   "--version-name", "1.2.3")
    assert got["attributes"] == {"channel": "beta"}
    listed = aws_json(core, tmp_path, "iot", "list-package-versions", "--package-name",
                      "cli-pkg")
    assert [v["versionName"] for v in listed["packageVersionSummaries"]] == ["1.2.3"]

    (tmp_path / "template.json").write_text(template({"cli-pkg": "1.2.3"}))
    parameters = json.dumps({"ThingName": "cli-pkg-thing", "CSR": csr_pem("cli-pkg-thing")})
    aws(core, tmp_path, "iot", "register-thing", "--template-body", "file://template.json",
        "--parameters", parameters)
    aws(core, tmp_path, "iot-data", "get-thing-shadow", "--thing-name", "cli-pkg-thing",
        "--shadow-name", "$package", "shadow.json")
    shadow = json.loads((tmp_path / "shadow.json").read_text())
    assert shadow["state"]["reported"] == {"cli-pkg": {"version": "1.2.3"}}

    refused = aws(core, tmp_path, "iot", "delete-package", "--package-name", "cli-pkg",
                  check=False)
    assert refused.returncode != 0 and "ValidationException" in refused.stderr
    aws(core, tmp_path, "iot", "delete-package-version", "--package-name", "cli-pkg",
        "--version-name", "1.2.3")
    aws(core, tmp_path, "iot", "delete-package", "--package-name", "cli-pkg")
    gone = aws(core, tmp_path, "iot", "get-package", "--package-name", "cli-pkg", check=False)
    assert gone.returncode != 0 and "ResourceNotFoundException" in gone.stderr


def test_a_scenario_declares_the_package_its_template_uses_and_cleanup_removes_it(
        core: RunningLocalCore, iot: Any, data: Any, tmp_path: Path) -> None:
    (tmp_path / "template.json").write_text(template({"pkrun-agent": "3.0"}))
    (tmp_path / "s.yaml").write_text(SCENARIO)
    kept = fleetsim(core, tmp_path, "run", "s.yaml", "--keep")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert iot.get_package_version(packageName="pkrun-agent",
                                   versionName="3.0")["status"] == "PUBLISHED"
    things = [t["thingName"] for t in iot.list_things()["things"]
              if t["thingName"].startswith("pkrun-")]
    assert len(things) == 2
    for thing in things:
        assert package_shadow(data, thing) == {"pkrun-agent": {"version": "3.0"}}
    # Someone made it the default since: clean-up unsets it before deleting the version.
    iot.update_package(packageName="pkrun-agent", defaultVersionName="3.0")

    out = fleetsim(core, tmp_path, "cleanup")
    assert out.returncode == 0, out.stdout + out.stderr
    with pytest.raises(ClientError) as e:
        iot.get_package(packageName="pkrun-agent")
    assert code_of(e) == "ResourceNotFoundException"
    for thing in things:  # on AWS a shadow outlives its thing: journaled, and deleted
        with pytest.raises(ClientError) as e:
            package_shadow(data, thing)
        assert code_of(e) == "ResourceNotFoundException"


def test_cleanup_prefix_removes_packages_with_all_their_versions(
        core: RunningLocalCore, iot: Any, tmp_path: Path) -> None:
    _package(iot, "pfxpkg-a", "1", "2")
    iot.update_package(packageName="pfxpkg-a", defaultVersionName="2")
    iot.create_package_version(packageName="pfxpkg-a", versionName="draft")
    _package(iot, "keeppkg", "1")
    out = fleetsim(core, tmp_path, "cleanup", "--prefix", "pfxpkg-")
    assert out.returncode == 0, out.stdout + out.stderr
    names = [p["packageName"] for p in iot.list_packages()["packageSummaries"]]
    assert "pfxpkg-a" not in names and "keeppkg" in names
    assert [v["versionName"] for v in iot.list_package_versions(
        packageName="keeppkg")["packageVersionSummaries"]] == ["1"]
