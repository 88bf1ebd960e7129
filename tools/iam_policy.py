"""Decides one request against identity policies the way IAM does, so tests can show what a policy
allows without an AWS account.

IAM user guide, "Policy evaluation logic" (reference_policies_evaluation-logic.html) and "The
difference between explicit and implicit denies": an applicable Deny statement denies the request
whatever else allows it; otherwise an applicable Allow statement allows it; otherwise it is denied
implicitly. A statement applies when its Action (or NotAction), its Resource (or NotResource) and
every condition of its Condition block match the request.

Conditions follow "IAM JSON policy elements: Condition operators" and "Conditions with multiple
context keys or values": operators are ANDed, so are the keys under one operator, and the values
of one key are ORed; a key missing from the request makes the condition false, except with
...IfExists (true) and Null (which tests for presence); context key names are case-insensitive.
Policy variables (`${aws:userid}`) follow "IAM policy elements: Variables and tags": one that
cannot be resolved matches nothing.

Only identity-based policies of one account are modelled: no resource policies, permission
boundaries, SCPs or session policies. Only the operators these project's policies use are known;
any other operator, qualifier or element raises UnsupportedPolicy instead of being taken to
match, so a policy this evaluator cannot read is never reported as safe.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

# Policy variables are substituted only in this version of the policy language ("Variables and tags").
POLICY_VERSION = "2012-10-17"
STATEMENT_ELEMENTS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
# ${*}, ${?} and ${$}: how a policy writes these characters literally ("Variables and tags").
ESCAPED_CHARACTERS = {"*", "?", "$"}
VARIABLE = re.compile(r"\$\{([^}]*)\}")
ANY_VALUE = "ForAnyValue:"
IF_EXISTS = "IfExists"
NULL = "Null"  # tests whether a key is present; takes neither IfExists nor a set operator

ContextValue = str | Sequence[str]


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not model; it must not be guessed at."""


class Decision(enum.Enum):
    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicitly denied"
    IMPLICIT_DENY = "implicitly denied"


@dataclass(frozen=True)
class Request:
    action: str  # service:Action
    resource: str  # an ARN, or "*" for actions without a resource type
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    def value(self, key: str) -> ContextValue | None:
        """The context key's value; key names are case-insensitive ("IAM JSON policy elements: Condition")."""
        wanted = key.lower()
        return next((value for name, value in self.context.items() if name.lower() == wanted), None)


def evaluate(policies: Iterable[Mapping], request: Request) -> Decision:
    statements = [statement for policy in policies for statement in _statements(policy)]
    applicable = [statement for statement in statements if _applies(statement, request)]
    if any(statement["Effect"] == "Deny" for statement in applicable):
        return Decision.EXPLICIT_DENY
    if applicable:
        return Decision.ALLOWED
    return Decision.IMPLICIT_DENY


def canonical(policy: Mapping) -> dict:
    """The policy with each Action, NotAction, Resource and NotResource as a sorted list: IAM reads
    them as sets, and CDK (with the @aws-cdk/aws-iam:minimizePolicies flag of cdk.json) sorts them."""
    def statement(entry: Mapping) -> dict:
        return {key: sorted(_as_list(value)) if key in {"Action", "NotAction", "Resource", "NotResource"} else value
                for key, value in entry.items()}

    return {**policy, "Statement": [statement(entry) for entry in _statements(policy)]}


def _statements(policy: Mapping) -> list[Mapping]:
    if policy.get("Version") != POLICY_VERSION:
        raise UnsupportedPolicy(f"Version {policy.get('Version')!r}: only {POLICY_VERSION} resolves policy variables")
    statements = policy["Statement"]
    statements = [statements] if isinstance(statements, Mapping) else list(statements)
    for statement in statements:
        unknown = set(statement) - STATEMENT_ELEMENTS
        if unknown:  # e.g. Principal: a resource policy's element, whose evaluation is not modelled
            raise UnsupportedPolicy(f"statement {statement.get('Sid')!r}: unknown element(s) {sorted(unknown)}")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise UnsupportedPolicy(f"statement {statement.get('Sid')!r}: Effect {statement.get('Effect')!r}")
        for element, negated in (("Action", "NotAction"), ("Resource", "NotResource")):
            if (element in statement) == (negated in statement):
                raise UnsupportedPolicy(f"statement {statement.get('Sid')!r}: needs one of {element}, {negated}")
        # Every condition is parsed before any is evaluated, so an unknown operator raises even in a
        # statement whose action or resource does not match this request.
        for operator in statement.get("Condition", {}):
            _operator(operator)
    return statements


def _applies(statement: Mapping, request: Request) -> bool:
    return (_element_matches(statement, "Action", request.action, request, ignore_case=True)
            and _element_matches(statement, "Resource", request.resource, request, ignore_case=False)
            and all(_condition_holds(operator, keys, request)
                    for operator, keys in statement.get("Condition", {}).items()))


def _element_matches(statement: Mapping, element: str, value: str, request: Request, ignore_case: bool) -> bool:
    negated = f"Not{element}" in statement
    patterns = _as_list(statement[f"Not{element}" if negated else element])
    # Action names are case-insensitive, ARNs are not ("IAM JSON policy elements: Action", "Resource").
    matched = any(_matches(pattern, value, request, wildcards=True, ignore_case=ignore_case) for pattern in patterns)
    return matched != negated


def _condition_holds(operator: str, keys: Mapping[str, object], request: Request) -> bool:
    base, if_exists, any_value = _operator(operator)
    return all(_key_holds(base, if_exists, any_value, key, _as_list(values), request) for key, values in keys.items())


def _key_holds(base: str, if_exists: bool, any_value: bool, key: str, values: list, request: Request) -> bool:
    present = request.value(key)
    if base == NULL:  # "true": the key must be absent; "false": it must be present
        return any((present is None) == (str(value).lower() == "true") for value in values)
    if present is None:
        return if_exists
    if isinstance(present, str):
        present_values = [present]
    elif any_value:
        present_values = list(present)
    else:
        raise UnsupportedPolicy(f"{base} on {key}, which has several values: name a set operator ({ANY_VALUE}...)")
    test = OPERATORS[base]
    return any(test(one, str(value), request) for one in present_values for value in values)


def _operator(name: str) -> tuple[str, bool, bool]:
    """(base operator, IfExists, ForAnyValue) of an operator name such as ForAnyValue:StringLikeIfExists."""
    any_value = name.startswith(ANY_VALUE)
    base = name.removeprefix(ANY_VALUE)
    if_exists = base.endswith(IF_EXISTS)
    base = base.removesuffix(IF_EXISTS)
    # IAM allows no IfExists on Null ("Condition operators"); a set operator on Null means nothing.
    if not (base in OPERATORS or (base == NULL and not if_exists and not any_value)):
        raise UnsupportedPolicy(f"condition operator {name!r} is not modelled; known: {', '.join(OPERATORS)}, "
                                f"{NULL}, each but {NULL} with {IF_EXISTS} or {ANY_VALUE}")
    return base, if_exists, any_value


def _string_equals(present: str, value: str, request: Request) -> bool:
    return _matches(value, present, request, wildcards=False, ignore_case=False)


def _string_equals_ignore_case(present: str, value: str, request: Request) -> bool:
    return _matches(value, present, request, wildcards=False, ignore_case=True)


def _string_like(present: str, value: str, request: Request) -> bool:
    return _matches(value, present, request, wildcards=True, ignore_case=False)


def _bool(present: str, value: str, _request: Request) -> bool:
    return present.lower() == value.lower()


def _date_less_than(present: str, value: str, _request: Request) -> bool:
    return _instant(present) < _instant(value)


OPERATORS: dict[str, Callable[[str, str, Request], bool]] = {
    "StringEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ignore_case,
    "StringLike": _string_like,
    "Bool": _bool,
    "DateLessThan": _date_less_than,
}


def _matches(pattern: str, value: str, request: Request, wildcards: bool, ignore_case: bool) -> bool:
    """Whether value matches the policy's pattern, its variables resolved from the request; `*` and
    `?` are wildcards only where the operator or element takes them."""
    parts: list[str] = []
    position = 0
    for variable in VARIABLE.finditer(pattern):
        parts.append(_literal(pattern[position:variable.start()], wildcards))
        name = variable.group(1)
        if name in ESCAPED_CHARACTERS:
            parts.append(re.escape(name))
        elif "," in name:
            raise UnsupportedPolicy(f"policy variable {variable.group(0)!r}: default values are not modelled")
        else:
            resolved = request.value(name)
            if not isinstance(resolved, str):  # missing, or a multivalued key: the variable cannot resolve
                return False
            parts.append(re.escape(resolved))
        position = variable.end()
    parts.append(_literal(pattern[position:], wildcards))
    return re.fullmatch("".join(parts), value, re.IGNORECASE if ignore_case else 0) is not None


def _literal(text: str, wildcards: bool) -> str:
    if not wildcards:
        return re.escape(text)
    return "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in text)


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise UnsupportedPolicy(f"date {text!r} has no time zone; use ISO 8601 with Z or an offset")
    return moment


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]
