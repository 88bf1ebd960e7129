"""`workbench local`: the box's Langfuse and LiteLLM on the user's own Docker, with their own AWS profile.

The laptop's tree is rendered from the same bundle as the box's (workbench/bundle.py), with the
small overlay in assets/local/overlay.yaml applied to the compose files, and env files rendered
like the box's boot script does, from a seed generated once per laptop (same derivation as the box:
workbench/secrets.py). Docker runs it; this module only calls `docker compose` with file paths,
so no secret is ever on a command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from copy import deepcopy
from datetime import datetime, timezone
from pathlib import Path

import boto3
import botocore.exceptions
import yaml

from workbench import bedrock_access, bundle, local_credentials
from workbench import secrets as derivation
from workbench.aws import WorkbenchError
from workbench.settings import Settings

HOME_VARIABLE = "WORKBENCH_LOCAL_HOME"  # overrides where the laptop's trees live (tests)
LOCAL_ASSETS = bundle.ASSETS / "local"
OVERLAY = LOCAL_ASSETS / "overlay.yaml"
PROJECTS = ("langfuse", "litellm")  # in start order: LiteLLM joins the network Langfuse's project creates
SEED_FILE = "seed.json"
BLOB_BUCKET = "langfuse"
# Local-only values, derived from the laptop's seed like every other (workbench/secrets.py).
BLOB_SECRETS = (derivation.SecretSpec("blob-access-key", "Access key of the laptop's S3 server", 20),
                derivation.SecretSpec("blob-secret-key", "Secret key of the laptop's S3 server", 40))
LITELLM_URL = "http://localhost:4000"
CONTAINER_CREDENTIALS_HOST = "host.docker.internal"


def _load_asset_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, bundle.ASSETS / "boot" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def home(name: str) -> Path:
    base = os.environ.get(HOME_VARIABLE) or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") \
        / "ai-workbench" / "local"
    return Path(base) / name


# --- rendering -------------------------------------------------------------------------------

def seed(directory: Path) -> str:
    """The laptop's seed, generated on first use into a file only the user can read."""
    path = directory / SEED_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = "".join(secrets.choice(derivation.ALPHANUMERIC) for _ in range(derivation.SEED_LENGTH))
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump({derivation.SEED_KEY: value}, out)
    return derivation.seed_of(path.read_text())


def secret_values(seed_value: str) -> dict[str, str]:
    return {spec.env_name: derivation.derive(seed_value, spec) for spec in (*derivation.SECRETS, *BLOB_SECRETS)}


def env_values(settings: Settings, seed_value: str) -> dict[str, str]:
    """What the box's boot script has in its shell when it renders env/*.env, for a laptop."""
    return {**secret_values(seed_value), "WORKBENCH_NAME": settings.name,
            "LANGFUSE_ADMIN_EMAIL": settings.langfuse_admin_email, "AWS_REGION": settings.bedrock_region,
            "BLOB_BUCKET": BLOB_BUCKET}


def fill(template: Path, values: dict[str, str]) -> str:
    """{{NAME}} placeholders as userdata/boot.sh's render fills them; an unknown name is an error."""
    def value(match: re.Match) -> str:
        if match.group(1) not in values:
            raise WorkbenchError(f"template {template} needs {match.group(1)}, which is not set")
        return values[match.group(1)]
    return re.sub(r"\{\{([A-Z0-9_]+)\}\}", value, template.read_text())


def apply_overlay(document: dict, overlay: dict) -> dict:
    """The box's compose document with the overlay's deletions, then its deep merge."""
    # Through JSON: YAML anchors load as shared objects (langfuse's depends_on), which must not
    # change together when the overlay changes one of them.
    result = json.loads(json.dumps(document))
    for path in overlay.get("delete", []):
        parent = result
        for key in path[:-1]:
            parent = parent[key]
        if path[-1] not in parent:
            raise WorkbenchError(f"overlay deletes {'.'.join(path)}, which the box's compose file lacks")
        del parent[path[-1]]
    return merged(result, overlay.get("merge", {}))


def merged(base, change):
    if isinstance(base, dict) and isinstance(change, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in change.items()}}
    return deepcopy(change)


def render(settings: Settings, directory: Path) -> Path:
    """Writes the laptop's tree into directory; the seed and the credentials process's files stay."""
    values = env_values(settings, seed(directory))
    overlay = yaml.safe_load(OVERLAY.read_text())
    with tempfile.TemporaryDirectory() as box:
        tree = bundle.render(settings, Path(box) / "tree")
        for project in PROJECTS:
            # The project's other files (LiteLLM's config, ClickHouse's logging) as the box gets them.
            shutil.rmtree(directory / project, ignore_errors=True)
            shutil.copytree(tree / project, directory / project)
            document = apply_overlay(yaml.safe_load((tree / project / "compose.yaml").read_text()), overlay[project])
            (directory / project / "compose.yaml").write_text(
                f"# Generated by `workbench local render` from assets/{project}/compose.yaml and "
                "assets/local/overlay.yaml; edit those, not this file.\n" + yaml.safe_dump(document, sort_keys=False))
        env_dir = directory / "env"
        shutil.rmtree(env_dir, ignore_errors=True)
        env_dir.mkdir(mode=0o700)
        for template in sorted([*(tree / "env").glob("*.env"), *(LOCAL_ASSETS / "env").glob("*.env")]):
            descriptor = os.open(env_dir / template.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(fill(template, values))
    aws_dir = directory / "aws"
    aws_dir.mkdir(exist_ok=True, mode=0o700)
    shutil.copyfile(LOCAL_ASSETS / "aws" / "fetch.py", aws_dir / "fetch.py")
    return directory


def write_aws_config(aws_dir: Path, url: str) -> None:
    """The container's AWS config: its only profile runs fetch.py against the credentials process."""
    (aws_dir / "config").write_text(
        "# Written by `workbench local up`: the laptop's credentials process (workbench/local_credentials.py).\n"
        f"[default]\ncredential_process = python3 /run/workbench-aws/fetch.py {url}\n")


# --- Docker ----------------------------------------------------------------------------------

def docker(*arguments: str, capture: bool = False) -> subprocess.CompletedProcess:
    executable = shutil.which("docker")
    if executable is None:
        raise WorkbenchError("docker not found: install Docker Desktop or Docker Engine with the compose plugin")
    return subprocess.run([executable, *arguments], check=False, text=True, stdin=subprocess.DEVNULL,
                          capture_output=capture)


def compose(directory: Path, project: str, *arguments: str, capture: bool = False) -> subprocess.CompletedProcess:
    return docker("compose", "--file", str(directory / project / "compose.yaml"), *arguments, capture=capture)


def published_ports(directory: Path) -> dict[int, str]:
    """Each port the rendered compose files publish on the laptop, with the service that does."""
    ports = {}
    for project in PROJECTS:
        for name, service in yaml.safe_load((directory / project / "compose.yaml").read_text())["services"].items():
            for mapping in service.get("ports", []):
                ports[int(mapping.split(":")[1])] = name
    return ports


def port_holders(directory: Path) -> list[str]:
    """What holds a port the laptop's services need, other than those services themselves."""
    ours = set()
    answer = docker("ps", "--format", "{{.Names}}", capture=True)
    if answer.returncode == 0:
        ours = {line for line in answer.stdout.split() if line.startswith("ai-workbench-")}
    taken = []
    for port, service in sorted(published_ports(directory).items()):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                continue
            except OSError:
                pass
        holders = docker("ps", "--filter", f"publish={port}", "--format", "{{.Names}}", capture=True).stdout.split()
        if holders and set(holders) <= ours:
            continue
        taken.append(f"port {port} ({service}) is taken by "
                     + (f"container {', '.join(holders)}" if holders else process_on(port)))
    return taken


def process_on(port: int) -> str:
    lsof = shutil.which("lsof")
    if lsof:
        answer = subprocess.run([lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fcp"], capture_output=True,
                                text=True, check=False)
        fields = dict((line[0], line[1:]) for line in answer.stdout.splitlines() if line[:1] in ("c", "p"))
        if fields:
            return f"process {fields.get('c', '?')} (pid {fields.get('p', '?')})"
    return "another program (lsof could not say which)"


def credentials_host() -> str:
    """Where host.docker.internal leads from a container: Docker Desktop maps it to the host's loopback;
    Docker Engine on Linux to the default bridge's gateway (host-gateway), a host address."""
    if sys.platform != "linux":
        return "127.0.0.1"
    answer = docker("network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}", capture=True)
    if answer.returncode != 0 or not answer.stdout.strip():
        raise WorkbenchError("cannot read the gateway of Docker's bridge network (docker network inspect bridge)")
    return answer.stdout.strip()


# --- the credentials process -----------------------------------------------------------------

def credentials_state(aws_dir: Path) -> dict | None:
    try:
        state = json.loads((aws_dir / local_credentials.STATE_FILE).read_text())
        os.kill(state["pid"], 0)
    except (OSError, ValueError, KeyError):
        return None
    return state


def start_credentials(aws_dir: Path, profile: str | None, host: str) -> dict:
    state = credentials_state(aws_dir)
    if state and state["profile"] == profile and state["host"] == host:
        return state
    stop_credentials(aws_dir)
    arguments = [sys.executable, "-m", "workbench.local_credentials", "--host", host, "--directory", str(aws_dir)]
    if profile:
        arguments += ["--profile", profile]
    with (aws_dir / "credentials.log").open("a") as log:
        process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # outlives this command, like the containers
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = credentials_state(aws_dir)
        if state and state["pid"] == process.pid:
            return state
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise WorkbenchError(f"the credentials process did not start; see {aws_dir / 'credentials.log'}")


def stop_credentials(aws_dir: Path) -> None:
    state = credentials_state(aws_dir)
    if state:
        os.kill(state["pid"], signal.SIGTERM)
    # Gone with the process: a process that is ending (or a zombie, to `up`'s own Python) still
    # answers os.kill(pid, 0), and must not be taken for a running one.
    (aws_dir / local_credentials.STATE_FILE).unlink(missing_ok=True)


# --- Cline's key -----------------------------------------------------------------------------

def litellm_call(method: str, path: str, master_key: str, body: dict | None = None,
                 base: str = "http://127.0.0.1:4000") -> tuple[int, dict]:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {master_key}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def ensure_cline_key(settings: Settings, values: dict[str, str], base: str = "http://127.0.0.1:4000") -> str:
    """Creates or updates Cline's virtual key as assets/boot/litellm-keys.sh does on the box."""
    key, master = values["LITELLM_CLINE_KEY"], values["LITELLM_MASTER_KEY"]
    request = subprocess.run(
        [sys.executable, str(bundle.ASSETS / "boot" / "litellm_key_request.py"), "cline", settings.name,
         "Cline in the user's own VS Code"], input=key, capture_output=True, text=True, check=True,
        env=settings.key_request_environment())
    status, info = litellm_call("GET", f"/key/info?key={hashlib.sha256(key.encode()).hexdigest()}", master, base=base)
    if status == 200:
        endpoint = "/key/generate" if info.get("info", {}).get("status") == "deleted" else "/key/update"
    elif status == 404:
        endpoint = "/key/generate"
    else:
        raise WorkbenchError(f"LiteLLM answered HTTP {status} to /key/info for Cline's key")
    status, _ = litellm_call("POST", endpoint, master, json.loads(request.stdout), base=base)
    if status != 200:
        raise WorkbenchError(f"LiteLLM refused Cline's key at {endpoint} (HTTP {status})")
    return endpoint


def cline_settings(settings: Settings, values: dict[str, str]) -> list[tuple[Path, dict]]:
    seed_cline = _load_asset_module("seed_cline")
    cline_data = Path.home() / ".cline" / "data"  # where seed_cline.py writes on the box, here the user's
    return [(cline_data / "globalState.json",
             seed_cline.cline_state(settings.versions.cline, settings.cline_model, LITELLM_URL)),
            (cline_data / "secrets.json", {"liteLlmApiKey": values["LITELLM_CLINE_KEY"]})]


def apply_cline(settings: Settings, values: dict[str, str], say: Callable[[str], None]) -> None:
    """Merges with seed_cline.py's merge (never changes a key that is there), after a backup."""
    seed_cline = _load_asset_module("seed_cline")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")  # noqa: UP017
    for path, wanted in cline_settings(settings, values):
        if path.exists():
            backup = path.with_name(f"{path.name}.{stamp}.bak")
            shutil.copy2(path, backup)
            os.chmod(backup, 0o600)
            say(f"backup: {backup}")
        say(seed_cline.merge(path, wanted, 0o600))


# --- the commands ----------------------------------------------------------------------------

def check_aws(settings: Settings, profile: str | None, say: Callable[[str], None]) -> None:
    try:
        session = boto3.Session(profile_name=profile, region_name=settings.bedrock_region)
        if session.get_credentials() is None:
            raise WorkbenchError(f"AWS profile {profile or 'default'} gives no credentials: "
                                 "run `aws configure` or `aws sso login`")
    except botocore.exceptions.BotoCoreError as error:
        raise WorkbenchError(f"AWS profile {profile or 'default'}: {error}") from error
    missing = [result for result in bedrock_access.report(session, settings.models, say) if result.ready is False]
    if missing:
        raise WorkbenchError("Bedrock does not answer yet for " + ", ".join(r.model.name for r in missing)
                             + " (above: what is missing)")


def up(settings: Settings, directory: Path, profile: str | None, say: Callable[[str], None]) -> None:
    check_aws(settings, profile, say)
    render(settings, directory)
    taken = port_holders(directory)
    if taken:
        raise WorkbenchError("; ".join(taken))
    host = credentials_host()
    state = start_credentials(directory / "aws", profile, host)
    write_aws_config(directory / "aws", f"http://{CONTAINER_CREDENTIALS_HOST}:{state['port']}"
                                        f"{local_credentials.box_endpoint().CREDENTIALS_PATH}")
    for project in PROJECTS:
        # --wait: until every service's own healthcheck (the box's) passes.
        if compose(directory, project, "up", "--detach", "--wait").returncode != 0:
            raise WorkbenchError(f"docker compose up failed for {project}; `workbench local logs SERVICE` shows why")
    say(f"Cline's key: {ensure_cline_key(settings, env_values(settings, seed(directory)))} done")


def down(directory: Path, volumes: bool) -> None:
    for project in reversed(PROJECTS):
        if compose(directory, project, "down", *(["--volumes"] if volumes else [])).returncode != 0:
            raise WorkbenchError(f"docker compose down failed for {project}")
    stop_credentials(directory / "aws")


def status(directory: Path) -> dict[str, str]:
    """Each service's state and health, from `docker compose ps --format json` (one object a line)."""
    services = {}
    for project in PROJECTS:
        answer = compose(directory, project, "ps", "--all", "--format", "json", capture=True)
        if answer.returncode != 0:
            raise WorkbenchError(f"docker compose ps failed for {project}: {answer.stderr.strip()}")
        for line in answer.stdout.splitlines():
            if line.strip():
                entry = json.loads(line)
                services[entry["Service"]] = entry.get("Health") or entry["State"]
    return services


def print_credentials(settings: Settings, values: dict[str, str], say: Callable[[str], None]) -> None:
    say("Langfuse      http://localhost:3000")
    say(f"  login       {settings.langfuse_admin_email}")
    say(f"  password    {values['LANGFUSE_ADMIN_PASSWORD']}")
    say(f"  public key  {values['LANGFUSE_PUBLIC_KEY']}")
    say(f"  secret key  {values['LANGFUSE_SECRET_KEY']}")
    say(f"LiteLLM       {LITELLM_URL}")
    say(f"  master key  {values['LITELLM_MASTER_KEY']}   (operator only: admin API and UI)")
    say("Cline (your VS Code; `workbench local cline --apply` sets it up)")
    say("  API Provider  LiteLLM")
    say(f"  Base URL      {LITELLM_URL}")
    say(f"  API Key       {values['LITELLM_CLINE_KEY']}   (Cline's own: these models, a daily budget)")
    say(f"  Model         {settings.cline_model}")
