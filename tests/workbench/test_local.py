"""`workbench local`: the laptop's tree, its credentials process, and the commands around `docker compose`.

No Docker engine runs here: the commands run against a recording stub of `docker` (tests/workbench:
docker_stub below), whose canned answers are named where they are given. Image pulls, the start
order of the containers and their health are what only a real engine proves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
import yaml

from tools import gateway
from workbench import bedrock_access, bundle, cli, local, settings
from workbench import secrets as derivation
from workbench.aws import WorkbenchError

# The Compose Specification's JSON schema as docker-compose 1.29.2 ships it (PyPI wheel
# docker_compose-1.29.2-py2.py3-none-any.whl, sha256 8d558937...c94cef809, compose/config/compose_spec.json,
# sha256 0dc04bd3...2b112bac). It predates the spec's top-level `name`, checked separately below.
COMPOSE_SPEC = json.loads((Path(__file__).parent / "test_local_compose_spec.json").read_text())
PROJECT_NAME = r"^[a-z0-9][a-z0-9_-]*$"  # the Compose Specification's rule for a project name


@pytest.fixture(scope="module")
def loaded() -> settings.Settings:
    return settings.load()


@pytest.fixture(scope="module")
def tree(loaded, tmp_path_factory) -> Path:
    return local.render(loaded, tmp_path_factory.mktemp("local") / "laptop")


@pytest.fixture(scope="module")
def box(loaded, tmp_path_factory) -> Path:
    return bundle.render(loaded, tmp_path_factory.mktemp("box") / "tree")


def documents(root: Path) -> dict[str, dict]:
    return {project: yaml.safe_load((root / project / "compose.yaml").read_text()) for project in local.PROJECTS}


def test_compose_files_follow_the_compose_specification_with_every_reference_resolved(tree):
    laptop = documents(tree)
    shared = {}
    for project, document in laptop.items():
        assert re.match(PROJECT_NAME, document["name"]), project
        jsonschema.validate({key: value for key, value in document.items() if key != "name"}, COMPOSE_SPEC)
        networks, volumes = document.get("networks", {}), document.get("volumes", {})
        for name, service in document["services"].items():
            for network in service.get("networks", []):
                assert network == "default" or network in networks, (project, name, network)
            for dependency in service.get("depends_on", {}):
                assert dependency in document["services"], (project, name, dependency)
            for env_file in service.get("env_file", []):
                assert (tree / project / env_file).is_file(), (project, name, env_file)
            for mount in service.get("volumes", []):
                source = mount.split(":")[0]
                if source.startswith("."):
                    assert (tree / project / source).exists(), (project, name, source)
                else:
                    assert source in volumes, (project, name, source)
        for key, network in networks.items():
            shared.setdefault(network.get("name", key), []).append((project, network.get("external", False)))
    # The shared network: created by exactly one project, joined as external by the others.
    for name, users in shared.items():
        if len(users) > 1:
            assert sorted(external for _, external in users) == [False] + [True] * (len(users) - 1), name


def flatten(value, path=()) -> dict[tuple, object]:
    if isinstance(value, dict) and value:
        return {leaf: v for key, child in value.items() for leaf, v in flatten(child, (*path, key)).items()}
    return {path: value}


def test_the_laptops_compose_files_differ_from_the_boxs_only_by_the_overlay(tree, box):
    overlay = yaml.safe_load(local.OVERLAY.read_text())
    laptop, boxed = documents(tree), documents(box)
    for project in local.PROJECTS:
        changed = [tuple(path) for path in overlay[project]["delete"]] + list(flatten(overlay[project]["merge"]))
        before, after = flatten(boxed[project]), flatten(laptop[project])

        differing = {path for path in before.keys() | after.keys() if before.get(path, "-") != after.get(path, "+")}
        assert not [path for path in differing
                    if not any(path[:len(prefix)] == prefix or prefix[:len(path)] == path for prefix in changed)], project
        # And every overlay entry does change something: none outlives a change to the box's files.
        assert not [prefix for prefix in changed if not any(path[:len(prefix)] == prefix for path in differing)], project


def test_env_files_hold_the_laptops_derived_secrets_for_the_user_only(loaded, tree):
    seed = derivation.seed_of((tree / local.SEED_FILE).read_text())
    assert stat.S_IMODE((tree / local.SEED_FILE).stat().st_mode) == 0o600
    env = {}
    for path in (tree / "env").glob("*.env"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert "{{" not in path.read_text(), path
        env[path.name] = dict(line.split("=", 1) for line in path.read_text().splitlines()
                              if line and not line.startswith("#"))
    assert env["litellm.env"]["LITELLM_MASTER_KEY"] == derivation.derive(seed, derivation.BY_KEY["litellm-master-key"])
    blob_key = derivation.derive(seed, local.BLOB_SECRETS[0])
    assert env["local-blob-server.env"]["AWS_ACCESS_KEY_ID"] == blob_key
    assert env["local-blob.env"]["LANGFUSE_S3_EVENT_UPLOAD_ACCESS_KEY_ID"] == blob_key
    # A second render keeps the seed: the databases' passwords must not change under them.
    local.render(loaded, tree)
    assert derivation.seed_of((tree / local.SEED_FILE).read_text()) == seed
    # No secret in a compose file.
    compose_text = "".join((tree / project / "compose.yaml").read_text() for project in local.PROJECTS)
    assert not [value for value in local.secret_values(seed).values() if value in compose_text]


PROFILE_KEY = "AKIALOCALPROFILETEST"


@pytest.fixture
def aws_profile(tmp_path, monkeypatch) -> dict[str, str]:
    """A static-key profile in test files, standing in for the user's ~/.aws."""
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("[profile workshop]\nregion = us-east-1\n")
    credentials.write_text(f"[workshop]\naws_access_key_id = {PROFILE_KEY}\naws_secret_access_key = profile-secret\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def credentials_process(tree, aws_profile):
    state = local.start_credentials(tree / "aws", "workshop", "127.0.0.1")
    local.write_aws_config(tree / "aws", f"http://127.0.0.1:{state['port']}/services-role")
    yield state
    local.stop_credentials(tree / "aws")


def host_config(tree: Path, target: Path) -> Path:
    """The container's aws/config with the mount's path and python3 as they are on this machine."""
    text = (tree / "aws" / "config").read_text()
    assert "python3 /run/workbench-aws/fetch.py" in text
    target.write_text(text.replace("python3 /run/workbench-aws/", f"{sys.executable} {tree / 'aws'}/"))
    return target


def test_botocore_gets_the_profiles_credentials_as_refreshable_through_fetch_py(tree, credentials_process, tmp_path):
    assert stat.S_IMODE((tree / "aws" / "token").stat().st_mode) == 0o600
    program = textwrap.dedent("""
        import botocore.session
        credentials = botocore.session.Session().get_credentials()
        print(type(credentials).__name__, credentials.get_frozen_credentials().access_key, credentials.method)
    """)
    env = {"PATH": os.environ["PATH"], "AWS_CONFIG_FILE": str(host_config(tree, tmp_path / "config")),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    answer = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True)
    assert answer.stdout.split() == ["RefreshableCredentials", PROFILE_KEY, "custom-process"]


def test_a_request_without_the_token_gets_nothing(credentials_process):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{credentials_process['port']}/services-role", timeout=5)
    assert refused.value.code == 401


class FakeKeyApi(BaseHTTPRequestHandler):
    """LiteLLM's key API as assets/boot/litellm-keys.sh meets it on a new database: /key/info answers
    404 for a key it does not hold, /key/generate 200. Records each request."""

    def do_GET(self):
        self.server.requests.append((self.command, self.path, dict(self.headers), None))
        self.send_response(404)
        self.end_headers()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def cline_key_request(loaded, values) -> tuple[list, dict]:
    """What `up` sends to LiteLLM's key API for Cline's key, from a fake of that API."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKeyApi)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert local.ensure_cline_key(loaded, values, f"http://127.0.0.1:{server.server_port}") == "/key/generate"
    finally:
        server.shutdown()
    return server.requests, server.requests[-1][3]


def test_cline_key_is_created_as_the_box_creates_it(loaded, tree):
    values = local.env_values(loaded, local.seed(tree))
    requests, body = cline_key_request(loaded, values)
    key = values["LITELLM_CLINE_KEY"]
    assert [(method, path.split("?")[0]) for method, path, _, _ in requests] == [("GET", "/key/info"),
                                                                                 ("POST", "/key/generate")]
    assert all(headers["Authorization"] == f"Bearer {values['LITELLM_MASTER_KEY']}" for _, _, headers, _ in requests)
    assert key not in requests[0][1]  # looked up by its sha256, as on the box
    assert body == gateway.key_request("cline", loaded.name, key, loaded.key_request_environment()) | {
        "metadata": {"managed_by": "workbench-boot", "purpose": "Cline in the user's own VS Code"}}


def test_real_litellm_answers_clines_chat_through_bedrock_with_the_profiles_credentials(loaded, tree,
                                                                                       credentials_process, tmp_path):
    config = yaml.safe_load((tree / "litellm" / "config.yaml").read_text())
    values = local.env_values(loaded, local.seed(tree))
    # Cline's key as `up` creates it, served as LiteLLM's key table (no Postgres offline: tools/gateway.py).
    stored = gateway.stored_keys(tmp_path, config, [cline_key_request(loaded, values)[1]])
    # Only what Docker provides is left out: the database and the Langfuse host (tools/gateway.py).
    env_changes = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", **stored,
                   "AWS_CONFIG_FILE": str(host_config(tree, tmp_path / "config")),
                   "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    with gateway.running_proxy(tmp_path, tree, config, env_changes) as proxy:
        status, answer = gateway.answer(proxy.port, "/chat/completions", values["LITELLM_CLINE_KEY"],
                                        {"model": loaded.cline_model, "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200, answer
        signed = [headers["authorization"] for path, headers, _ in proxy.bedrock.requests if "/converse" in path]
        assert signed and all(f"Credential={PROFILE_KEY}/" in header for header in signed)


def test_up_names_what_holds_a_taken_port(tree, docker_stub, monkeypatch):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setattr(local, "published_ports", lambda directory: {port: "langfuse-web"})
        # The stub's `docker ps` answers nothing: no container publishes the port.
        [taken] = local.port_holders(tree)
    assert taken.startswith(f"port {port} (langfuse-web) is taken by ")
    # lsof names the process where it is installed (here: this test's own); otherwise the answer says so.
    assert (f"(pid {os.getpid()})" if shutil.which("lsof") else "lsof could not say which") in taken


DOCKER_STUB = """#!/bin/sh
# Records each call's arguments (one JSON list a line) and answers as Docker would:
"{python}" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >>"{log}"
case "$*" in
  # `docker network inspect bridge --format ...`: the bridge's gateway; 127.0.0.1 here, as this
  # machine has no docker0 (Docker Engine's default is 172.17.0.1).
  "network inspect"*) echo 127.0.0.1 ;;
  # `docker compose ps --all --format json`: one JSON object a line (Compose v2.21+), the fields read.
  *" ps --all --format json") echo '{{"Service":"litellm","State":"running","Health":"healthy"}}' ;;
esac
exit 0
"""


@pytest.fixture
def docker_stub(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "docker-calls"
    stub = tmp_path / "bin" / "docker"
    stub.parent.mkdir()
    stub.write_text(DOCKER_STUB.format(python=sys.executable, log=log))
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}:{os.environ['PATH']}")
    monkeypatch.setenv(local.HOME_VARIABLE, str(tmp_path / "home"))
    log.touch()
    return log


def test_up_names_a_missing_profile_and_each_model_bedrock_does_not_answer_for(loaded, aws_profile,
                                                                                         monkeypatch):
    """Before anything starts. Bedrock's answers per model are bedrock_access's (test_bedrock_access.py,
    against botocore's model of the API); here, that up stops on them and names the models."""
    with pytest.raises(WorkbenchError, match=r"^AWS profile nobody: The config profile \(nobody\) could not be found"):
        local.check_aws(loaded, "nobody", print)
    seen_keys = []

    def check_all(session, models):
        seen_keys.append(session.get_credentials().access_key)
        return [bedrock_access.ModelAccess(model, index != 0, "ready" if index else "not offered in us-east-1")
                for index, model in enumerate(models)]

    monkeypatch.setattr(bedrock_access, "check_all", check_all)
    lines = []
    with pytest.raises(WorkbenchError) as refused:
        local.check_aws(loaded, "workshop", lines.append)
    assert seen_keys == [PROFILE_KEY]  # the profile's own credentials asked Bedrock
    assert str(refused.value) == f"Bedrock does not answer yet for {loaded.models[0].name} (above: what is missing)"
    assert lines[0].endswith(": not offered in us-east-1")


def test_up_down_status_and_logs_call_compose_with_files_and_never_a_secret(loaded, docker_stub, aws_profile,
                                                                            monkeypatch, capsys):
    checked, keys = [], []
    # Bedrock and LiteLLM's key API need AWS and running containers; each has its own tests
    # (test_bedrock_access.py; ensure_cline_key below).
    monkeypatch.setattr(local, "check_aws", lambda *args: checked.append(args[1]))
    monkeypatch.setattr(local, "ensure_cline_key", lambda *args: keys.append(args) or "/key/generate")
    monkeypatch.setattr(local, "port_holders", lambda directory: [])
    assert cli.main(["--profile", "workshop", "local", "up"]) == 0
    directory = local.home(loaded.name)
    assert checked == ["workshop"] and len(keys) == 1
    assert local.credentials_state(directory / "aws") is not None
    assert cli.main(["local", "status"]) == 0
    assert cli.main(["local", "logs", "litellm", "--lines", "5"]) == 0
    assert cli.main(["local", "down", "--volumes", "--yes"]) == 0
    calls = [json.loads(line) for line in docker_stub.read_text().splitlines()]
    files = {project: str(directory / project / "compose.yaml") for project in local.PROJECTS}
    compose_calls = [call for call in calls if call[0] == "compose"]
    assert compose_calls[:2] == [["compose", "--file", files["langfuse"], "up", "--detach", "--wait"],
                                 ["compose", "--file", files["litellm"], "up", "--detach", "--wait"]]
    assert ["compose", "--file", files["litellm"], "logs", "--tail", "5", "litellm"] in compose_calls
    assert compose_calls[-2:] == [["compose", "--file", files["litellm"], "down", "--volumes"],
                                  ["compose", "--file", files["langfuse"], "down", "--volumes"]]
    secret_values = local.secret_values(local.seed(directory)).values()
    assert not [value for value in secret_values if any(value in argument for call in calls for argument in call)]


def test_cline_apply_merges_keeps_the_users_keys_and_backs_up(loaded, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(local.HOME_VARIABLE, str(tmp_path / "home"))
    state = tmp_path / ".cline" / "data" / "globalState.json"
    state.parent.mkdir(parents=True)
    mine = {"planModeApiProvider": "anthropic", "somethingElse": 1}
    state.write_text(json.dumps(mine))
    assert cli.main(["local", "cline", "--apply"]) == 0
    merged = json.loads(state.read_text())
    assert merged["planModeApiProvider"] == "anthropic" and merged["somethingElse"] == 1
    assert merged["actModeApiProvider"] == "litellm" and merged["liteLlmBaseUrl"] == local.LITELLM_URL
    backups = list(state.parent.glob("globalState.json.*.bak"))
    assert len(backups) == 1 and json.loads(backups[0].read_text()) == mine
    values = local.env_values(loaded, local.seed(local.home(loaded.name)))
    secrets_file = state.parent / "secrets.json"
    assert json.loads(secrets_file.read_text()) == {"liteLlmApiKey": values["LITELLM_CLINE_KEY"]}
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
