"""tools/iam_policy.py decides as IAM does: each rule of the IAM user guide's "Policy evaluation
logic", "Condition operators", "Conditions with multiple context keys or values" and "Variables and
tags" that the evaluator models, and a refusal for whatever it does not model."""

import pytest

from tools.iam_policy import Decision, Request, UnsupportedPolicy, evaluate

INSTANCE = "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0"
ALICE = "AROAEXAMPLEROLEALICE1:alice"


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action="ec2:StartInstances", resource=INSTANCE, **condition) -> dict:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    return {**statement, "Condition": condition} if condition else statement


def decide(statement: dict, action="ec2:StartInstances", resource=INSTANCE, **context) -> Decision:
    return evaluate([policy(statement)], Request(action, resource, context))


# Policy evaluation logic: explicit deny, then allow, else implicit deny.

def test_a_matching_allow_allows_and_nothing_else_does():
    assert decide(allow()) is Decision.ALLOWED
    assert decide(allow(action="ec2:StopInstances")) is Decision.IMPLICIT_DENY
    assert evaluate([], Request("ec2:StartInstances", INSTANCE)) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize("deny_first", [True, False])
def test_an_explicit_deny_wins_over_any_allow_in_any_order_and_any_policy(deny_first):
    deny = {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}
    policies = [policy(deny), policy(allow())] if deny_first else [policy(allow()), policy(deny)]
    assert evaluate(policies, Request("ec2:StartInstances", INSTANCE)) is Decision.EXPLICIT_DENY


def test_a_deny_whose_condition_fails_does_not_apply():
    deny = {"Effect": "Deny", "Action": "ec2:*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "red"}}}
    policies = [policy(deny, allow())]
    assert evaluate(policies, Request("ec2:StartInstances", INSTANCE, {"aws:ResourceTag/team": "blue"})) \
        is Decision.ALLOWED
    assert evaluate(policies, Request("ec2:StartInstances", INSTANCE, {"aws:ResourceTag/team": "red"})) \
        is Decision.EXPLICIT_DENY


# Action and Resource.

def test_actions_match_case_insensitively_with_wildcards():
    assert decide(allow(action="EC2:start*")) is Decision.ALLOWED
    assert decide(allow(action="ec2:St?rtInstances")) is Decision.ALLOWED
    assert decide(allow(action=["s3:GetObject", "ec2:Describe*"])) is Decision.IMPLICIT_DENY


def test_not_action_matches_every_other_action():
    not_action = {"Effect": "Allow", "NotAction": "ec2:TerminateInstances", "Resource": "*"}
    assert decide(not_action) is Decision.ALLOWED
    assert decide(not_action, action="ec2:TerminateInstances") is Decision.IMPLICIT_DENY


def test_resources_match_case_sensitively_with_wildcards():
    assert decide(allow(resource="arn:aws:ec2:*:*:instance/*")) is Decision.ALLOWED
    assert decide(allow(resource="arn:aws:ec2:us-east-?:111122223333:instance/i-*")) is Decision.ALLOWED
    assert decide(allow(resource="arn:aws:ec2:*:*:Instance/*")) is Decision.IMPLICIT_DENY
    assert decide(allow(resource="arn:aws:ec2:*:*:volume/*")) is Decision.IMPLICIT_DENY


def test_not_resource_matches_every_other_resource():
    not_resource = {"Effect": "Allow", "Action": "ec2:StartInstances", "NotResource": "arn:aws:ec2:*:*:volume/*"}
    assert decide(not_resource) is Decision.ALLOWED
    assert decide(not_resource, resource="arn:aws:ec2:us-east-1:111122223333:volume/vol-1") is Decision.IMPLICIT_DENY


# Condition operators, and keys missing from the request.

def test_string_equals_is_exact_and_false_when_the_key_is_missing():
    statement = allow(StringEquals={"aws:ResourceTag/ai-workbench": "alice"})
    assert decide(statement, **{"aws:ResourceTag/ai-workbench": "alice"}) is Decision.ALLOWED
    assert decide(statement, **{"aws:ResourceTag/ai-workbench": "Alice"}) is Decision.IMPLICIT_DENY
    assert decide(statement, **{"aws:ResourceTag/ai-workbench": "alice*"}) is Decision.IMPLICIT_DENY
    assert decide(statement) is Decision.IMPLICIT_DENY


def test_string_equals_treats_star_as_a_plain_character():
    statement = allow(StringEquals={"aws:ResourceTag/ai-workbench": "ali*"})
    assert decide(statement, **{"aws:ResourceTag/ai-workbench": "alice"}) is Decision.IMPLICIT_DENY
    assert decide(statement, **{"aws:ResourceTag/ai-workbench": "ali*"}) is Decision.ALLOWED


def test_string_equals_ignore_case():
    statement = allow(StringEqualsIgnoreCase={"aws:ResourceTag/ai-workbench": "alice"})
    assert decide(statement, **{"aws:ResourceTag/ai-workbench": "ALICE"}) is Decision.ALLOWED


def test_context_key_names_are_case_insensitive():
    statement = allow(StringEquals={"ssm:resourceTag/ai-workbench": "alice"})
    assert decide(statement, **{"SSM:ResourceTag/AI-Workbench": "alice"}) is Decision.ALLOWED


def test_string_like_wildcards():
    statement = allow(StringLike={"aws:ResourceTag/owner": "al?ce-*"})
    assert decide(statement, **{"aws:ResourceTag/owner": "alice-laptop"}) is Decision.ALLOWED
    assert decide(statement, **{"aws:ResourceTag/owner": "alce-laptop"}) is Decision.IMPLICIT_DENY


def test_a_policy_variable_takes_the_requests_value_literally():
    statement = allow(StringLike={"ssm:resourceTag/aws:ssmmessages:session-id": "${aws:userid}*"})
    session = {"ssm:resourceTag/aws:ssmmessages:session-id": f"{ALICE}-0123456789abcdef0"}
    assert decide(statement, **session, **{"aws:userid": ALICE}) is Decision.ALLOWED
    assert decide(statement, **session, **{"aws:userid": "AROAEXAMPLEROLEBOB00:bob"}) is Decision.IMPLICIT_DENY
    # A '*' in the resolved value is a character, not a wildcard.
    assert decide(statement, **session, **{"aws:userid": "*"}) is Decision.IMPLICIT_DENY


def test_an_unresolvable_policy_variable_matches_nothing():
    statement = allow(StringLike={"aws:ResourceTag/owner": "${aws:username}"})
    assert decide(statement, **{"aws:ResourceTag/owner": ""}) is Decision.IMPLICIT_DENY
    assert decide(allow(resource="arn:aws:ec2:*:*:instance/${aws:username}")) is Decision.IMPLICIT_DENY


def test_escaped_characters_are_literal():
    statement = allow(StringLike={"aws:ResourceTag/owner": "${*}x"})
    assert decide(statement, **{"aws:ResourceTag/owner": "*x"}) is Decision.ALLOWED
    assert decide(statement, **{"aws:ResourceTag/owner": "ax"}) is Decision.IMPLICIT_DENY


def test_bool_if_exists_passes_a_missing_key_and_bool_does_not():
    if_exists = allow(BoolIfExists={"ssm:SessionDocumentAccessCheck": "true"})
    assert decide(if_exists) is Decision.ALLOWED
    assert decide(if_exists, **{"ssm:SessionDocumentAccessCheck": "true"}) is Decision.ALLOWED
    assert decide(if_exists, **{"ssm:SessionDocumentAccessCheck": "false"}) is Decision.IMPLICIT_DENY
    assert decide(allow(Bool={"ssm:SessionDocumentAccessCheck": "true"})) is Decision.IMPLICIT_DENY


def test_date_less_than_is_strict_and_compares_instants_across_offsets():
    statement = allow(DateLessThan={"aws:CurrentTime": "2026-12-01T17:00:00Z"})
    assert decide(statement, **{"aws:CurrentTime": "2026-12-01T16:59:59Z"}) is Decision.ALLOWED
    assert decide(statement, **{"aws:CurrentTime": "2026-12-01T17:00:00Z"}) is Decision.IMPLICIT_DENY
    assert decide(statement, **{"aws:CurrentTime": "2026-12-01T17:30:00+01:00"}) is Decision.ALLOWED
    assert decide(statement, **{"aws:CurrentTime": "2026-12-01T17:30:00Z"}) is Decision.IMPLICIT_DENY
    assert decide(statement) is Decision.IMPLICIT_DENY


def test_null_tests_whether_a_key_is_present():
    absent = allow(Null={"aws:ResourceTag/ai-workbench": "true"})
    present = allow(Null={"aws:ResourceTag/ai-workbench": "false"})
    assert decide(absent) is Decision.ALLOWED
    assert decide(present) is Decision.IMPLICIT_DENY
    assert decide(present, **{"aws:ResourceTag/ai-workbench": "bob"}) is Decision.ALLOWED


def test_for_any_value_matches_any_of_a_multivalued_key_and_nothing_when_it_is_missing():
    statement = allow(**{"ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": ["ai-workbench"]}})
    assert decide(statement, **{"aws:TagKeys": ["Name", "AI-Workbench"]}) is Decision.ALLOWED
    assert decide(statement, **{"aws:TagKeys": ["Name"]}) is Decision.IMPLICIT_DENY
    assert decide(statement, **{"aws:TagKeys": []}) is Decision.IMPLICIT_DENY
    assert decide(statement) is Decision.IMPLICIT_DENY


# Conditions with multiple keys or values: values OR, keys AND, operators AND.

def test_values_of_one_key_are_ored():
    statement = allow(StringEquals={"aws:ResourceTag/ai-workbench": ["alice", "bob"]})
    assert decide(statement, **{"aws:ResourceTag/ai-workbench": "bob"}) is Decision.ALLOWED


def test_keys_of_one_operator_and_operators_are_anded():
    statement = allow(StringEquals={"aws:ResourceTag/ai-workbench": "alice", "aws:ResourceTag/team": "red"},
                      DateLessThan={"aws:CurrentTime": "2026-12-01T17:00:00Z"})
    everything = {"aws:ResourceTag/ai-workbench": "alice", "aws:ResourceTag/team": "red",
                  "aws:CurrentTime": "2026-12-01T09:00:00Z"}
    assert decide(statement, **everything) is Decision.ALLOWED
    for key in everything:
        assert decide(statement, **{k: v for k, v in everything.items() if k != key}) is Decision.IMPLICIT_DENY


# What the evaluator does not model raises instead of being taken to match.

@pytest.mark.parametrize("operator", ["StringEqualz", "NumericLessThan", "ForAllValues:StringEquals", "NullIfExists",
                                      "ForAnyValue:Null", "IfExists"])
def test_an_unknown_operator_raises_even_where_the_statement_would_not_apply(operator):
    # A Deny with an operator it cannot read must not be dropped as "does not apply" (which would
    # turn into an allow), nor an Allow taken to match.
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {operator: {"aws:userid": "x"}}}
    with pytest.raises(UnsupportedPolicy, match="is not modelled"):
        evaluate([policy(deny, allow())], Request("ec2:StartInstances", INSTANCE))


def test_a_single_value_operator_on_a_multivalued_key_raises():
    with pytest.raises(UnsupportedPolicy, match="several values"):
        decide(allow(StringEquals={"aws:TagKeys": "ai-workbench"}), **{"aws:TagKeys": ["ai-workbench"]})


@pytest.mark.parametrize(("document", "message"), [
    (policy({**allow(), "Principal": "*"}), "unknown element"),
    (policy({**allow(), "Effect": "allow"}), "Effect 'allow'"),
    (policy({"Effect": "Allow", "Action": "*"}), "needs one of Resource, NotResource"),
    ({"Version": "2008-10-17", "Statement": [allow()]}, "only 2012-10-17"),
    (policy(allow(StringLike={"aws:ResourceTag/owner": "${aws:username, 'nobody'}"})), "default values"),
])
def test_what_the_evaluator_does_not_model_raises(document, message):
    with pytest.raises(UnsupportedPolicy, match=message):
        evaluate([document], Request("ec2:StartInstances", INSTANCE, {"aws:ResourceTag/owner": "x"}))


def test_a_date_without_a_time_zone_raises():
    with pytest.raises(UnsupportedPolicy, match="no time zone"):
        decide(allow(DateLessThan={"aws:CurrentTime": "2026-12-01T17:00:00"}),
               **{"aws:CurrentTime": "2026-12-01T09:00:00Z"})
