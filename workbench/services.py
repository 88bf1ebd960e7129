"""One definition per service, rendered into every target.

A service's image, environment, secrets, health check and limits are written once, in the box's
compose files and env files (assets/<project>/compose.yaml, assets/env/*.env), which the box runs
as they are. The laptop's compose files are those with the small overlay in assets/local
(workbench/local.py); a team gateway's ECS task definitions are those with the overlay in
assets/team/overlay.yaml, rendered here into plain data (`EcsContainer`) that stacks/team turns
into CDK's task definitions. An overlay may only delete or set what it names, so everything else
(image, health check, memory, stop signal, every environment variable it does not name) is the
box's own.

Placeholders: @{version} is filled at synth from the settings, as for the box; {{NAME}} is filled
on the box by its boot script. For ECS, a variable whose whole value is one secret's placeholder
({{LANGFUSE_SALT}}) becomes an ECS secret read from Secrets Manager at task start; a placeholder
inside a longer value must be replaced by the overlay (a task definition cannot hold a secret
inside a URL), and any other placeholder must be one the stack provides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench import secrets
from workbench.settings import Settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TEAM_OVERLAY = ASSETS / "team" / "overlay.yaml"
BOX_ENV_DIR = "/etc/workbench/env/"  # where the box's compose files read env files (userdata/boot.sh)
PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
SECRET_NAMES = frozenset(spec.env_name for spec in secrets.SECRETS)
DURATION = re.compile(r"^(\d+)(s|m)$")
MEMORY = re.compile(r"^(\d+)(m|g)$")
OVERLAY_KEYS = ("delete_environment", "environment", "secrets", "command", "cpu_units", "memory_mib")


class ServiceDefinitionError(ValueError):
    """A compose file or an overlay says something the renderer cannot carry into a target."""


@dataclass(frozen=True)
class HealthCheck:
    command: tuple[str, ...]  # compose's `test`: ("CMD", ...) or ("CMD-SHELL", "...")
    interval_seconds: int
    timeout_seconds: int
    retries: int
    start_period_seconds: int


@dataclass(frozen=True)
class Service:
    """One compose service as the box runs it, with its env files read in."""

    project: str
    name: str
    image: str
    environment: Mapping[str, str]  # env files in order, then `environment:`, as compose resolves them
    command: tuple[str, ...] | None
    health_check: HealthCheck | None
    memory_mib: int
    stop_signal: str | None
    stop_grace_seconds: int | None
    container_port: int | None  # the port it publishes on the host's loopback


@dataclass(frozen=True)
class SecretReference:
    """An ECS secret: one JSON field of a Secrets Manager secret the stack names."""

    secret: str  # the stack's name for the secret: "derived" (workbench/secrets.py values), "database"
    field: str


@dataclass(frozen=True)
class EcsContainer:
    """What an ECS task definition's container gets from a service definition and the team overlay."""

    service: Service
    image: str
    environment: Mapping[str, str]  # values may hold the stack's {{NAME}} placeholders (stack_values)
    secrets: Mapping[str, SecretReference]
    command: tuple[str, ...] | None
    health_check: HealthCheck | None
    cpu_units: int
    memory_mib: int
    stack_values: frozenset[str] = field(default_factory=frozenset)  # placeholders the stack must fill


def definitions(settings: Settings) -> dict[str, Service]:
    """Every service of the box's compose files, by service name."""
    services = {}
    for compose_file in sorted(ASSETS.glob("*/compose.yaml")):
        project = compose_file.parent.name
        document = yaml.safe_load(_with_versions(compose_file.read_text(), settings))
        for name, raw in document["services"].items():
            services[name] = _service(project, name, raw)
    return services


def _with_versions(text: str, settings: Settings) -> str:
    from workbench.bundle import SynthTemplate  # the box's own @{version} filling

    return SynthTemplate(text).substitute(vars(settings.versions))


def _service(project: str, name: str, raw: Mapping[str, Any]) -> Service:
    environment: dict[str, str] = {}
    for env_file in raw.get("env_file", []):
        if not env_file.startswith(BOX_ENV_DIR):
            raise ServiceDefinitionError(f"{project}/{name}: env file {env_file} is not under {BOX_ENV_DIR}")
        environment.update(read_env_file(ASSETS / "env" / env_file.removeprefix(BOX_ENV_DIR)))
    environment.update({key: str(value) for key, value in (raw.get("environment") or {}).items()})
    return Service(
        project=project,
        name=name,
        image=raw["image"],
        environment=environment,
        command=tuple(raw["command"]) if isinstance(raw.get("command"), list) else None,
        health_check=_health_check(raw.get("healthcheck")),
        memory_mib=_memory_mib(raw["mem_limit"], f"{project}/{name}"),
        stop_signal=raw.get("stop_signal"),
        stop_grace_seconds=_seconds(raw["stop_grace_period"]) if "stop_grace_period" in raw else None,
        container_port=_published_port(raw.get("ports", [])),
    )


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, comments and blank lines skipped: the subset of compose's env-file syntax ours use."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, separator, value = line.partition("=")
            if not separator:
                raise ServiceDefinitionError(f"{path}: {line!r} is not KEY=value")
            values[key] = value
    return values


def _health_check(raw: Mapping[str, Any] | None) -> HealthCheck | None:
    if raw is None:
        return None
    return HealthCheck(tuple(raw["test"]), _seconds(raw["interval"]), _seconds(raw["timeout"]), raw["retries"],
                       _seconds(raw.get("start_period", "0s")))


def _seconds(value: str) -> int:
    match = DURATION.fullmatch(value)
    if not match:
        raise ServiceDefinitionError(f"duration {value!r}: use whole seconds or minutes such as 30s or 1m")
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def _memory_mib(value: str, where: str) -> int:
    match = MEMORY.fullmatch(str(value))
    if not match:
        raise ServiceDefinitionError(f"{where}: mem_limit {value!r}: use whole megabytes or gigabytes such as 512m")
    return int(match.group(1)) * (1024 if match.group(2) == "g" else 1)


def _published_port(ports: list[str]) -> int | None:
    return int(ports[0].rsplit(":", 1)[1]) if ports else None


# --- ECS -------------------------------------------------------------------------------------

def team_overlay() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(TEAM_OVERLAY.read_text())


def ecs_containers(settings: Settings,
                   overlay: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, EcsContainer]:
    """The team gateway's containers: each service the overlay names, with its changes applied."""
    services = definitions(settings)
    overlay = team_overlay() if overlay is None else overlay
    containers = {}
    for name, changes in overlay.items():
        if name not in services:
            raise ServiceDefinitionError(f"team overlay: {name!r} is not a service of the box's compose files")
        containers[name] = ecs_container(services[name], changes)
    return containers


def ecs_container(service: Service, changes: Mapping[str, Any]) -> EcsContainer:
    where = f"team overlay {service.name}"
    unknown = sorted(set(changes) - set(OVERLAY_KEYS))
    if unknown:
        raise ServiceDefinitionError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(OVERLAY_KEYS)}")
    environment = dict(service.environment)
    for name in changes.get("delete_environment", []):
        if name not in environment:  # the overlay must not outlive a change to the box's files
            raise ServiceDefinitionError(f"{where}: deletes {name}, which the box's {service.name} does not set")
        del environment[name]
    named_secrets = {name: SecretReference(**reference) for name, reference in (changes.get("secrets") or {}).items()}
    for name in named_secrets:
        environment.pop(name, None)
    environment.update({name: str(value) for name, value in (changes.get("environment") or {}).items()})
    plain: dict[str, str] = {}
    container_secrets = dict(named_secrets)
    stack_values: set[str] = set()
    for name, value in environment.items():
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in SECRET_NAMES:
            container_secrets[name] = SecretReference("derived", whole.group(1))
            continue
        placeholders = PLACEHOLDER.findall(value)
        hidden = sorted(set(placeholders) & SECRET_NAMES)
        if hidden:
            raise ServiceDefinitionError(
                f"{where}: {name} holds the secret {hidden[0]} inside a longer value, which an ECS task "
                "definition would show in plain text: delete it in the overlay and give its parts")
        stack_values.update(placeholders)
        plain[name] = value
    command = changes.get("command", service.command)
    return EcsContainer(
        service=service,
        image=service.image,
        environment=plain,
        secrets=container_secrets,
        command=tuple(command) if command is not None else None,
        health_check=service.health_check,
        cpu_units=int(changes["cpu_units"]),
        memory_mib=int(changes.get("memory_mib", service.memory_mib)),
        stack_values=frozenset(stack_values),
    )


# --- the team gateway's ClickHouse host ------------------------------------------------------

CLICKHOUSE = "clickhouse"
CLICKHOUSE_PORTS = (8123, 9000)  # HTTP (Langfuse's queries), native (its migrations)


def clickhouse_host_compose(settings: Settings, memory_gib: int) -> str:
    """The box's ClickHouse service as the team's ClickHouse host runs it: the same image, env file,
    health check and volumes, with its two ports published to the VPC (the host's security group
    admits only Langfuse's tasks) instead of the box's internal network, and three quarters of a
    host of `memory_gib` (the box shares its memory with six other containers)."""
    document = yaml.safe_load(_with_versions((ASSETS / "langfuse" / "compose.yaml").read_text(), settings))
    service = dict(document["services"][CLICKHOUSE])
    service["ports"] = [f"{port}:{port}" for port in CLICKHOUSE_PORTS]
    service["mem_limit"] = f"{memory_gib * 1024 * 3 // 4}m"
    volumes = {name.split(":")[0]: None for name in service["volumes"] if not name.startswith(".")}
    host = {"name": CLICKHOUSE, "services": {CLICKHOUSE: service}, "volumes": volumes}
    return ("# Generated from assets/langfuse/compose.yaml by workbench/services.py (the box's ClickHouse).\n"
            + yaml.safe_dump(host, sort_keys=False))
