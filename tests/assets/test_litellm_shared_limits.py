"""The team gateway: two LiteLLM processes (two ECS tasks, one worker each) sharing one Redis enforce a key's
per-minute limit and its daily budget jointly, and refuse a revoked key within a measured bound.

The real LiteLLM 1.108.7 runs twice with bundle.team_litellm_config, against a real redis-server (Debian's,
with a password, no persistence), in front of one fake Bedrock (tools/gateway.py's, answering ConverseStream
as Bedrock's reference documents it; it records every call). The same two processes with the box's config
(no Redis) are the control: there each process counts alone, so the same calls get more admitted, which is
what these tests would see if the team config shared nothing.

Keys: no Postgres runs offline, so the key table is the stored-keys file of tests/assets/litellm_stored_key.py,
with the budget check and cost callback of litellm_key_budget.py, read through LiteLLM's own key cache
(litellm_cached_key.py): a process reads the file only where LiteLLM would read its database, on a miss of
user_api_key_cache, so a revoked row stays in force on a process exactly as long as LiteLLM keeps it there.
"""

import hashlib
import http.client
import json
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from benchmarks.gateway import cline_turns
from tools.gateway import GatewayError, free_port, key_request, running_proxy, serve, stored_keys
from workbench import bundle, settings

REDIS_PASSWORD = "test-redis-password"  # a test value; the team's comes from its task's environment
BUDGET_ERROR = re.compile(r"Budget has been exceeded!.*Current cost: ([-0-9.e]+),.*Max budget: ([-0-9.e]+)")
BOOKING_SECONDS = 30  # see test_litellm_budget.py: the cost callback books a call just after its stream ends
# The other process gets a block's eviction over Redis pub/sub: measured 0.03-0.06 s on an idle 2-CPU machine;
# asserted with room for a loaded one (a call under way when the eviction lands still counts).
BLOCK_BOUND_SECONDS = 3.0
# A deleted key's end on the other process: its cached row's TTL, measured 9.9-10.05 s after caching with the
# team's 10 s; the room is the same as above.
DELETE_SLACK_SECONDS = 3.0


@contextmanager
def running_redis(workdir: Path) -> Iterator[int]:
    """Debian's redis-server on a free local port, requiring a password (from a 0600 config file, not the
    command line), keeping nothing on disk."""
    port = free_port()
    conf = workdir / "redis.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\nrequirepass {REDIS_PASSWORD}\nsave \"\"\nappendonly no\n"
                    f"dir {workdir}\n")
    conf.chmod(0o600)
    process = subprocess.Popen(["redis-server", str(conf)], stdout=(workdir / "redis.log").open("w"),
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while redis_cli(port, "PING") != "PONG":
            if process.poll() is not None or time.monotonic() > deadline:
                raise GatewayError(f"redis-server did not start:\n{(workdir / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def redis_cli(port: int, *command: str) -> str:
    """One command through Debian's redis-cli; the password through its environment, not its arguments."""
    done = subprocess.run(["redis-cli", "-p", str(port), "--no-auth-warning", *command], capture_output=True,
                          text=True, env={"REDISCLI_AUTH": REDIS_PASSWORD, "PATH": os.environ["PATH"]})
    return done.stdout.strip()


@contextmanager
def two_processes(workdir: Path, config_text: str, redis_env: dict[str, str]) -> Iterator[dict]:
    """Two proxies with this config (each with its own config directory, as two tasks have) that share one
    key table and one fake Bedrock."""
    loaded = settings.load()
    tree = bundle.render(loaded, workdir / "bundle")
    bedrock = serve()
    keys_file = workdir / "stored-keys.json"
    keys_file.write_text("[]")
    with ExitStack() as stack:
        ports = []
        for name in ("a", "b"):
            taskdir = workdir / name
            taskdir.mkdir()
            config = yaml.safe_load(config_text)
            stored_keys(taskdir, config, [], cached=True)
            env = {"WORKBENCH_STORED_KEYS": str(keys_file), **redis_env}
            ports.append(stack.enter_context(running_proxy(taskdir, tree, config, env, bedrock=bedrock)).port)
        yield {"ports": ports, "bedrock": bedrock, "keys": keys_file, "settings": loaded,
               "body": json.dumps(cline_turns(loaded.cline_model)[0]).encode()}
    bedrock.shutdown()


def hashed(key: str) -> str:
    """The key's token as LiteLLM names it (litellm.proxy._types.hash_token)."""
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory) -> Iterator[int]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli missing: `make test` installs Debian's redis-server and redis-tools")
    with running_redis(tmp_path_factory.mktemp("redis")) as port:
        yield port


@pytest.fixture(scope="module")
def team(tmp_path_factory, redis_port) -> Iterator[dict]:
    redis_env = {"LITELLM_REDIS_HOST": "127.0.0.1", "LITELLM_REDIS_PORT": str(redis_port),
                 "LITELLM_REDIS_PASSWORD": REDIS_PASSWORD, "LITELLM_REDIS_SSL": "false"}
    try:
        with two_processes(tmp_path_factory.mktemp("team"), bundle.team_litellm_config(settings.load()),
                           redis_env) as running:
            yield {**running, "redis": redis_port}
    except GatewayError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Iterator[dict]:
    try:
        with two_processes(tmp_path_factory.mktemp("box"), bundle.litellm_config(settings.load()), {}) as running:
            yield running
    except GatewayError as error:
        pytest.fail(str(error))


def add_key(gateway: dict, key: str, budget: float = 20.0, requests: int | None = None) -> None:
    """Cline's key as the boot requests it (assets/boot/litellm_key_request.py), with this daily budget and,
    given `requests`, a room's per-minute limit on Cline's model (settings' cline_limits_per_minute)."""
    limits = {gateway["settings"].cline_model: {"tokens": 10_000_000, "requests": requests}} if requests else None
    loaded = settings.load(overrides={"cline_limits_per_minute": limits} if limits else None)
    body = key_request("cline", loaded.name, key, {**loaded.key_request_environment(),
                                                   "CLINE_BUDGET_USD_PER_DAY": repr(budget)})
    assert body["max_budget"] == budget
    gateway["keys"].write_text(json.dumps([*json.loads(gateway["keys"].read_text()), body]))


def change_row(gateway: dict, key: str, change) -> None:
    """The test's write to the key table, as /key/block or /key/delete writes LiteLLM's database."""
    rows = json.loads(gateway["keys"].read_text())
    gateway["keys"].write_text(json.dumps([row for row in (change(row) if row["key"] == key else row for row in rows)
                                           if row is not None]))


def call(gateway: dict, process: int, key: str) -> tuple[int, str]:
    """Cline's first turn with this key to process 0 (A) or 1 (B), read to the end of its stream."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway["ports"][process], timeout=60)
    try:
        connection.request("POST", "/chat/completions", body=gateway["body"],
                           headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def post(gateway: dict, process: int, path: str, body: dict) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway["ports"][process], timeout=60)
    try:
        connection.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        response.read()
    finally:
        connection.close()


def converse_calls(gateway: dict) -> int:
    return sum(1 for path, _, _ in list(gateway["bedrock"].requests) if path.endswith("/converse-stream"))


def refused_at(answer: str, budget: float) -> float:
    match = BUDGET_ERROR.search(answer)
    assert match, answer
    assert float(match.group(2)) == pytest.approx(budget)
    return float(match.group(1))


def booked_call(gateway: dict, process: int, key: str, budget: float) -> tuple[int, str]:
    """A call once the previous one is booked: a refusal naming exactly the budget (the previous call's
    reservation, still held) is tried again (test_litellm_budget.py's booked_call)."""
    deadline = time.monotonic() + BOOKING_SECONDS
    while True:
        status, answer = call(gateway, process, key)
        held = status != 200 and math.isclose(refused_at(answer, budget), budget, rel_tol=1e-6)
        if not held or time.monotonic() > deadline:
            return status, answer
        time.sleep(0.05)


def call_cost(gateway: dict, key: str) -> float:
    """One Cline call's cost as LiteLLM books it, from LiteLLM's own refusal on process A alone (a key with
    almost no budget gets one call, then is refused naming its spend; test_litellm_budget.py's call_cost)."""
    budget = 1e-9
    add_key(gateway, key, budget)
    assert call(gateway, 0, key)[0] == 200
    status, answer = booked_call(gateway, 0, key, budget)
    assert status == 422 and "budget_exceeded" in answer, answer
    return refused_at(answer, budget)


def rpm_statuses(gateway: dict, key: str) -> tuple[list[int], int]:
    """Two requests a minute on Cline's model; four calls alternating A, B, A, B: (statuses, Bedrock calls)."""
    add_key(gateway, key, requests=2)
    before = converse_calls(gateway)
    answers = [call(gateway, process, key) for process in (0, 1, 0, 1)]
    return [status for status, _ in answers], converse_calls(gateway) - before


def test_a_keys_requests_per_minute_limit_holds_across_both_processes(team):
    statuses, reached_bedrock = rpm_statuses(team, "sk-team-rpm")
    assert statuses == [200, 200, 429, 429]
    assert reached_bedrock == 2
    # One counter in the shared Redis (parallel_request_limiter_v3's Lua scripts) holds the window's calls of
    # both processes, the refused ones too: the limiter counts a call, then compares.
    counter = f"{{model_per_key:{hashed('sk-team-rpm')}:{team['settings'].cline_model}}}:requests"
    assert redis_cli(team["redis"], "GET", counter) == "4"


def test_control_with_the_box_config_each_process_admits_the_whole_limit(box):
    statuses, reached_bedrock = rpm_statuses(box, "sk-box-rpm")
    assert statuses == [200, 200, 200, 200]
    assert reached_bedrock == 4


def budget_statuses(gateway: dict, key: str, calls: int) -> tuple[list[tuple[int, str]], float, float]:
    """A budget of 2.5 calls; `calls` calls alternating A, B, each once the one before is booked."""
    cost = call_cost(gateway, key + "-cost")
    budget = 2.5 * cost
    add_key(gateway, key, budget)
    return [booked_call(gateway, i % 2, key, budget) for i in range(calls)], cost, budget


def test_a_keys_daily_budget_holds_across_both_processes(team):
    """Three calls are admitted in all (the third starts under the budget and crosses it), then both
    processes refuse. Once the third call is booked, each names the spend of all three, which Redis holds
    in the key's spend counter (a refusal while the third call's reservation is still held names the
    spend plus that reservation: still a refusal)."""
    key = "sk-team-budget"
    answers, cost, budget = budget_statuses(team, key, 8)
    assert [status for status, _ in answers] == [200] * 3 + [422] * 5, answers
    for _, answer in answers[3:]:
        assert refused_at(answer, budget) >= 3 * cost * (1 - 1e-6)
    deadline = time.monotonic() + BOOKING_SECONDS
    while time.monotonic() < deadline and refused_at(call(team, 0, key)[1], budget) > 3 * cost * (1 + 1e-6):
        time.sleep(0.05)
    for process in (0, 1):
        status, answer = call(team, process, key)
        assert status == 422 and refused_at(answer, budget) == pytest.approx(3 * cost, rel=1e-6), answer
    counter = redis_cli(team["redis"], "GET", f"spend:key:{hashed(key)}")
    assert float(counter) == pytest.approx(3 * cost, rel=1e-6)


def test_control_with_the_box_config_each_process_spends_the_whole_budget(box):
    answers, _, _ = budget_statuses(box, "sk-box-budget", 8)
    assert [status for status, _ in answers] == [200] * 6 + [422] * 2, answers


def cached_on_both(gateway: dict, key: str) -> None:
    add_key(gateway, key)
    assert [call(gateway, process, key)[0] for process in (0, 1)] == [200, 200]


def first_refusal(gateway: dict, process: int, key: str, since: float, within: float) -> tuple[float, int]:
    """Calls until this process refuses the key: (seconds since `since`, calls it admitted meanwhile)."""
    admitted = 0
    while True:
        status, answer = call(gateway, process, key)
        if status != 200:
            assert status == 401, answer
            return time.monotonic() - since, admitted
        admitted += 1
        assert time.monotonic() - since < within, f"process {process} still admits the key after {within} s"
        time.sleep(0.05)


def test_a_blocked_key_is_refused_by_both_processes_within_the_bound(team):
    """/key/block's path: the row changes (the file), the process that served the block evicts its cached
    key and broadcasts the eviction over Redis; the other process drops its copy when the message arrives."""
    key = "sk-team-block"
    cached_on_both(team, key)
    change_row(team, key, lambda row: {**row, "blocked": True})
    # Without an eviction, B still serves its cached row: the file alone revokes nothing (as a database row).
    assert call(team, 1, key)[0] == 200
    post(team, 0, "/workbench-test/key/block", {"key": key})
    blocked_at = time.monotonic()
    assert call(team, 0, key)[0] == 401
    elapsed, _ = first_refusal(team, 1, key, blocked_at, BLOCK_BOUND_SECONDS)
    print(f"blocked key refused by the other process after {elapsed:.3f} s")


def test_a_deleted_key_is_refused_by_the_other_process_once_its_cache_ttl_ends(team):
    """/key/delete's path in 1.108.7 broadcasts nothing for the key: the other process serves its cached
    row until user_api_key_cache_ttl (the team config's) has passed since it cached it, and no longer."""
    key = "sk-team-delete"
    cached_on_both(team, key)
    cached_at = time.monotonic()  # at most: B cached the row during its call just above
    change_row(team, key, lambda row: None)
    post(team, 0, "/workbench-test/key/delete", {"key": key})
    assert call(team, 0, key)[0] == 401
    ttl = bundle.TEAM_KEY_CACHE_SECONDS
    elapsed, admitted = first_refusal(team, 1, key, cached_at, ttl + DELETE_SLACK_SECONDS)
    print(f"deleted key admitted {admitted} more times by the other process, refused {elapsed:.3f} s after caching")
    assert admitted > 0  # the bound is the TTL: the other process did serve the deleted key meanwhile
    assert ttl - 1 <= elapsed <= ttl + DELETE_SLACK_SECONDS
