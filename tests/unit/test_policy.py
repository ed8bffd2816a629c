"""The IoT policy evaluator: effects, wildcards, variables, conditions."""

from __future__ import annotations

import pytest

from fleetsim.localcore.policy import (
    CompiledPolicies,
    Decision,
    RequestContext,
    compiled_for,
    evaluate,
    resource_arn,
)
from fleetsim.localcore.policy_document import parse_policy_document
from fleetsim.localcore.principal import Principal, ThingInfo

ARN = "arn:aws:iot:us-east-1:123456789012"


def doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource, **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def principal(things: tuple[ThingInfo, ...] = (), cn: str | None = "dev-cn") -> Principal:
    return Principal("c" * 64, f"{ARN}:cert/{'c' * 64}", "ACTIVE", cn, things=things)


def ctx(client_id: str = "dev-1", **kw) -> RequestContext:
    return RequestContext(client_id, kw.pop("principal", principal()), **kw)


def test_workshop_allow_all_policy_parsed_by_create_policy():
    policy = parse_policy_document(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action": "iot:*",'
        '"Resource":"*"}]}')
    for action, kind in [("iot:Connect", "client"), ("iot:Publish", "topic"),
                         ("iot:Subscribe", "topicfilter"), ("iot:Receive", "topic")]:
        assert evaluate([policy], action, f"{ARN}:{kind}/x", ctx()) is Decision.ALLOW


def test_no_statement_is_implicit_deny_and_explicit_deny_wins():
    p = doc(allow("iot:Publish", f"{ARN}:topic/a/*"), deny("iot:Publish", f"{ARN}:topic/a/secret"))
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/b", ctx()) is Decision.IMPLICIT_DENY
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/a/x", ctx()) is Decision.ALLOW
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/a/secret", ctx()) is Decision.EXPLICIT_DENY
    # A deny in another policy of the same principal also wins.
    other = doc(deny("iot:*", "*"))
    assert evaluate([p, other], "iot:Publish", f"{ARN}:topic/a/x", ctx()).allowed is False


def test_wildcards_star_and_question_mark_mqtt_wildcards_are_literal():
    p = doc(allow(["iot:Pub*"], [f"{ARN}:topic/room?/temp", f"{ARN}:topicfilter/a/+/b"]))
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/room1/temp", ctx()).allowed
    assert not evaluate([p], "iot:Publish", f"{ARN}:topic/room12/temp", ctx()).allowed
    assert not evaluate([p], "iot:Subscribe", f"{ARN}:topicfilter/a/+/b", ctx()).allowed
    p2 = doc(allow("iot:Subscribe", f"{ARN}:topicfilter/a/+/b"))
    assert evaluate([p2], "iot:Subscribe", f"{ARN}:topicfilter/a/+/b", ctx()).allowed
    assert not evaluate([p2], "iot:Subscribe", f"{ARN}:topicfilter/a/x/b", ctx()).allowed


def test_action_names_match_case_insensitively_resources_do_not():
    p = doc(allow("IOT:publish", f"{ARN}:topic/Abc"))
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/Abc", ctx()).allowed
    assert not evaluate([p], "iot:Publish", f"{ARN}:topic/abc", ctx()).allowed


def test_client_id_variable_workshop_smart_building_policy():
    p = doc(allow(["iot:Connect"], [f"{ARN}:client/${{iot:ClientId}}"]),
            allow(["iot:Publish"], [f"{ARN}:topic/telemetry/building/one/${{iot:ClientId}}"]))
    c = ctx("group-member")
    assert evaluate([p], "iot:Connect", f"{ARN}:client/group-member", c).allowed
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/telemetry/building/one/group-member",
                    c).allowed
    assert not evaluate([p], "iot:Publish",
                        f"{ARN}:topic/telemetry/building/one/group-member_foo", c).allowed


def test_variable_values_are_literal_not_wildcards():
    p = doc(allow("iot:Publish", f"{ARN}:topic/d/${{iot:ClientId}}"))
    assert not evaluate([p], "iot:Publish", f"{ARN}:topic/d/anything", ctx("*")).allowed
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/d/*", ctx("*")).allowed
    p2 = doc(allow("iot:Publish", f"{ARN}:topic/lit${{*}}"))
    assert evaluate([p2], "iot:Publish", f"{ARN}:topic/lit*", ctx()).allowed
    assert not evaluate([p2], "iot:Publish", f"{ARN}:topic/litX", ctx()).allowed


def test_thing_variables_resolve_only_when_client_id_is_an_attached_thing():
    thing = ThingInfo("sensor-7", "bulk-type", {"Country": "DE"})
    pr = principal((thing,))
    p = doc(allow("iot:Publish", [
        f"{ARN}:topic/t/${{iot:Connection.Thing.ThingName}}",
        f"{ARN}:topic/type/${{iot:Connection.Thing.ThingTypeName}}",
        f"{ARN}:topic/c/${{iot:Connection.Thing.Attributes[Country]}}"]))
    attached = ctx("sensor-7", principal=pr)
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/t/sensor-7", attached).allowed
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/type/bulk-type", attached).allowed
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/c/DE", attached).allowed
    other = ctx("not-the-thing", principal=pr)
    assert not evaluate([p], "iot:Publish", f"{ARN}:topic/t/sensor-7", other).allowed


def test_exclusive_thing_resolves_thing_variables_whatever_the_client_id():
    thing = ThingInfo("sensor-8", "bulk-type", {"Country": "FR"},
                      principal_type="EXCLUSIVE_THING")
    p = doc(allow("iot:Publish", [
        f"{ARN}:topic/t/${{iot:Connection.Thing.ThingName}}",
        f"{ARN}:topic/c/${{iot:Connection.Thing.Attributes[Country]}}"]),
        allow("iot:Connect", "*", Condition={"Bool": {"iot:Connection.Thing.IsAttached": "true"}}))
    any_id = ctx("some-other-client-id", principal=principal((thing,)))
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/t/sensor-8", any_id).allowed
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/c/FR", any_id).allowed
    assert evaluate([p], "iot:Connect", f"{ARN}:client/some-other-client-id", any_id).allowed
    shared = ThingInfo("sensor-8", "bulk-type", {"Country": "FR"})  # non-exclusive: by name
    other = ctx("some-other-client-id", principal=principal((shared,)))
    assert not evaluate([p], "iot:Connect", f"{ARN}:client/some-other-client-id",
                        other).allowed


def test_group_policies_apply_only_for_the_connection_thing():
    cert_policy = doc(allow("iot:Connect", "*"))
    group_policy = doc(allow("iot:Publish", "*"))
    shared = ThingInfo("member", group_policies=(group_policy,))
    pr = Principal("c" * 64, f"{ARN}:cert/{'c' * 64}", "ACTIVE", None, things=(shared,),
                   certificate_policies=(cert_policy,))
    assert pr.policies_for("member") == (cert_policy, group_policy)
    assert pr.policies_for("someone-else") == (cert_policy,)
    exclusive = Principal("c" * 64, f"{ARN}:cert/{'c' * 64}", "ACTIVE", None,
                          things=(ThingInfo("member", principal_type="EXCLUSIVE_THING",
                                            group_policies=(group_policy,)),),
                          certificate_policies=(cert_policy,))
    assert exclusive.policies_for("someone-else") == (cert_policy, group_policy)


def test_unresolvable_variable_makes_the_statement_not_match():
    # No thing: the Allow with a thing variable never matches; neither does a Deny.
    p = doc(allow("iot:Publish", [f"{ARN}:topic/${{iot:Connection.Thing.ThingName}}",
                                  f"{ARN}:topic/x"]),
            deny("iot:Publish", f"{ARN}:topic/y/${{iot:Connection.Thing.Attributes[missing]}}"),
            allow("iot:Publish", f"{ARN}:topic/y/*"))
    c = ctx("nothing-attached")
    assert not evaluate([p], "iot:Publish", f"{ARN}:topic/x", c).allowed
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/y/z", c).allowed


def test_common_name_variable():
    p = doc(allow("iot:Publish", f"{ARN}:topic/cn/${{iot:Certificate.Subject.CommonName}}"))
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/cn/dev-cn", ctx()).allowed
    no_cn = ctx(principal=principal(cn=None))
    assert not evaluate([p], "iot:Publish", f"{ARN}:topic/cn/dev-cn", no_cn).allowed


def test_is_attached_condition_from_aws_connect_policy_example():
    p = doc(deny("iot:Connect", [f"{ARN}:client/client1", f"{ARN}:client/client2"]),
            allow("iot:Connect", f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
                  Condition={"Bool": {"iot:Connection.Thing.IsAttached": "true"}}))
    pr = principal((ThingInfo("thing-a"), ThingInfo("client1")))
    assert evaluate([p], "iot:Connect", f"{ARN}:client/thing-a", ctx("thing-a", principal=pr)
                    ).allowed
    assert not evaluate([p], "iot:Connect", f"{ARN}:client/client1",
                        ctx("client1", principal=pr)).allowed
    assert not evaluate([p], "iot:Connect", f"{ARN}:client/x", ctx("x", principal=pr)).allowed


def test_connect_attributes_condition():
    p = doc(allow("iot:Connect", f"{ARN}:client/*", Condition={
        "ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}))
    assert evaluate([p], "iot:Connect", f"{ARN}:client/a", ctx("a")).allowed
    assert evaluate([p], "iot:Connect", f"{ARN}:client/a",
                    ctx("a", connect_attributes=("PersistentConnect",))).allowed
    assert not evaluate([p], "iot:Connect", f"{ARN}:client/a",
                        ctx("a", connect_attributes=("PersistentConnect", "LastWill"))).allowed


def test_unknown_condition_operator_never_holds():
    p = doc(allow("iot:Publish", "*", Condition={"NumericLessThan": {"iot:ClientId": "3"}}))
    assert not evaluate([p], "iot:Publish", f"{ARN}:topic/x", ctx()).allowed


def test_not_action_and_not_resource():
    p = doc({"Effect": "Allow", "NotAction": "iot:Connect", "Resource": "*"},
            {"Effect": "Deny", "Action": "iot:Publish", "NotResource": f"{ARN}:topic/ok/*"},
            allow("iot:Connect", f"{ARN}:client/a"))
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/ok/1", ctx()).allowed
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/no", ctx()) is Decision.EXPLICIT_DENY
    assert evaluate([p], "iot:Receive", f"{ARN}:topic/no", ctx()).allowed
    assert evaluate([p], "iot:Connect", f"{ARN}:client/a", ctx()).allowed
    assert not evaluate([p], "iot:Connect", f"{ARN}:client/b", ctx()).allowed


def test_compiled_policies_answer_repeatedly_and_resource_arn_helper():
    compiled = CompiledPolicies([doc(allow("iot:Receive", f"{ARN}:topic/a/*"))], ctx())
    arn = resource_arn("us-east-1", "123456789012", "topic", "a/b")
    assert arn == f"{ARN}:topic/a/b"
    for _ in range(3):
        assert compiled.evaluate("iot:Receive", arn).allowed
        assert not compiled.evaluate("iot:Publish", arn).allowed


@pytest.mark.parametrize("resource", ["*", f"{ARN}:*", f"{ARN}:topic/*"])
def test_star_resources_cover_slashes(resource):
    p = doc(allow("iot:Publish", resource))
    assert evaluate([p], "iot:Publish", f"{ARN}:topic/a/b/c", ctx()).allowed


def test_policies_without_variables_or_conditions_compile_once_for_every_connection():
    fleet = (doc(allow("iot:Connect", "arn:aws:iot:r:1:client/*")),)
    first, second = compiled_for(fleet, ctx("dev-1")), compiled_for(fleet, ctx("dev-2"))
    assert first is second
    assert first.evaluate("iot:Connect", "arn:aws:iot:r:1:client/dev-2") is Decision.ALLOW
    # an equal document that is another object (another policy version) is compiled anew
    assert compiled_for((doc(allow("iot:Connect", "arn:aws:iot:r:1:client/*")),),
                        ctx("dev-1")) is not first


@pytest.mark.parametrize("statement", [
    allow("iot:Connect", "arn:aws:iot:r:1:client/${iot:ClientId}"),
    allow("iot:Connect", "arn:aws:iot:r:1:client/*",
          Condition={"StringEquals": {"iot:ClientId": "dev-1"}}),
])
def test_policies_that_read_the_connection_are_compiled_per_connection(statement):
    policies = (doc(statement),)
    one, two = compiled_for(policies, ctx("dev-1")), compiled_for(policies, ctx("dev-2"))
    assert one is not two
    assert one.evaluate("iot:Connect", "arn:aws:iot:r:1:client/dev-1") is Decision.ALLOW
    assert two.evaluate("iot:Connect", "arn:aws:iot:r:1:client/dev-1") is Decision.IMPLICIT_DENY
