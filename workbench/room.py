"""A workshop in one account (issue 21): the roster, the plan that checks the account's quotas and
prices the event, each participant's fair share of Bedrock, and each participant's access policy.

Pure logic: the only AWS calls are Service Quotas reads through the session the caller passes, and
every function returns data; format_plan renders a plan for a terminal.

A roster is YAML:

    event: june-training                # optional, default the file's name; names the room's stack
    participants: [alice, bob]          # workbench names, as `name` in workbench.yaml
    ends_at: 2026-12-01T17:00:00+01:00  # ISO 8601 with its time zone; access ends then
    instance_type: m7g.xlarge           # optional, default workbench.yaml's
    idle_stop_minutes: 60               # optional, default workbench.yaml's
    budget_usd_per_day: 20              # optional, each participant's Bedrock budget (cline_budget_usd_per_day)
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import botocore.exceptions
import yaml

from workbench import settings
from workbench.instance_types import InstanceShape
from workbench.settings import Model, Settings, stack_name_for
from workbench.snapshots import WORKBENCH_TAG

ROSTER_KEYS = ("event", "participants", "ends_at", "instance_type", "idle_stop_minutes", "budget_usd_per_day")
# app.py synthesizes a room with `-c room=ROSTER`.
ROOM_CONTEXT = "room"
# Tags the room's stack, its participants' workbench stacks (app.py) and what they hold, with the
# event's name: how plan tells a participant's own workbench from another one with the same name.
ROOM_TAG = "ai-workshop"
# The room's own stack: the shared network and the participants' identities (stacks/room_stack.py).
# Not ai-workbench-*, the participants' stacks, so that no participant's name can collide with it.
ROOM_STACK_PREFIX = "ai-workshop-"
# The room's stack keeps the Cline keys' per-minute limits it was deployed with (workshop.room_limits).
CLINE_LIMITS_OUTPUT = "ClineLimitsPerMinute"
ENDS_AT_ALLOWED = "an ISO 8601 time with its time zone, in the future, such as 2026-12-01T17:00:00+01:00"

# Held back from every Bedrock per-minute quota before it is shared, because Bedrock counts more
# against it than the keys' own limits see: it reserves a request's input plus its max_tokens when
# the request starts and counts some models' output tokens several times over (Bedrock user guide,
# "How tokens are counted in Amazon Bedrock"), and each box's LiteLLM counts only its own keys,
# Langfuse's playground and evaluator key among them, which draws on the same quota. A judgment,
# not an AWS figure: raise it if participants see Bedrock's ThrottlingException.
BEDROCK_HEADROOM = Fraction(1, 5)
# Cline sends its ~48 kB system prompt with every turn (shared notes, "Cline, the real client"),
# about 12,000 input tokens at ~4 bytes per token: a tokens-per-minute share below this cannot
# carry one turn a minute, so the plan refuses it.
CLINE_TURN_INPUT_TOKENS = 12_000

# The room's quotas, by the codes issue 21 names. EC2: "Running On-Demand Standard (A, C, D, H, I, M,
# R, T, Z) instances", counted in vCPUs, AWS default 5 (AWS CLI user guide, "Service Quotas examples
# using AWS CLI", get-aws-default-service-quota). VPC: "VPCs per Region", default 5 (Amazon VPC user
# guide, "Amazon VPC quotas", which names the quota but not its code).
EC2_STANDARD_VCPUS = ("ec2", "L-1216C47A")
VPCS_PER_REGION = ("vpc", "L-F678F1CE")
# Every workbench of the room joins one shared network (issue 21).
ROOM_VPCS = 1

# AWS documents Bedrock's per-model quotas by name and no code per model: the Bedrock user guide
# ("Quotas for the bedrock-runtime endpoint") names them "Cross-Region InvokeModel tokens per minute
# for ${model}" and "On-demand InvokeModel tokens per minute for ${model}", and Service Quotas has
# also answered the older wording "Cross-region model inference tokens per minute for ...", with
# "Global cross-region ..." for global inference profiles. So the plan finds a model's quotas by
# these names in ListServiceQuotas and takes each quota's code from the answer.
BEDROCK_QUOTA_NAME = re.compile(
    r"(?P<scope>global cross-region|cross-region|on-demand) (?:model inference|invokemodel) "
    r"(?P<unit>tokens|requests) per minute for (?P<model>.+)", re.IGNORECASE)

# The hourly prices of the README's cost table ("Cost (us-east-1, on demand, November 2026 list
# prices)"): the README and these must change together.
INSTANCE_USD_PER_HOUR = {"m7g.xlarge": 0.1632}
PUBLIC_IPV4_USD_PER_HOUR = 0.005
GP3_USD_PER_GIB_MONTH = 0.08
SECRET_USD_PER_MONTH = 0.40
HOURS_PER_MONTH = 730
PRICES_REGION = "us-east-1"

T = TypeVar("T")


class RosterError(ValueError):
    """A roster setting is missing or not allowed; the message names it, its value and what is allowed."""


@dataclass(frozen=True)
class Roster:
    event: str
    participants: tuple[str, ...]
    ends_at: datetime  # in UTC
    instance: InstanceShape
    idle_stop_minutes: int
    budget_usd_per_day: float

    @property
    def stack_name(self) -> str:
        return f"{ROOM_STACK_PREFIX}{self.event}"

    def participant_overrides(self, name: str) -> dict[str, Any]:
        """What a participant's workbench takes from the roster instead of workbench.yaml."""
        return {"name": name, "instance_type": self.instance.name, "idle_stop_minutes": self.idle_stop_minutes,
                "cline_budget_usd_per_day": self.budget_usd_per_day}


def load_roster(path: Path, workbench: Settings, now: datetime | None) -> Roster:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise RosterError(f"{path}: cannot read the roster ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise RosterError(f"{path}: not valid YAML: {error}") from error
    return parse_roster(raw, workbench, now, default_event=Path(path).stem)


def parse_roster(raw: Any, workbench: Settings, now: datetime | None, default_event: str = "room") -> Roster:
    """The roster, each value checked by settings.py's own check of the workbench.yaml setting it
    becomes for every participant's workbench; what it leaves out comes from workbench.yaml. The
    end must come after `now`, unless None: an existing room read again (the synth of `cdk
    destroy`, after the event)."""
    if not isinstance(raw, dict):
        raise RosterError(f"roster: {raw!r} is not allowed; give a mapping such as "
                          "{participants: [alice, bob], ends_at: 2026-12-01T17:00:00+01:00}")
    try:
        settings._reject_unknown(raw, ROSTER_KEYS, "roster setting")
    except settings.SettingsError as error:
        raise RosterError(f"roster: {error}") from error

    def given(key: str, default: T) -> T:
        return default if raw.get(key) is None else raw[key]

    return Roster(
        event=_checked(settings._name, given("event", default_event),
                       "event" if raw.get("event") is not None else "event (the roster file's name)", "name"),
        participants=_participants(raw.get("participants")),
        ends_at=_ends_at(raw.get("ends_at"), now),
        instance=_checked(settings._instance_shape, given("instance_type", workbench.instance_type),
                          "instance_type", "instance_type"),
        idle_stop_minutes=_checked(settings._idle_stop, given("idle_stop_minutes", workbench.idle_stop_minutes),
                                   "idle_stop_minutes", "idle_stop_minutes"),
        budget_usd_per_day=_checked(settings._cline_budget,
                                    given("budget_usd_per_day", workbench.cline_budget_usd_per_day),
                                    "budget_usd_per_day", "cline_budget_usd_per_day"),
    )


def _checked(check: Callable[[Any], T], value: Any, roster_key: str, settings_key: str) -> T:
    """settings' own check of a value, its message naming the roster's key instead of the setting's."""
    try:
        return check(value)
    except settings.SettingsError as error:
        raise RosterError(f"{roster_key}: {str(error).removeprefix(f'{settings_key}: ')}") from error


def _participants(value: Any) -> tuple[str, ...]:
    allowed = "a list of workbench names such as [alice, bob]"
    if value is None:
        raise RosterError(f"participants: missing; give {allowed}")
    if not isinstance(value, list) or not value:
        raise RosterError(f"participants: {value!r} is not allowed; give {allowed}")
    names = tuple(_checked(settings._name, name, f"participants[{index}]", "name") for index, name in enumerate(value))
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise RosterError(f"participants: {twice[0]!r} is listed twice; each participant needs a name of their own "
                          "(it names their stack and the tag their access is bound to)")
    return names


def _ends_at(value: Any, now: datetime | None) -> datetime:
    if value is None:
        raise RosterError(f"ends_at: missing; give {ENDS_AT_ALLOWED} (each participant's access ends then)")
    moment = value  # YAML reads an unquoted ISO 8601 time as a datetime already
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    shown = value.isoformat() if isinstance(value, date) else repr(value)  # a date or datetime YAML read
    if not isinstance(moment, datetime):
        raise RosterError(f"ends_at: {shown} is not allowed; use {ENDS_AT_ALLOWED}")
    if moment.tzinfo is None:
        raise RosterError(f"ends_at: {shown} has no time zone; use {ENDS_AT_ALLOWED}")
    if now is not None and moment <= now:
        raise RosterError(f"ends_at: {shown} is not in the future (now {now.astimezone(UTC):%Y-%m-%dT%H:%M}Z); "
                          f"use {ENDS_AT_ALLOWED}")
    return moment.astimezone(UTC)


# The plan.

@dataclass(frozen=True)
class Quota:
    service_code: str
    code: str
    name: str
    value: float
    adjustable: bool
    applied: bool  # False: AWS's default, because Service Quotas has no applied value for the account

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any], applied: bool) -> Quota:
        return cls(answer["ServiceCode"], answer["QuotaCode"], answer["QuotaName"], answer["Value"],
                   answer.get("Adjustable", False), applied)


@dataclass(frozen=True)
class Check:
    resource: str
    service_code: str
    region: str
    need: int
    quota: Quota | None  # None: Service Quotas lists no such quota

    @property
    def go(self) -> bool:
        return self.quota is not None and self.quota.value >= self.need

    def remedy(self) -> str:
        """What to do about a no-go."""
        if self.quota is None:
            return (f"Service Quotas lists no such quota; find it with `aws service-quotas list-service-quotas "
                    f"--service-code {self.service_code} --region {self.region}`")
        if not self.quota.adjustable:
            return (f"{self.quota.code} ({self.quota.name}) cannot be raised through Service Quotas; "
                    f"ask AWS Support for {self.need}")
        return (f"{self.quota.code} ({self.quota.name}): aws service-quotas request-service-quota-increase "
                f"--service-code {self.service_code} --quota-code {self.quota.code} --desired-value {self.need} "
                f"--region {self.region}")


@dataclass(frozen=True)
class BedrockShare:
    """One model's quotas and what each participant's Cline key may use of them."""

    model: Model
    tokens: Check
    requests: Check | None  # None: no requests-per-minute quota listed; Bedrock no longer enforces them
    tokens_per_minute: int  # each participant's
    requests_per_minute: int | None

    @property
    def checks(self) -> tuple[Check, ...]:
        return (self.tokens,) if self.requests is None else (self.tokens, self.requests)


@dataclass(frozen=True)
class EventCost:
    participants: int
    hours: int
    workbench_usd_per_hour: float | None  # None: no price here for the instance type
    bedrock_ceiling_usd: float  # every participant spending their whole budget every day

    @property
    def workbenches_usd(self) -> float | None:
        if self.workbench_usd_per_hour is None:
            return None
        return self.participants * self.hours * self.workbench_usd_per_hour


@dataclass(frozen=True)
class Plan:
    roster: Roster
    starts_at: datetime
    checks: tuple[Check, ...]
    bedrock: tuple[BedrockShare, ...]
    cost: EventCost
    taken: tuple[str, ...]  # participants whose workbench stack exists and is not this room's

    @property
    def all_checks(self) -> tuple[Check, ...]:
        return (*self.checks, *(check for share in self.bedrock for check in share.checks))

    @property
    def go(self) -> bool:
        return not self.taken and all(check.go for check in self.all_checks)


def plan(roster: Roster, workbench: Settings, session, starts_at: datetime) -> Plan:
    """Needs against the account's quotas in the session's region (the workbenches') and in each
    model's Bedrock region, each participant's Bedrock share, and the event's cost from starts_at
    (when the workbenches are deployed) to the roster's end."""
    region = session.region_name
    quotas = session.client("service-quotas", region_name=region)
    participants = len(roster.participants)
    checks = (
        Check(f"EC2 on-demand standard vCPUs ({participants} x {roster.instance.name})", "ec2", region,
              participants * roster.instance.vcpus, _quota(quotas, *EC2_STANDARD_VCPUS)),
        Check("VPCs (the room's one shared network)", "vpc", region, ROOM_VPCS, _quota(quotas, *VPCS_PER_REGION)),
    )
    listed: dict[str, list[Quota]] = {}
    for model in workbench.models:
        if model.region not in listed:
            listed[model.region] = _bedrock_quotas(session.client("service-quotas", region_name=model.region))
    shares = tuple(bedrock_share(model, listed[model.region], participants) for model in workbench.models)
    return Plan(roster, starts_at, checks, shares, event_cost(roster, workbench, starts_at),
                taken_names(roster, session.client("cloudformation", region_name=region)))


def taken_names(roster: Roster, cloudformation) -> tuple[str, ...]:
    """Participants whose workbench stack (ai-workbench-NAME) exists without this room's tag: someone's
    own workbench, or another room's participant. Deploying the room would take that stack over and
    move it into the room's network, which replaces its instance and its data volume."""
    taken = []
    for name in roster.participants:
        try:
            (stack,) = cloudformation.describe_stacks(StackName=stack_name_for(name))["Stacks"]
        except botocore.exceptions.ClientError as error:
            # CloudFormation's answer for a stack name that does not exist (or exists no more).
            if error.response["Error"]["Code"] == "ValidationError" and "does not exist" in str(error):
                continue
            raise
        tags = {tag["Key"]: tag["Value"] for tag in stack.get("Tags", [])}
        if tags.get(ROOM_TAG) != roster.event:
            taken.append(name)
    return tuple(taken)


def _quota(client, service_code: str, quota_code: str) -> Quota | None:
    # GetServiceQuota has no answer for a quota whose applied value is not available (its API
    # documentation); AWS's default is then the one in force.
    try:
        answer = client.get_service_quota(ServiceCode=service_code, QuotaCode=quota_code)
        return Quota.from_answer(answer["Quota"], applied=True)
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchResourceException":
            raise
    try:
        answer = client.get_aws_default_service_quota(ServiceCode=service_code, QuotaCode=quota_code)
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] == "NoSuchResourceException":
            return None
        raise
    return Quota.from_answer(answer["Quota"], applied=False)


def _bedrock_quotas(client) -> list[Quota]:
    # Only quotas with an applied value are listed; a model's missing quota is a no-go that says
    # how to look for it, never a guess.
    pages = client.get_paginator("list_service_quotas").paginate(ServiceCode="bedrock")
    return [Quota.from_answer(quota, applied=True) for page in pages for quota in page["Quotas"]]


def quota_model_names(model: Model) -> set[str]:
    """How Bedrock's quota names call a model, in lower case: anthropic.claude-sonnet-4-5-20250929-v1:0
    is "Anthropic Claude Sonnet 4.5 V1", and a version 1 may go unsaid ("Anthropic Claude Haiku 4.5")."""
    provider, _, rest = model.foundation_model_id.partition(".")
    rest = re.sub(r":\d+$", "", rest)  # the revision
    rest = re.sub(r"-\d{8}(?=-|$)", "", rest)  # the release date
    version = re.search(r"-(v\d+)$", rest)
    words: list[str] = [provider]
    for word in (rest[:version.start()] if version else rest).split("-"):
        if word.isdigit() and words[-1].replace(".", "").isdigit():
            words[-1] += f".{word}"  # 4-5 is 4.5
        else:
            words.append(word)
    name = " ".join(words)
    if version is None:
        return {name}
    return {f"{name} {version.group(1)}", name} if version.group(1) == "v1" else {f"{name} {version.group(1)}"}


def _bedrock_scope(model: Model) -> str:
    geo = model.inference_profile_geo
    return "on-demand" if geo is None else "global cross-region" if geo == "global" else "cross-region"


def _bedrock_quota(quotas: Iterable[Quota], model: Model, unit: str) -> Quota | None:
    scope, names = _bedrock_scope(model), quota_model_names(model)
    found = [quota for quota in quotas
             if (parts := BEDROCK_QUOTA_NAME.fullmatch(quota.name)) and parts["scope"].lower() == scope
             and parts["unit"].lower() == unit and parts["model"].lower() in names]
    # Should both wordings be listed for one model, the smaller quota is the one that binds.
    return min(found, key=lambda quota: quota.value, default=None)


def fair_share(quota_value: float, participants: int) -> int:
    """Each participant's part of a per-minute quota: floor(quota x (1 - headroom) / participants)."""
    return math.floor(Fraction(quota_value) * (1 - BEDROCK_HEADROOM) / participants)


def _room_needs(per_participant: int, participants: int) -> int:
    """The smallest quota whose fair share gives every participant per_participant."""
    return math.ceil(Fraction(per_participant * participants) / (1 - BEDROCK_HEADROOM))


def bedrock_share(model: Model, quotas: Iterable[Quota], participants: int) -> BedrockShare:
    quotas = list(quotas)
    scope = _bedrock_scope(model)
    tokens_quota = _bedrock_quota(quotas, model, "tokens")
    tokens = Check(f"{model.name} {scope} tokens per minute (one Cline turn each)", "bedrock", model.region,
                   _room_needs(CLINE_TURN_INPUT_TOKENS, participants), tokens_quota)
    requests_quota = _bedrock_quota(quotas, model, "requests")
    requests = None if requests_quota is None else Check(
        f"{model.name} {scope} requests per minute (one each)", "bedrock", model.region,
        _room_needs(1, participants), requests_quota)
    return BedrockShare(model, tokens, requests,
                        fair_share(tokens_quota.value, participants) if tokens_quota else 0,
                        fair_share(requests_quota.value, participants) if requests_quota else None)


def cline_key_limits(shares: Iterable[BedrockShare]) -> dict[str, dict[str, int]]:
    """The fields of LiteLLM's /key/generate and /key/update (1.108.7) that hold a participant's Cline
    key to its fair share. Bedrock's quotas are per model, so the limits are too, by LiteLLM model
    name: one key-wide tpm_limit would let a participant spend one model's share on another's quota.
    The daily budget is the box's own (cline_budget_usd_per_day, from the roster's budget_usd_per_day)."""
    shares = list(shares)
    return {"model_tpm_limit": {share.model.name: share.tokens_per_minute for share in shares},
            "model_rpm_limit": {share.model.name: share.requests_per_minute for share in shares
                                if share.requests_per_minute is not None}}


def workbench_usd_per_hour(instance_type: str, workbench: Settings) -> float | None:
    """One running workbench, by the README's cost table: the instance, its public IPv4 address, both
    volumes and the secret (snapshots and S3 are cents); None for an instance type not priced here."""
    instance = INSTANCE_USD_PER_HOUR.get(instance_type)
    if instance is None:
        return None
    volumes = (workbench.root_volume_gib + workbench.data_volume_gib) * GP3_USD_PER_GIB_MONTH
    return instance + PUBLIC_IPV4_USD_PER_HOUR + (volumes + SECRET_USD_PER_MONTH) / HOURS_PER_MONTH


def event_cost(roster: Roster, workbench: Settings, starts_at: datetime) -> EventCost:
    """At most what the event costs: every workbench running from starts_at to the end (idle stop
    only lowers it), and every Cline key spending its whole budget on each day it runs."""
    hours = math.ceil((roster.ends_at - starts_at).total_seconds() / 3600)
    participants = len(roster.participants)
    budget_days = math.ceil(hours / 24)  # LiteLLM resets the budget each day from the key's creation
    return EventCost(participants, hours, workbench_usd_per_hour(roster.instance.name, workbench),
                     roster.budget_usd_per_day * participants * budget_days)


def format_plan(room_plan: Plan) -> str:
    roster, cost = room_plan.roster, room_plan.cost
    lines = [f"{len(roster.participants)} participants ({', '.join(roster.participants)}), {roster.instance.name}, "
             f"from {room_plan.starts_at.astimezone(UTC):%Y-%m-%d %H:%M} to {roster.ends_at:%Y-%m-%d %H:%M} UTC "
             f"({cost.hours} h)", ""]
    rows = [("", "resource", "region", "need", "quota", "quota code")]
    for check in room_plan.all_checks:
        quota = check.quota
        shown = "none listed" if quota is None else f"{quota.value:,.0f}" + ("" if quota.applied else " (default)")
        rows.append(("go" if check.go else "NO-GO", check.resource, check.region, f"{check.need:,}", shown,
                     quota.code if quota else "-"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append("(quota: the account's, in the region; what already runs there uses part of it, not counted here)")
    lines += ["", f"Each participant's Cline key carries, per minute (`workbench workshop up` sets it) "
                  f"({float(BEDROCK_HEADROOM):.0%} of each quota held back, the rest "
                  f"shared by {len(roster.participants)}; one Cline turn is ~{CLINE_TURN_INPUT_TOKENS:,} tokens):"]
    for share in room_plan.bedrock:
        requests = ("no requests-per-minute quota listed" if share.requests_per_minute is None
                    else f"{share.requests_per_minute:,} requests/min")
        lines.append(f"  {share.model.name}: {share.tokens_per_minute:,} tokens/min, {requests}")
    lines.append(f"  budget: USD {roster.budget_usd_per_day:g} a day")
    lines.append("")
    if cost.workbench_usd_per_hour is None:
        lines.append(f"Workbenches: no list price here for {roster.instance.name} (room.py INSTANCE_USD_PER_HOUR)")
    else:
        lines.append(f"Workbenches: at most USD {cost.workbenches_usd:,.2f} ({cost.participants} x {cost.hours} h x "
                     f"USD {cost.workbench_usd_per_hour:.3f}, {PRICES_REGION} list prices, README \"Cost\"), "
                     "until each is destroyed")
    lines.append(f"Bedrock: at most USD {cost.bedrock_ceiling_usd:,.2f} (every budget spent every day)")
    lines.append("")
    no_go = [check for check in room_plan.all_checks if not check.go]
    lines.append("GO" if room_plan.go else "NO-GO")
    lines += [f"  {check.resource}: need {check.need:,}; {check.remedy()}" for check in no_go]
    lines += [f"  {name}: {stack_name_for(name)} exists and is not room {roster.event}'s; deploying the room would "
              "move it into the room's network, replacing its instance and data volume: give this participant "
              "another name" for name in room_plan.taken]
    return "\n".join(lines)


# Each participant's access.

# Tags bind every permission of the participant policy to one workbench, so nobody may set or remove
# the workbench's tag key (any case: condition keys on tags ignore case) with the tagging actions,
# nor remove tags from a resource that carries it (EC2's DeleteTags without tags removes them all).
# In case the participant's identity has other policies that allow tagging; this one allows none,
# nor creating anything (tags given at creation, such as RunInstances' TagSpecifications).
TAG_GUARD: list[dict[str, Any]] = [
    {"Sid": "NobodySetsOrRemovesTheWorkbenchTag", "Effect": "Deny",
     "Action": ["ec2:CreateTags", "ec2:DeleteTags", "secretsmanager:TagResource", "secretsmanager:UntagResource"],
     "Resource": "*", "Condition": {"ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": [WORKBENCH_TAG]}}},
    {"Sid": "NobodyUntagsAWorkbench", "Effect": "Deny", "Action": ["ec2:DeleteTags", "secretsmanager:UntagResource"],
     "Resource": "*", "Condition": {"Null": {f"aws:ResourceTag/{WORKBENCH_TAG}": "false"}}},
]


def room_participant_policy(name: str, ends_at: datetime) -> dict:
    """workshop_studio.participant_policy for one participant of a room, until ends_at.

    Every Allow also needs aws:CurrentTime before ends_at (revoking the identity still ends it
    sooner); the stack outputs are the participant's own stack's, which the room names
    (ai-workbench-NAME) where Workshop Studio could not; and TAG_GUARD keeps the tags that bind
    the rest from being moved.
    """
    if ends_at.tzinfo is None:
        raise ValueError(f"ends_at {ends_at.isoformat()} has no time zone")
    # Here, not at the top: workshop_studio imports the CDK app, which the installed `workbench`
    # command (the wheel) does not have.
    from workbench.workshop_studio import participant_policy

    policy = copy.deepcopy(participant_policy(name))
    until = {"aws:CurrentTime": f"{ends_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"}
    for statement in policy["Statement"]:
        if statement["Action"] == "cloudformation:DescribeStacks":
            statement["Resource"] = f"arn:aws:cloudformation:*:*:stack/{stack_name_for(name)}/*"
        if statement["Sid"] == "EndOrResumeOwnSessionsOnly":
            # A room's participants are IAM users (stacks/room_stack.py), whose sessions Session
            # Manager names USERNAME-<id>: the Systems Manager user guide's example for ending only
            # one's own sessions as an IAM user. (Workshop Studio's assumed roles have no user name,
            # hence the session-id tag there.) The room's user names are CloudFormation's, unique.
            statement["Resource"] = "arn:aws:ssm:*:*:session/${aws:username}-*"
            del statement["Condition"]
        condition = statement.setdefault("Condition", {})
        condition["DateLessThan"] = {**condition.get("DateLessThan", {}), **until}
    policy["Statement"] += copy.deepcopy(TAG_GUARD)
    return policy
