"""Workbench settings: one YAML file, overridable key by key, validated before anything is built.

Every error names the key, the bad value and what is allowed, so a mistake stops `cdk synth`
with one readable line instead of failing a deploy ten minutes in.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench import instance_types

DEFAULT_SETTINGS_FILE = Path(__file__).resolve().parent.parent / "workbench.yaml"

MIN_VCPUS = 4
MIN_MEMORY_GIB = 16
# A light workbench (gateway: team) runs code-server, Cline's extension host and the person's own
# builds, no Langfuse: code-server documents 2 cores and 1 GB as its minimum, and a build of a
# TypeScript or Python project next to VS Code takes a few GiB more. t4g.medium is the smallest
# type that passes.
LIGHT_MIN_VCPUS = 2
LIGHT_MIN_MEMORY_GIB = 4
# The root volume holds only the OS and its packages (AL2023's image is 8 GiB); everything
# that must survive lives on the data volume, which holds the container images too.
MIN_ROOT_VOLUME_GIB = 12
MAX_ROOT_VOLUME_GIB = 1024
MIN_DATA_VOLUME_GIB = 30
MAX_DATA_VOLUME_GIB = 16384
# A light workbench's data volume holds /home only (no Docker images or databases): the workspace,
# code-server's extensions and state, npm and pip caches and a few node_modules trees.
LIGHT_MIN_DATA_VOLUME_GIB = 10
# gateway: own, the whole box (Langfuse and LiteLLM on it); team, a light workbench that calls the
# team gateway of the settings file's team: section.
GATEWAYS = ("own", "team")
# Data Lifecycle Manager keeps at most 1000 snapshots per schedule; a year of dailies is plenty.
MAX_SNAPSHOT_RETENTION_DAYS = 365
# Bedrock spend Cline's key may run up per day; the ceiling catches a typo's extra zeros.
MAX_CLINE_BUDGET_USD_PER_DAY = 10000
# The box checks every 5 minutes; under 15 a pause to read would stop it. A day at most.
MIN_IDLE_STOP_MINUTES = 15
MAX_IDLE_STOP_MINUTES = 1440

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
SNAPSHOT_ID_PATTERN = re.compile(r"^snap-[0-9a-f]{8}([0-9a-f]{9})?$")
VPC_ID_PATTERN = re.compile(r"^vpc-[0-9a-f]{8}([0-9a-f]{9})?$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
# Deliberately narrower than RFC 5322: the address reaches env files and a root shell's
# settings file, so quotes, '$', '`', spaces and line breaks are refused outright.
DOMAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
EMAIL_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._%+-]{{0,63}}@{DOMAIN_LABEL}(?:\.{DOMAIN_LABEL})+$")
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# provider.model-name[-vN][:N], optionally behind a cross-region inference-profile prefix
MODEL_ID_PATTERN = re.compile(
    r"^(?:(?P<geo>us|eu|apac|global|us-gov|jp|au|ca)\.)?[a-z0-9-]+\.[A-Za-z0-9._-]+(?::\d+)?$")

# Each version must be exact (never "latest", never a bare major) and in the major line
# this workbench is built and tested for.
VERSION_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "langfuse": (re.compile(r"^4\.\d+\.\d+$"), "an exact Langfuse v4 release such as 4.52.0"),
    "litellm": (re.compile(r"^1\.\d+\.\d+$"), "an exact LiteLLM release such as 1.108.7"),
    "postgres": (re.compile(r"^17\.\d+$"), "an exact PostgreSQL 17 release such as 17.6"),
    "clickhouse": (re.compile(r"^25\.\d+\.\d+(\.\d+)?$"), "an exact ClickHouse 25.x release such as 25.12.5"),
    "redis": (re.compile(r"^7\.\d+\.\d+$"), "an exact Redis 7 release such as 7.4.6"),
    "code_server": (re.compile(r"^4\.\d+\.\d+$"), "an exact code-server 4 release such as 4.108.2"),
    # From 3.66.0 Cline keeps its settings in ~/.cline/data, which the boot seeds; 4.x is a rewrite.
    "cline": (re.compile(r"^3\.(6[6-9]|[7-9]\d)\.\d+$"),
              "an exact Cline 3 release from 3.66.0 on (it keeps its settings in files), such as 3.89.2"),
    "compose": (re.compile(r"^2\.\d+\.\d+$"), "an exact Docker Compose v2 release such as 2.40.3"),
    # The box upgrades to exactly this release at boot (dnf --releasever), AL2023's deterministic upgrade.
    "amazon_linux": (re.compile(r"^2023\.\d+\.20\d{6}$"),
                     "an exact Amazon Linux 2023 release version such as 2023.12.20260930"),
}

# Docker Compose binaries are verified against these before they are installed.
COMPOSE_SHA256: dict[str, dict[str, str]] = {
    "2.40.3": {
        "x86_64": "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372",
        "aarch64": "d26373b19e89160546d15407516cc59f453030d9bc5b43ba7faf16f7b4980137",
    },
}

TOP_LEVEL_KEYS = (
    "name", "instance_type", "root_volume_gib", "data_volume_gib", "data_snapshot_id", "snapshot_retention_days",
    "vpc", "bedrock_region",
    "models", "langfuse_admin_email", "cline_model", "cline_budget_usd_per_day", "cline_limits_per_minute",
    "idle_stop_minutes", "versions", "team", "gateway", "light",
)
LIGHT_KEYS = ("instance_type", "data_volume_gib")
# What only one kind of workbench uses: an override of the other kind's is refused (load).
BOX_ONLY_KEYS = ("instance_type", "data_volume_gib")
MODEL_KEYS = ("name", "model_id", "region", "context_window", "max_output_tokens", "prompt_caching",
              "usd_per_million_tokens")
PRICE_KEYS = ("input", "output", "cache_write", "cache_read")
MAX_CONTEXT_WINDOW = 10_000_000
# Far above any Bedrock per-minute quota of one account; a larger number is a typing error.
MAX_PER_MINUTE = 100_000_000
MAX_USD_PER_MILLION_TOKENS = 1000
# Context keys the CDK CLI itself may set that carry neither ':' nor '@'.
CDK_PLAIN_CONTEXT_KEYS = frozenset({"acknowledged-issue-numbers", "cli-telemetry"})


class SettingsError(ValueError):
    """A setting is missing, unknown or out of range; the message says which and why."""


@dataclass(frozen=True)
class ModelInfo:
    """What LiteLLM reports at /v1/model/info; Cline sizes its context and counts cost from it."""

    context_window: int
    max_output_tokens: int
    prompt_caching: bool
    usd_per_million_tokens: dict[str, float]


@dataclass(frozen=True)
class Model:
    name: str
    model_id: str
    region: str
    info: ModelInfo | None = field(default=None, compare=False)  # None: known only by name (a stack output)

    @property
    def inference_profile_geo(self) -> str | None:
        """'us', 'eu', 'global', ... for an inference-profile id; None for a foundation model."""
        match = MODEL_ID_PATTERN.fullmatch(self.model_id)
        return match.group("geo") if match else None

    @property
    def foundation_model_id(self) -> str:
        geo = self.inference_profile_geo
        return self.model_id[len(geo) + 1:] if geo else self.model_id


@dataclass(frozen=True)
class RateLimit:
    """What Cline's key may send one model per minute: LiteLLM's model_tpm_limit and model_rpm_limit."""

    model: str
    tokens: int
    requests: int | None  # None: no requests-per-minute limit


@dataclass(frozen=True)
class TaskCount:
    """How many ECS tasks a service runs: never fewer than `minimum`, scaled up to `maximum` on load."""

    minimum: int
    maximum: int


@dataclass(frozen=True)
class TeamSettings:
    """The team gateway (stacks/team_gateway_stack.py): one LiteLLM and one Langfuse for a team."""

    name: str
    litellm_tasks: TaskCount
    langfuse_web_tasks: TaskCount
    langfuse_worker_tasks: TaskCount
    database_min_acu: float  # Aurora Serverless v2 capacity units; 0 pauses the database when idle
    database_max_acu: float
    cache_node_type: str
    clickhouse_instance_type: str
    clickhouse_volume_gib: int

    @property
    def stack_name(self) -> str:
        return team_stack_name_for(self.name)


@dataclass(frozen=True)
class Versions:
    langfuse: str
    litellm: str
    postgres: str
    clickhouse: str
    redis: str
    code_server: str
    cline: str
    compose: str
    amazon_linux: str

    @property
    def compose_sha256(self) -> dict[str, str]:
        return COMPOSE_SHA256[self.compose]


@dataclass(frozen=True)
class Settings:
    name: str
    instance_type: str
    root_volume_gib: int
    data_volume_gib: int
    data_snapshot_id: str | None  # None: a blank data volume
    snapshot_retention_days: int  # 0: no scheduled snapshots
    vpc: str
    bedrock_region: str
    models: tuple[Model, ...]
    langfuse_admin_email: str
    cline_model: str
    cline_budget_usd_per_day: float
    idle_stop_minutes: int
    versions: Versions
    shape: instance_types.InstanceShape = field(compare=False)
    cline_limits_per_minute: tuple[RateLimit, ...] = ()  # empty: only the daily budget
    team: TeamSettings | None = None  # None: no team gateway in this settings file
    gateway: str = "own"  # "team": a light workbench; instance_type and data_volume_gib are light's

    @property
    def is_light(self) -> bool:
        """VS Code Server and Cline only, calling the team gateway (workbench/light.py)."""
        return self.gateway == "team"

    @property
    def stack_name(self) -> str:
        return stack_name_for(self.name)

    @property
    def uses_new_vpc(self) -> bool:
        return self.vpc == "new"

    @property
    def architecture(self) -> str:
        return self.shape.architecture

    def key_request_environment(self) -> dict[str, str]:
        """What assets/boot/litellm_key_request.py reads for Cline's key: the box's deployment.env
        carries it (stacks/boot.py), the laptop passes it (workbench/local.py)."""
        environment = {"LITELLM_MODEL_NAMES": ",".join(model.name for model in self.models),
                       "CLINE_BUDGET_USD_PER_DAY": f"{self.cline_budget_usd_per_day:g}"}
        if self.cline_limits_per_minute:  # absent, not empty, so that a box without limits boots as before
            limits = self.cline_limits_per_minute
            environment["CLINE_MODEL_TPM_LIMIT"] = json.dumps({limit.model: limit.tokens for limit in limits})
            environment["CLINE_MODEL_RPM_LIMIT"] = json.dumps(
                {limit.model: limit.requests for limit in limits if limit.requests is not None})
        return environment


def stack_name_for(workbench_name: str) -> str:
    return f"ai-workbench-{workbench_name}"


TEAM_NAME_PREFIX = "team-"


def team_stack_name_for(team_name: str) -> str:
    return stack_name_for(f"{TEAM_NAME_PREFIX}{team_name}")


def load(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the settings file (workbench.yaml by default), apply `key=value` overrides, validate everything."""
    path = path or DEFAULT_SETTINGS_FILE
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SettingsError(f"{path}: not valid YAML{where}: {problem}") from error
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    for key, value in (overrides or {}).items():
        _apply_override(raw, key, value)
    if raw.get("gateway") == "team":
        for key in BOX_ONLY_KEYS:
            if key in (overrides or {}):
                raise SettingsError(f"{key}: a light workbench (gateway: team) takes light.{key}; "
                                    f"use -c light.{key}=...")
    return parse(raw)


def _apply_override(raw: dict, dotted_key: str, value: Any) -> None:
    if isinstance(value, str):
        # `-c` values arrive as strings: read them as YAML so numbers and JSON lists keep their type.
        with contextlib.suppress(yaml.YAMLError):  # not YAML: keep the string as given
            value = yaml.safe_load(value) if value.strip() else value
    *parents, leaf = dotted_key.split(".")
    target = raw
    for part in parents:
        if not isinstance(target.get(part), dict):
            raise SettingsError(f"override {dotted_key!r}: {part!r} is not a group of settings")
        target = target[part]
    target[leaf] = value


def parse(raw: Mapping[str, Any]) -> Settings:
    _reject_unknown(raw, TOP_LEVEL_KEYS, "setting")
    name = _name(_required(raw, "name"))
    instance_type = _required(raw, "instance_type")
    shape = _instance_shape(instance_type)
    data_volume_gib = _volume_size(_required(raw, "data_volume_gib"), "data_volume_gib",
                                   MIN_DATA_VOLUME_GIB, MAX_DATA_VOLUME_GIB,
                                   "container images and the Langfuse and LiteLLM databases need at least "
                                   f"{MIN_DATA_VOLUME_GIB} GiB")
    gateway = _gateway(raw.get("gateway", "own"))  # absent: the box, as before the setting existed
    team = _team(raw.get("team"))
    light = _light(raw.get("light"))
    if gateway == "team":
        if team is None:
            raise SettingsError("gateway: 'team' needs the settings file's team: section, whose name names the "
                                "team gateway (see workbench.yaml)")
        if light is None:
            raise SettingsError("light: missing; gateway: 'team' takes its instance_type and data_volume_gib from "
                                "it (see workbench.yaml)")
        if _required(raw, "vpc") != "new":
            raise SettingsError(f"vpc: {raw['vpc']!r} is not used by a light workbench (gateway: team), which joins "
                                "the team gateway's VPC: use vpc: new")
        instance_type, shape, data_volume_gib = light
    region = _region(_required(raw, "bedrock_region"), "bedrock_region")
    models = _models(_required(raw, "models"), region)
    return Settings(
        name=name,
        instance_type=instance_type,
        root_volume_gib=_volume_size(_required(raw, "root_volume_gib"), "root_volume_gib",
                                     MIN_ROOT_VOLUME_GIB, MAX_ROOT_VOLUME_GIB,
                                     "the OS and its packages; the data lives on the data volume"),
        data_volume_gib=data_volume_gib,
        data_snapshot_id=_snapshot_id(raw.get("data_snapshot_id")),
        snapshot_retention_days=_retention(_required(raw, "snapshot_retention_days")),
        vpc=_vpc(_required(raw, "vpc")),
        bedrock_region=region,
        models=models,
        langfuse_admin_email=_email(_required(raw, "langfuse_admin_email")),
        cline_model=_cline_model(_required(raw, "cline_model"), models),
        cline_budget_usd_per_day=_cline_budget(_required(raw, "cline_budget_usd_per_day")),
        cline_limits_per_minute=_cline_limits(raw.get("cline_limits_per_minute"), models),
        idle_stop_minutes=_idle_stop(_required(raw, "idle_stop_minutes")),
        versions=_versions(_required(raw, "versions")),
        shape=shape,
        team=team,
        gateway=gateway,
    )


def _gateway(value: Any) -> str:
    if value not in GATEWAYS:
        raise SettingsError(f"gateway: {value!r} is not allowed; use own (Langfuse and LiteLLM on the workbench) or "
                            "team (a light workbench that calls the team gateway of the team: section)")
    return value


def _light(value: Any) -> tuple[str, instance_types.InstanceShape, int] | None:
    """light: what a light workbench (gateway: team) runs on: (instance type, its shape, data volume GiB)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SettingsError(f"light: {value!r} is not a group of settings; see workbench.yaml's light section")
    _reject_unknown(value, LIGHT_KEYS, "setting in light:")
    instance_type = _required_in(value, "instance_type", "light")
    shape = _instance_shape_for("light.instance_type", instance_type)
    if shape.vcpus < LIGHT_MIN_VCPUS or shape.memory_gib < LIGHT_MIN_MEMORY_GIB:
        raise SettingsError(
            f"light.instance_type: {instance_type!r} has {shape.vcpus} vCPU and {shape.memory_gib} GiB; a light "
            f"workbench needs at least {LIGHT_MIN_VCPUS} vCPU and {LIGHT_MIN_MEMORY_GIB} GiB (VS Code Server, "
            "Cline and your builds), e.g. t4g.large")
    data_volume_gib = _volume_size(_required_in(value, "data_volume_gib", "light"), "light.data_volume_gib",
                                   LIGHT_MIN_DATA_VOLUME_GIB, MAX_DATA_VOLUME_GIB,
                                   "the coding user's home: workspace, extensions, package caches")
    return instance_type, shape, data_volume_gib


TEAM_KEYS = ("name", "litellm_tasks", "langfuse_web_tasks", "langfuse_worker_tasks", "database_acu",
             "cache_node_type", "clickhouse_instance_type", "clickhouse_volume_gib")
# At least two of each service that serves requests, so that one task (or one zone) can go.
MIN_SERVING_TASKS = 2
MAX_TASKS = 50
# Aurora Serverless v2: 0 (paused when idle, from Aurora PostgreSQL 13.15, 14.12, 15.7, 16.3) or 0.5-256.
MAX_ACU = 256
CACHE_NODE_PATTERN = re.compile(r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
# ClickHouse's own guidance for a small production server (Langfuse: 'at least 2 CPUs and 8 GiB').
MIN_CLICKHOUSE_VCPUS = 2
MIN_CLICKHOUSE_MEMORY_GIB = 8


def _team(value: Any) -> TeamSettings | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SettingsError(f"team: {value!r} is not a group of settings; see workbench.yaml's team section")
    _reject_unknown(value, TEAM_KEYS, "setting in team:")
    name = _required_in(value, "name", "team")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise SettingsError(f"team.name: {name!r} is not allowed; use 1-24 lowercase letters, digits or hyphens, "
                            "starting with a letter (it becomes part of the stack name)")
    acu = _required_in(value, "database_acu", "team")
    if not isinstance(acu, dict) or set(acu) != {"min", "max"}:
        raise SettingsError(f"team.database_acu: {acu!r} is not allowed; use {{min: 0.5, max: 8}}")
    low, high = (_acu(acu[key], f"team.database_acu.{key}") for key in ("min", "max"))
    if high < max(low, 1):
        raise SettingsError(f"team.database_acu.max: {high:g} is below min ({low:g}) or 1; use a maximum of at "
                            f"least 1 and at least the minimum, up to {MAX_ACU}")
    node_type = _required_in(value, "cache_node_type", "team")
    if not isinstance(node_type, str) or not CACHE_NODE_PATTERN.fullmatch(node_type):
        raise SettingsError(f"team.cache_node_type: {node_type!r} is not an ElastiCache node type such as "
                            "cache.t4g.small")
    instance_type = _required_in(value, "clickhouse_instance_type", "team")
    shape = _instance_shape_for("team.clickhouse_instance_type", instance_type)
    if shape.vcpus < MIN_CLICKHOUSE_VCPUS or shape.memory_gib < MIN_CLICKHOUSE_MEMORY_GIB:
        raise SettingsError(
            f"team.clickhouse_instance_type: {instance_type!r} has {shape.vcpus} vCPU and {shape.memory_gib} GiB; "
            f"ClickHouse for Langfuse needs at least {MIN_CLICKHOUSE_VCPUS} vCPU and {MIN_CLICKHOUSE_MEMORY_GIB} GiB, "
            "e.g. m7g.large")
    return TeamSettings(
        name=name,
        litellm_tasks=_task_count(_required_in(value, "litellm_tasks", "team"), "team.litellm_tasks",
                                  MIN_SERVING_TASKS),
        langfuse_web_tasks=_task_count(_required_in(value, "langfuse_web_tasks", "team"),
                                       "team.langfuse_web_tasks", MIN_SERVING_TASKS),
        langfuse_worker_tasks=_task_count(_required_in(value, "langfuse_worker_tasks", "team"),
                                          "team.langfuse_worker_tasks", 1),
        database_min_acu=low,
        database_max_acu=high,
        cache_node_type=node_type,
        clickhouse_instance_type=instance_type,
        clickhouse_volume_gib=_volume_size(_required_in(value, "clickhouse_volume_gib", "team"),
                                           "team.clickhouse_volume_gib", MIN_DATA_VOLUME_GIB, MAX_DATA_VOLUME_GIB,
                                           "Langfuse's traces, observations and scores"),
    )


def _task_count(value: Any, key: str, least: int) -> TaskCount:
    allowed = f"{{min: N, max: N}} with {least} <= min <= max <= {MAX_TASKS}"
    if not isinstance(value, dict) or set(value) != {"min", "max"}:
        raise SettingsError(f"{key}: {value!r} is not allowed; use {allowed}")
    low, high = value["min"], value["max"]
    if any(isinstance(n, bool) or not isinstance(n, int) for n in (low, high)) or not least <= low <= high <= MAX_TASKS:
        raise SettingsError(f"{key}: {value!r} is not allowed; use {allowed}"
                            + (f" (fewer than {least} would stop serving when one task or zone goes)"
                               if isinstance(low, int) and low < least else ""))
    return TaskCount(low, high)


def _acu(value: Any, key: str) -> float:
    allowed = f"0 (pause when idle), or 0.5 to {MAX_ACU} in steps of 0.5"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            value == 0 or 0.5 <= value <= MAX_ACU) or (value * 2) % 1:
        raise SettingsError(f"{key}: {value!r} is not allowed; use {allowed}")
    return float(value)


def _reject_unknown(raw: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise SettingsError(f"unknown {what} {unknown[0]!r}; allowed: {', '.join(allowed)}")


def _required(raw: Mapping[str, Any], key: str) -> Any:
    if key not in raw or raw[key] is None:
        raise SettingsError(f"{key}: missing; it has no default")
    return raw[key]


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise SettingsError(
            f"name: {value!r} is not allowed; use 1-24 lowercase letters, digits or hyphens, "
            "starting with a letter (it becomes part of the stack name)"
        )
    if value.startswith(TEAM_NAME_PREFIX):
        # ai-workbench-team-<x> is the team gateway x's stack (team_stack_name_for).
        raise SettingsError(f"name: {value!r} is not allowed; a name starting with {TEAM_NAME_PREFIX!r} would name "
                            "a team gateway's stack: choose another")
    return value


def _instance_shape_for(key: str, value: Any) -> instance_types.InstanceShape:
    if not isinstance(value, str):
        raise SettingsError(f"{key}: {value!r} is not an instance type name such as m7g.xlarge")
    try:
        return instance_types.describe(value)
    except ValueError as error:
        raise SettingsError(f"{key}: {value!r}: {error}") from error


def _instance_shape(value: Any) -> instance_types.InstanceShape:
    shape = _instance_shape_for("instance_type", value)
    if shape.vcpus < MIN_VCPUS or shape.memory_gib < MIN_MEMORY_GIB:
        raise SettingsError(
            f"instance_type: {value!r} has {shape.vcpus} vCPU and {shape.memory_gib} GiB; "
            f"Langfuse needs at least {MIN_VCPUS} vCPU and {MIN_MEMORY_GIB} GiB on a single VM "
            "(its documented minimum), e.g. m7g.xlarge or m7i.xlarge"
        )
    return shape


def _volume_size(value: Any, key: str, low: int, high: int, why: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{key}: {value!r} is not a whole number of GiB")
    if not low <= value <= high:
        raise SettingsError(f"{key}: {value} is out of range; allowed {low}-{high} ({why})")
    return value


def _snapshot_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not SNAPSHOT_ID_PATTERN.fullmatch(value):
        raise SettingsError(
            f"data_snapshot_id: {value!r} is not an EBS snapshot id; use snap- and 8 or 17 hex digits, such as "
            "snap-0123456789abcdef0 (`workbench list` shows the snapshots of destroyed workbenches), or leave it "
            "empty for a blank data volume")
    return value


def _retention(value: Any) -> int:
    allowed = f"0 (no scheduled snapshots) or a whole number of days from 1 to {MAX_SNAPSHOT_RETENTION_DAYS}, such as 7"
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SNAPSHOT_RETENTION_DAYS:
        raise SettingsError(f"snapshot_retention_days: {value!r} is not allowed; use {allowed}")
    return value


def _vpc(value: Any) -> str:
    if value == "new" or (isinstance(value, str) and VPC_ID_PATTERN.fullmatch(value)):
        return value
    raise SettingsError(
        f"vpc: {value!r} is not allowed; use \"new\" or an existing VPC id such as vpc-0123456789abcdef0")


def _region(value: Any, key: str) -> str:
    if not isinstance(value, str) or not REGION_PATTERN.fullmatch(value):
        raise SettingsError(f"{key}: {value!r} is not an AWS region name such as us-east-1")
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 254 or not EMAIL_PATTERN.fullmatch(value):
        raise SettingsError(
            f"langfuse_admin_email: {value!r} is not allowed; use a plain address such as admin@example.com "
            "(letters, digits and . _ % + - before the @, a domain name after it)"
        )
    return value


def _cline_model(value: Any, models: tuple[Model, ...]) -> str:
    names = [model.name for model in models]
    if value not in names:
        raise SettingsError(f"cline_model: {value!r} is not one of the models' names; use one of {', '.join(names)}")
    return value


def _idle_stop(value: Any) -> int:
    allowed = (f"0 (never stop) or a whole number of minutes from {MIN_IDLE_STOP_MINUTES} to "
               f"{MAX_IDLE_STOP_MINUTES}, such as 60")
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"idle_stop_minutes: {value!r} is not allowed; use {allowed}")
    if value != 0 and not MIN_IDLE_STOP_MINUTES <= value <= MAX_IDLE_STOP_MINUTES:
        raise SettingsError(f"idle_stop_minutes: {value} is out of range; use {allowed}")
    return value


def _cline_budget(value: Any) -> float:
    allowed = f"a number of US dollars above 0 and at most {MAX_CLINE_BUDGET_USD_PER_DAY}, such as 20 or 7.5"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"cline_budget_usd_per_day: {value!r} is not a number; use {allowed}")
    if not 0 < value <= MAX_CLINE_BUDGET_USD_PER_DAY:  # also refuses nan and inf
        raise SettingsError(f"cline_budget_usd_per_day: {value!r} is out of range; use {allowed}")
    return float(value)


def _cline_limits(value: Any, models: tuple[Model, ...]) -> tuple[RateLimit, ...]:
    allowed = ("a mapping of model names to {tokens: N, requests: N} per minute (requests optional), "
               "such as {claude-sonnet-4-5: {tokens: 80000, requests: 40}}")
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise SettingsError(f"cline_limits_per_minute: {value!r} is not allowed; use {allowed}")
    names = [model.name for model in models]
    limits = []
    for model, limit in value.items():
        where = f"cline_limits_per_minute.{model}"
        if model not in names:
            raise SettingsError(f"{where}: {model!r} is not one of the models' names; use one of {', '.join(names)}")
        if not isinstance(limit, dict):
            raise SettingsError(f"{where}: {limit!r} is not allowed; use {allowed}")
        _reject_unknown(limit, ("tokens", "requests"), f"setting in {where}")
        tokens = _per_minute(_required_in(limit, "tokens", where), f"{where}.tokens")
        requests = None if limit.get("requests") is None else _per_minute(limit["requests"], f"{where}.requests")
        limits.append(RateLimit(model, tokens, requests))
    return tuple(limits)


def cline_limits_value(limits: tuple[RateLimit, ...]) -> str:
    """cline_limits_per_minute as `-c cline_limits_per_minute=...` takes it (JSON, which YAML reads)."""
    return json.dumps({limit.model: {"tokens": limit.tokens,
                                     **({"requests": limit.requests} if limit.requests is not None else {})}
                       for limit in limits})


def _per_minute(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PER_MINUTE:
        raise SettingsError(f"{key}: {value!r} is not allowed; use a whole number per minute from 1 to "
                            f"{MAX_PER_MINUTE}")
    return value


def _models(value: Any, default_region: str) -> tuple[Model, ...]:
    if isinstance(value, str):
        raise SettingsError(f"models: {value!r} is not a list; give a list of {{name, model_id[, region]}}")
    if not isinstance(value, list) or not value:
        raise SettingsError(f"models: {value!r} must be a non-empty list of {{name, model_id[, region]}}")
    models = []
    for index, entry in enumerate(value):
        where = f"models[{index}]"
        if not isinstance(entry, dict):
            raise SettingsError(f"{where}: {entry!r} is not a mapping with name and model_id")
        _reject_unknown(entry, MODEL_KEYS, f"key in {where}:")
        name = _required_in(entry, "name", where)
        if not isinstance(name, str) or not MODEL_NAME_PATTERN.fullmatch(name):
            raise SettingsError(
                f"{where}.name: {name!r} is not allowed; use up to 64 letters, digits, '.', '_' or '-'"
            )
        model_id = _required_in(entry, "model_id", where)
        if not isinstance(model_id, str) or not MODEL_ID_PATTERN.fullmatch(model_id):
            raise SettingsError(
                f"{where}.model_id: {model_id!r} is not a Bedrock model id; use a foundation-model id such as "
                "anthropic.claude-3-5-haiku-20241022-v1:0 or an inference profile such as "
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
            )
        region = _region(entry.get("region", default_region), f"{where}.region")
        models.append(Model(name, model_id, region, _model_info(entry, where)))
    names = [model.name for model in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SettingsError(f"models: name {duplicates[0]!r} is used twice; each model needs its own name")
    return tuple(models)


def _model_info(entry: Mapping[str, Any], where: str) -> ModelInfo:
    context_window = _whole_number(_required_in(entry, "context_window", where), f"{where}.context_window",
                                   1024, MAX_CONTEXT_WINDOW)
    max_output = _whole_number(_required_in(entry, "max_output_tokens", where), f"{where}.max_output_tokens",
                               1, context_window)
    caching = _required_in(entry, "prompt_caching", where)
    if not isinstance(caching, bool):
        raise SettingsError(f"{where}.prompt_caching: {caching!r} is not allowed; use true or false "
                            "(whether Bedrock caches prompts for this model)")
    prices = _required_in(entry, "usd_per_million_tokens", where)
    if not isinstance(prices, dict):
        raise SettingsError(f"{where}.usd_per_million_tokens: {prices!r} must be a mapping of "
                            f"{', '.join(PRICE_KEYS)} to US dollars per million tokens")
    _reject_unknown(prices, PRICE_KEYS, f"key in {where}.usd_per_million_tokens:")
    checked = {}
    for key in PRICE_KEYS:
        value = _required_in(prices, key, f"{where}.usd_per_million_tokens")
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or not 0 <= value <= MAX_USD_PER_MILLION_TOKENS:
            raise SettingsError(f"{where}.usd_per_million_tokens.{key}: {value!r} is not allowed; use a price in "
                                f"US dollars per million tokens from 0 to {MAX_USD_PER_MILLION_TOKENS}")
        checked[key] = float(value)
    return ModelInfo(context_window, max_output, caching, checked)


def _whole_number(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"{key}: {value!r} is not allowed; use a whole number of tokens from {low} to {high}")
    return value


def _required_in(entry: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        raise SettingsError(f"{where}.{key}: missing")
    return entry[key]


def _versions(value: Any) -> Versions:
    if not isinstance(value, dict):
        raise SettingsError(f"versions: {value!r} must be a mapping of component to exact version")
    _reject_unknown(value, tuple(VERSION_RULES), "key in versions:")
    checked = {}
    for key, (pattern, allowed) in VERSION_RULES.items():
        version = _required_in(value, key, "versions")
        version = str(version) if isinstance(version, (int, float)) and not isinstance(version, bool) else version
        if not isinstance(version, str) or not pattern.fullmatch(version):
            raise SettingsError(f"versions.{key}: {version!r} is not allowed; use {allowed}")
        checked[key] = version
    if checked["compose"] not in COMPOSE_SHA256:
        raise SettingsError(
            f"versions.compose: {checked['compose']!r} has no known checksum; known: "
            f"{', '.join(COMPOSE_SHA256)} (add the release's sha256 for x86_64 and aarch64 to "
            "COMPOSE_SHA256 in workbench/settings.py)"
        )
    return Versions(**checked)


def context_overrides(context: Mapping[str, Any]) -> dict[str, Any]:
    """The `-c key=value` pairs meant for us, out of all the CDK context.

    CDK's own keys (feature flags, lookups) contain ':' or start with '@'; anything else is
    ours and is validated, so a misspelt override is an error rather than silently ignored.
    """
    return {
        key: value
        for key, value in context.items()
        if ":" not in key and not key.startswith("@") and key not in CDK_PLAIN_CONTEXT_KEYS
    }


