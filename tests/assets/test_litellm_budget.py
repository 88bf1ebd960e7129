"""Over its daily budget or its per-minute limits, LiteLLM refuses a key's calls: the real proxy with the shipped config and
compose options, Cline's real request (benchmarks/cline-requests), keys as the boot stores them.

How LiteLLM 1.108.7 enforces a key's max_budget (proxy/auth/auth_checks.py
virtual_key_max_budget_check, proxy/spend_tracking/budget_reservation.py, proxy/proxy_server.py
get_current_spend and increment_spend_counters): the key has a spend counter; admitting a call
reserves the call's estimated cost in it, cut down to what is left of the budget; when the stream
has ended, the cost callback replaces the reservation with the call's real cost. A call is refused
while the counter, reservations of calls in flight included, has reached the budget. The counter
lives in the worker's memory unless LiteLLM is given a Redis, so with two workers each one counted
only the calls it served and admitted up to the whole budget by itself: these tests fail with
`--num_workers 2` in the compose command.

Calls are spread over every process of the proxy that serves requests (one per uvicorn worker):
each goes over a kept-alive connection whose serving process is read from /proc, so that a
worker that does not see the others' spend would show.

The key table is served by tests/assets/litellm_stored_key.py, and the spend is booked by
LiteLLM's own cost callback, installed by tests/assets/litellm_key_budget.py as LiteLLM installs
it with a database (no database runs offline). The stored-keys file is read on every request, so
a test adds its key to it as /key/generate would add a row.
"""

import http.client
import itertools
import json
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from benchmarks.gateway import cline_turns
from tools.gateway import GatewayError, key_request, process_tree, running_proxy, stored_keys
from workbench import bundle, settings

BUDGET_ERROR = re.compile(r"Budget has been exceeded!.*Current cost: ([-0-9.e]+),.*Max budget: ([-0-9.e]+)")
# After its stream has ended, a call's reservation stays in the counter until LiteLLM's cost
# callback books the real cost. A call arriving in that moment, when the reservation took the
# rest of the budget, sees the budget reached: its refusal names the budget itself as the cost.
BOOKING_SECONDS = 30  # an upper bound: on an idle machine the booking follows the stream at once


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("litellm-budget")
    loaded = settings.load()
    tree = bundle.render(loaded, workdir / "bundle")
    config = yaml.safe_load((tree / "litellm" / "config.yaml").read_text())
    keys = stored_keys(workdir, config, [])
    try:
        with running_proxy(workdir, tree, config, keys) as running:
            yield {"port": running.port, "pid": running.process.pid, "bedrock": running.bedrock,
                   "keys": Path(keys["WORKBENCH_STORED_KEYS"]),
                   "body": json.dumps(cline_turns(loaded.cline_model)[0]).encode(), "settings": loaded}
    except GatewayError as error:
        pytest.fail(str(error))


def add_key(proxy, key: str, budget: float) -> None:
    """Cline's key as the boot creates it (assets/boot/litellm_key_request.py), with this daily budget."""
    loaded = proxy["settings"]
    body = key_request("cline", loaded.name, key, {"LITELLM_MODEL_NAMES": ",".join(m.name for m in loaded.models),
                                                   "CLINE_BUDGET_USD_PER_DAY": repr(budget)})
    assert body["max_budget"] == budget
    proxy["keys"].write_text(json.dumps([*json.loads(proxy["keys"].read_text()), body]))


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_inode(local_port: int, remote_port: int | None) -> str | None:
    """The inode of the socket on 127.0.0.1:local_port connected to 127.0.0.1:remote_port, or
    listening (None) (/proc/net/tcp: addresses and ports in hex, the inode in the 10th column)."""
    remote = "00000000:0000" if remote_port is None else f"0100007F:{remote_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == (f"0100007F:{local_port:04X}", remote):
            return fields[9]
    return None


def serving_processes(proxy) -> list[int]:
    """The proxy's processes that accept connections: its uvicorn workers, or the proxy itself when
    it runs one. All of them hold the listening socket; so does a parent that only supervises."""
    listening = tcp_inode(proxy["port"], None)
    holders = [pid for pid in process_tree(proxy["pid"]) if listening in socket_inodes(pid)]
    return [pid for pid in holders if pid != proxy["pid"]] or [proxy["pid"]]


def connections(proxy, per_process: int) -> list[http.client.HTTPConnection]:
    """Kept-alive connections to the proxy, `per_process` accepted by each serving process,
    interleaved (process 1, process 2, ..., process 1, ...). The kernel gives a new connection
    to whichever worker accepts first, so connections are opened until each has its share."""
    pids = serving_processes(proxy)
    held: dict[int, list] = {pid: [] for pid in pids}
    for _ in range(50 * per_process * len(pids)):
        if all(len(conns) == per_process for conns in held.values()):
            return [conn for group in zip(*held.values(), strict=True) for conn in group]
        connection = http.client.HTTPConnection("127.0.0.1", proxy["port"], timeout=60)
        connection.request("GET", "/health/liveliness")  # answered only once a worker has accepted it
        connection.getresponse().read()
        inode = tcp_inode(proxy["port"], connection.sock.getsockname()[1])
        owner = next(pid for pid in pids if inode in socket_inodes(pid))
        if len(held[owner]) < per_process:
            held[owner].append(connection)
        else:
            connection.close()
    pytest.fail(f"no connection share for every serving process {pids}: {[len(c) for c in held.values()]}")


def call(connection: http.client.HTTPConnection, proxy, key: str) -> tuple[int, str]:
    """Cline's first turn with this key, read to the end of its stream: (status, body)."""
    connection.request("POST", "/chat/completions", body=proxy["body"],
                       headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read().decode()


def refused_at(answer: str, budget: float) -> float:
    """The spend LiteLLM names in its budget refusal, which must be this key's budget's."""
    match = BUDGET_ERROR.search(answer)
    assert match, answer
    assert float(match.group(2)) == pytest.approx(budget)
    return float(match.group(1))


def booked_call(connection: http.client.HTTPConnection, proxy, key: str, budget: float) -> tuple[int, str]:
    """A call made once the previous one is booked: a refusal at exactly the budget (a reservation
    still held, see BOOKING_SECONDS) is tried again; any other answer is returned."""
    deadline = time.monotonic() + BOOKING_SECONDS
    while True:
        status, answer = call(connection, proxy, key)
        held = status != 200 and math.isclose(refused_at(answer, budget), budget, rel_tol=1e-6)
        if not held or time.monotonic() > deadline:
            return status, answer
        time.sleep(0.05)


def converse_calls(proxy) -> int:
    return sum(1 for path, _, _ in list(proxy["bedrock"].requests) if path.endswith("/converse-stream"))


@pytest.fixture(scope="module")
def call_cost(proxy) -> float:
    """What one call of Cline's costs as LiteLLM books it, read from LiteLLM's own refusal: a key
    with almost no budget gets one call (it is under budget), then is refused naming what it spent."""
    key, budget = "sk-budget-one-call", 1e-9
    add_key(proxy, key, budget)
    connection = connections(proxy, 1)[0]
    assert call(connection, proxy, key)[0] == 200
    status, answer = booked_call(connection, proxy, key, budget)
    assert status == 422 and "budget_exceeded" in answer, answer
    cost = refused_at(answer, budget)
    assert cost > 1000 * budget  # the whole call was booked, not the reservation that admitted it
    return cost


def test_calls_are_admitted_until_the_spend_reaches_the_budget_then_every_call_is_refused(proxy, call_cost):
    """Budget 2.5 calls: three calls (the third starts under budget and crosses it), then refusals,
    each naming the three calls' spend, and none of them reaches Bedrock."""
    key, budget = "sk-budget-sequential", 2.5 * call_cost
    add_key(proxy, key, budget)
    before = converse_calls(proxy)
    spread = itertools.cycle(connections(proxy, 1))
    answers = [booked_call(next(spread), proxy, key, budget) for _ in range(12)]
    assert [status for status, _ in answers] == [200] * 3 + [422] * 9, answers
    for _, answer in answers[3:]:
        assert refused_at(answer, budget) == pytest.approx(3 * call_cost, rel=1e-6)
    assert converse_calls(proxy) - before == 3


def test_of_concurrent_calls_only_one_is_admitted_when_the_rest_of_the_budget_is_smaller_than_a_call(
        proxy, call_cost):
    """Budget 1.5 calls, one spent: eight calls at once, of which the first to be admitted reserves
    the rest of the budget (its estimate is far above it), so the other seven are refused. Spent
    in the end: two calls, half a call over the budget."""
    key, budget = "sk-budget-concurrent", 1.5 * call_cost
    add_key(proxy, key, budget)
    spread = connections(proxy, 8)
    assert booked_call(spread[0], proxy, key, budget)[0] == 200
    before = converse_calls(proxy)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda connection: call(connection, proxy, key), spread[:8]))
    assert sorted(status for status, _ in answers) == [200] + [422] * 7, answers
    assert converse_calls(proxy) - before == 1
    # Until the admitted call is booked, a refusal names its reservation (its whole estimate, far above
    # a call's cost); once booked, the two calls' real cost.
    deadline = time.monotonic() + BOOKING_SECONDS
    while True:
        status, answer = call(spread[1], proxy, key)
        assert status == 422, answer
        spent = refused_at(answer, budget)
        if spent == pytest.approx(2 * call_cost, rel=1e-6) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert spent == pytest.approx(2 * call_cost, rel=1e-6)


def limited_key(proxy, key: str, tokens: int, requests: int | None) -> None:
    """Cline's key with a room's per-minute limits on Cline's model (settings' cline_limits_per_minute,
    through deployment.env's variables, as the boot requests it)."""
    loaded = settings.load(overrides={"cline_limits_per_minute": {
        proxy["settings"].cline_model: {"tokens": tokens, **({"requests": requests} if requests else {})}}})
    body = key_request("cline", loaded.name, key, loaded.key_request_environment())
    proxy["keys"].write_text(json.dumps([*json.loads(proxy["keys"].read_text()), body]))


def test_a_keys_requests_per_minute_limit_refuses_the_call_over_it(proxy):
    """Two requests a minute on Cline's model: the third call within the minute is refused with
    429 before it reaches Bedrock, whichever worker serves it."""
    key = "sk-limit-requests"
    limited_key(proxy, key, tokens=10_000_000, requests=2)
    spread = itertools.cycle(connections(proxy, 1))
    before = converse_calls(proxy)
    answers = [call(next(spread), proxy, key) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 429], answers
    assert "rpm" in answers[2][1].lower() or "rate limit" in answers[2][1].lower(), answers[2]
    assert converse_calls(proxy) - before == 2


def test_a_keys_tokens_per_minute_limit_below_one_cline_turn_refuses_every_call(proxy):
    """LiteLLM reserves a call's estimated input and output tokens against the key's tokens-per-minute
    limit before it admits the call (1.108.7, proxy/hooks/parallel_request_limiter_v3.py,
    _estimate_tokens_for_request), as Bedrock does against its quota: a share below one Cline turn
    (~12,000 input tokens, room.CLINE_TURN_INPUT_TOKENS, why `plan` refuses one) admits nothing,
    while a share of a few turns admits the same call."""
    spread = itertools.cycle(connections(proxy, 1))
    before = converse_calls(proxy)
    limited_key(proxy, "sk-limit-tokens-small", tokens=1_000, requests=None)
    refused = call(next(spread), proxy, "sk-limit-tokens-small")
    assert refused[0] == 429 and "Current limit: 1000" in refused[1], refused
    assert converse_calls(proxy) == before
    limited_key(proxy, "sk-limit-tokens-share", tokens=200_000, requests=None)
    assert call(next(spread), proxy, "sk-limit-tokens-share")[0] == 200
    assert converse_calls(proxy) == before + 1
