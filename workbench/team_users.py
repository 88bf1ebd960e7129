"""`workbench team`: open a team gateway's Langfuse and LiteLLM, and manage the people who use it.

Each person has a LiteLLM virtual key on the gateway, made like a box's Cline key
(assets/boot/litellm_key_request.py: the configured models, a daily budget, the per-minute limits,
and only the routes Cline calls), with their name as LiteLLM's user id, which is what Langfuse shows
as the user of their traces. The key is kept in a Secrets Manager secret of that person
(team_contract.user_secret_name), where their light workbench reads it at boot; `add-user` prints it
once for a laptop's Cline.

The admin calls go to the gateway's LiteLLM with its master key (the derived secret's
LITELLM_MASTER_KEY), through a port forward via the access host opened for the command and closed
after it: the load balancer is internal.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import botocore.exceptions

from workbench import connect as connecting
from workbench import team_contract
from workbench.aws import WorkbenchAws, WorkbenchError
from workbench.bundle import ASSETS
from workbench.secrets import ALPHANUMERIC
from workbench.settings import NAME_PATTERN, Settings, TeamSettings

KEY_REQUEST = ASSETS / "boot" / "litellm_key_request.py"
KEY_LENGTH = 32  # as the box's keys (workbench/secrets.py)
TUNNEL_WAIT_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 30
PAGE_SIZE = 100  # LiteLLM's largest /key/list page (key_management_endpoints.py list_keys: size le=100)


@dataclass(frozen=True)
class TeamGateway:
    name: str
    region: str
    access_instance_id: str
    host: str
    derived_secret_arn: str

    @property
    def litellm_url(self) -> str:
        """Where a workbench in the team's VPC reaches LiteLLM."""
        return team_contract.gateway_url(self.host)


@dataclass(frozen=True)
class UserKey:
    user: str
    key: str
    models: list[str]
    budget_usd_per_day: float


def gateway(aws: WorkbenchAws, team: TeamSettings) -> TeamGateway:
    try:
        (stack,) = aws.session.client("cloudformation").describe_stacks(StackName=team.stack_name)["Stacks"]
    except botocore.exceptions.ClientError as error:
        if "does not exist" not in str(error):
            raise
        raise WorkbenchError(f"no team gateway {team.name!r} in {aws.region} (stack {team.stack_name} not found); "
                             "deploy it with `make deploy-team`") from error
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [key for key in (team_contract.ACCESS_INSTANCE_ID, team_contract.GATEWAY_HOST,
                               team_contract.DERIVED_SECRET_ARN) if key not in outputs]
    if missing:
        raise WorkbenchError(f"stack {team.stack_name} is {stack['StackStatus']} and has no {missing[0]} yet")
    return TeamGateway(team.name, aws.region, outputs[team_contract.ACCESS_INSTANCE_ID],
                       outputs[team_contract.GATEWAY_HOST], outputs[team_contract.DERIVED_SECRET_ARN])


def master_key(aws: WorkbenchAws, team: TeamGateway) -> str:
    answer = aws.session.client("secretsmanager").get_secret_value(SecretId=team.derived_secret_arn)
    return json.loads(answer["SecretString"])["LITELLM_MASTER_KEY"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def litellm_tunnel(aws: WorkbenchAws, team: TeamGateway, say: Callable[[str], None]) -> Iterator[str]:
    """A port forward to the gateway's LiteLLM on a free local port, for one command; its base URL."""
    connecting.require_tools()
    connecting.wait_until_reachable(aws, team.access_instance_id, say)
    forward = connecting.Forward("LiteLLM", team_contract.SERVICE_PORTS["LiteLLM"], free_port())
    connecting.start_forwards(aws, team.access_instance_id, [forward], remote_host=team.host)
    try:
        base = f"http://127.0.0.1:{forward.local_port}"
        deadline = time.monotonic() + TUNNEL_WAIT_SECONDS
        while not _answers(f"{base}/health/liveliness"):
            if time.monotonic() > deadline:
                raise WorkbenchError(f"the gateway's LiteLLM did not answer through the port forward within "
                                     f"{TUNNEL_WAIT_SECONDS} s")
            time.sleep(1)
        yield base
    finally:
        connecting.stop_forwards([forward])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:  # refused, reset or timed out while the forward starts
        return False


class LiteLLMAdmin:
    """LiteLLM's key management API (1.108.7, proxy/management_endpoints/key_management_endpoints.py)."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise WorkbenchError(f"LiteLLM answered {error.code} to {method} {path}: {detail}") from error

    def generate(self, body: dict) -> dict:
        return self._call("POST", "/key/generate", body)

    def delete(self, alias: str) -> list:
        return self._call("POST", "/key/delete", {"key_aliases": [alias]}).get("deleted_keys", [])

    def user_keys(self) -> list[dict]:
        """Every person's key (alias cline-NAME), all pages."""
        found, page = [], 1
        while True:
            query = urllib.parse.urlencode({"return_full_object": "true", "size": PAGE_SIZE, "page": page})
            answer = self._call("GET", f"/key/list?{query}")
            found += [key for key in answer.get("keys", []) if isinstance(key, dict)
                      and str(key.get("key_alias") or "").startswith(team_contract.USER_KEY_ALIAS_PREFIX)]
            if page >= (answer.get("total_pages") or 1):
                return found
            page += 1


def check_user_name(user: str) -> str:
    if not NAME_PATTERN.fullmatch(user):
        raise WorkbenchError(f"user {user!r} is not allowed; use 1-24 lowercase letters, digits or hyphens, starting "
                             "with a letter (it also names their light workbench)")
    return user


def key_request(settings: Settings, user: str, key: str, budget: float, models: list[str]) -> dict:
    """The box's own request for Cline's key (assets/boot/litellm_key_request.py), for this person."""
    environment = {**settings.key_request_environment(), "LITELLM_MODEL_NAMES": ",".join(models),
                   "CLINE_BUDGET_USD_PER_DAY": f"{budget:g}", "PATH": os.environ.get("PATH", "")}
    result = subprocess.run([sys.executable, str(KEY_REQUEST), "cline", user, "a team member's Cline"],
                            input=key, capture_output=True, text=True, env=environment, check=True)
    return {**json.loads(result.stdout), "key_alias": team_contract.user_key_alias(user),
            "metadata": {"managed_by": "workbench team", "purpose": "a team member's Cline"}}


def add_user(aws: WorkbenchAws, team: TeamGateway, settings: Settings, admin: LiteLLMAdmin, user: str,
             budget: float | None, models: list[str] | None) -> UserKey:
    check_user_name(user)
    known = [model.name for model in settings.models]
    chosen = models or known
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise WorkbenchError(f"--models: {unknown[0]!r} is not one the gateway serves; use some of {', '.join(known)}")
    daily = settings.cline_budget_usd_per_day if budget is None else budget
    if not 0 < daily <= 10000:
        raise WorkbenchError(f"--budget: {daily:g} is out of range; use US dollars per day above 0, at most 10000")
    if any(row.get("key_alias") == team_contract.user_key_alias(user) for row in admin.user_keys()):
        raise WorkbenchError(f"{user} already has a key on the gateway; `workbench team remove-user {user}` first")
    key = "sk-" + "".join(secrets.choice(ALPHANUMERIC) for _ in range(KEY_LENGTH))
    admin.generate(key_request(settings, user, key, daily, chosen))
    client = aws.session.client("secretsmanager")
    try:
        client.create_secret(
            Name=team_contract.user_secret_name(team.name, user),
            Description=f"AI Coding Workbench team gateway {team.name}: {user}'s LiteLLM key, for their Cline",
            SecretString=json.dumps({team_contract.USER_SECRET_KEY: key,
                                     team_contract.USER_SECRET_BASE_URL: team.litellm_url}),
            Tags=[{"Key": "ai-workbench-team", "Value": team.name}, {"Key": "ai-workbench-user", "Value": user}])
    except botocore.exceptions.ClientError as error:
        admin.delete(team_contract.user_key_alias(user))  # no key without its secret
        raise WorkbenchError(f"could not keep {user}'s key in Secrets Manager ({error}); the key was deleted "
                             "again") from error
    return UserKey(user, key, chosen, daily)


def remove_user(aws: WorkbenchAws, team: TeamGateway, admin: LiteLLMAdmin, user: str) -> list[str]:
    """Revokes the key first (LiteLLM refuses it at once on the task that deletes it, on the others within
    the key cache's time; workbench/bundle.py TEAM_KEY_CACHE_SECONDS), then deletes its secret. What was done."""
    check_user_name(user)
    done = []
    if admin.delete(team_contract.user_key_alias(user)):
        done.append("key revoked")
    client = aws.session.client("secretsmanager")
    name = team_contract.user_secret_name(team.name, user)
    try:
        described = client.describe_secret(SecretId=name)
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        described = {"DeletedDate": None}
    if "DeletedDate" not in described:
        # At once, not after a recovery window: the key is revoked, and the name is free for a new add-user.
        client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        done.append("secret deleted")
    if not done:
        raise WorkbenchError(f"{user} has no key on the team gateway {team.name}")
    return done
