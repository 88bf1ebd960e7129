"""What the LiteLLM gateway adds to an agent's time to first token (`make bench-gateway`).

Runs the real proxy (the pinned LiteLLM, the config and env the box gets, the options of the
shipped compose command) against a fake Bedrock that answers ConverseStream at once, with the
Langfuse export on (to a fake Langfuse). The requests are the real Cline's: the two turns of the
acceptance task as Cline 2.18.0 sent them (benchmarks/cline-requests, written by
tools/cline_scenario.py; tests/assets/test_cline_acceptance.py checks that Cline still sends
them), with Cline's own key as the boot stores it, so each request also passes LiteLLM's key
checks, budget reservation and spend booking (tools/gateway.py, stored_keys). Then:

- 1 stream: pairs, alternating in one run, of a turn sent straight to the fake Bedrock (the
  ConverseStream request LiteLLM itself made of that turn, recorded during the warm-up) and the
  same turn through the proxy; time to first token and total stream time, p50 and p90, and what
  the proxy adds (per pair);
- 8 concurrent streams through the proxy: time to first token, p50 and p90;
- the proxy's resident memory (every process of it), after the load;
- the load average before and after, since the figures depend on what else the machine runs.

    .venv/bin/python -m benchmarks.gateway [--pairs 60] [--concurrent 8] [--per-stream 12] [--json]

Options of the proxy to compare come from the compose file, or `--proxy-args "--num_workers 2"`;
environment changes from `--proxy-env NAME=VALUE`.
Not a test: timings depend on the machine; the README records the figures and where they came from.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shlex
import statistics
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import yaml

from tools.gateway import compose_arguments, key_request, process_tree, running_proxy, stored_keys
from workbench import bundle, settings

CAPTURE = Path(__file__).resolve().parent / "cline-requests"
CLINE_KEY = "sk-bench-cline-key"
# The request this benchmark sent before the real Cline's was captured, kept for comparison: a
# 10 kB stand-in system prompt and a one-line task, shaped after Cline's LiteLLM provider.
HANDMADE_SYSTEM_PROMPT = "You are Cline, a highly skilled software engineer. " * 200
HANDMADE_TASK = "<task>Add a --verbose flag to the CLI and a test for it.</task>"


def cline_turns(model: str) -> list[dict]:
    """The captured request bodies, for the model Cline is configured with (the capture's is the default's)."""
    return [{**json.loads(path.read_text())["body"], "model": model} for path in sorted(CAPTURE.glob("turn*.json"))]


def handmade_turns(model: str) -> list[dict]:
    """The hand-made request of the benchmark's first version."""
    cached = {"cache_control": {"type": "ephemeral"}}
    return [{
        "model": model,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": HANDMADE_SYSTEM_PROMPT, **cached}]},
            {"role": "user", "content": [{"type": "text", "text": HANDMADE_TASK, **cached}]},
        ],
        "temperature": 0, "stream": True, "drop_params": True,
        "stream_options": {"include_usage": True},
        "litellm_session_id": "cline-handmade",
    }]


SHAPES = {"cline": cline_turns, "handmade": handmade_turns}


def timed_stream(port: int, path: str, body: bytes, headers: dict, first_token) -> tuple[float, float]:
    """(seconds to the first token, seconds to the end of the stream) of one POST."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request("POST", path, body=body, headers={"content-type": "application/json", **headers})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {response.read()[:300]!r}")
    first = None
    while chunk := response.read1(65536) if first is None else response.read(65536):
        if first is None and first_token(chunk):
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    connection.close()
    return (first if first is not None else total), total


def through_proxy(port: int, body: bytes) -> tuple[float, float]:
    return timed_stream(port, "/chat/completions", body, {"authorization": f"Bearer {CLINE_KEY}"},
                        lambda chunk: re.search(rb'"content":"[^"]', chunk) is not None)  # not the empty first delta


def direct(port: int, model_id: str, body: bytes) -> tuple[float, float]:
    return timed_stream(port, f"/model/{urllib.parse.quote(model_id, safe='')}/converse-stream", body,
                        {}, lambda chunk: b"contentBlockDelta" in chunk)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict:
    return {"p50_ms": round(1000 * statistics.median(values), 1), "p90_ms": round(1000 * percentile(values, 0.9), 1)}


def resident_mib(pid: int) -> float:
    """VmRSS of the process and all its descendants (uvicorn workers are children)."""
    total_kib = 0
    for current in process_tree(pid):
        try:
            status = (Path("/proc") / str(current) / "status").read_text()
        except OSError:
            continue
        total_kib += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(total_kib / 1024, 1)


def measure(proxy, model_id: str, turns: list[bytes], pairs: int, concurrent: int, per_stream: int) -> dict:
    """The figures of one request shape, through a running proxy."""
    bedrock = proxy.bedrock
    # Warm-up (imports, connection pools, the first export), which also records what LiteLLM
    # sends Bedrock for each turn: the direct requests are those.
    converse = []
    for body in turns * 3:
        through_proxy(proxy.port, body)
        converse.append(bedrock.requests[-1][2])
    for body in converse:
        direct(bedrock.server_port, model_id, body)
    single: dict[str, list[float]] = {"direct": [], "proxy": [], "added": []}
    totals: dict[str, list[float]] = {"direct": [], "proxy": []}
    for index in range(pairs):
        turn = index % len(turns)
        direct_first, direct_total = direct(bedrock.server_port, model_id, converse[turn])
        proxy_first, proxy_total = through_proxy(proxy.port, turns[turn])
        single["direct"].append(direct_first)
        single["proxy"].append(proxy_first)
        single["added"].append(proxy_first - direct_first)
        totals["direct"].append(direct_total)
        totals["proxy"].append(proxy_total)
    parallel: list[float] = []
    failures: list[str] = []
    lock, barrier = threading.Lock(), threading.Barrier(concurrent)

    def stream_worker(worker: int) -> None:
        barrier.wait()
        for index in range(per_stream):
            try:
                first, _ = through_proxy(proxy.port, turns[(worker + index) % len(turns)])
            except (OSError, RuntimeError, http.client.HTTPException) as error:
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")
                continue
            with lock:
                parallel.append(first)

    threads = [threading.Thread(target=stream_worker, args=(n,)) for n in range(concurrent)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:  # a figure without the requests that failed would flatter the proxy
        raise RuntimeError(f"{len(failures)} of {concurrent * per_stream} concurrent requests failed: {failures[:3]}")
    return {
        "request_bytes": [len(turn) for turn in turns],
        "one_stream": {
            "pairs": pairs,
            "first_token": {kind: summary(values) for kind, values in single.items()},
            "whole_stream": {kind: summary(values) for kind, values in totals.items()},
        },
        "concurrent_streams": {"streams": concurrent, "requests": len(parallel), "first_token": summary(parallel)},
    }


def run(pairs: int, concurrent: int, per_stream: int, proxy_args: list[str] | None,
        proxy_env: dict[str, str] | None = None, shapes: tuple[str, ...] = tuple(SHAPES)) -> dict:
    loaded = settings.load()
    model = next(m for m in loaded.models if m.name == loaded.cline_model)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        workdir = Path(scratch)
        tree = bundle.render(loaded, workdir / "bundle")
        if proxy_args is not None:  # the compose command's options, replaced for this run
            compose = yaml.safe_load((tree / "litellm" / "compose.yaml").read_text())
            compose["services"]["litellm"]["command"] = ["--config", "/app/config.yaml", "--port", "4000", *proxy_args]
            (tree / "litellm" / "compose.yaml").write_text(yaml.safe_dump(compose))
        config = yaml.safe_load((tree / "litellm" / "config.yaml").read_text())
        cline_key = key_request("cline", loaded.name, CLINE_KEY, loaded.key_request_environment())
        # Hundreds of calls would spend a day's budget: a budget they cannot reach, so that every
        # call still passes the budget check and reserves and books its cost, as on the box.
        cline_key["max_budget"] = 1_000_000.0
        keys = stored_keys(workdir, config, [cline_key])
        with running_proxy(workdir, tree, config, {**keys, **(proxy_env or {})}) as proxy:
            figures = {shape: measure(proxy, model.model_id,
                                      [json.dumps(turn).encode() for turn in SHAPES[shape](model.name)],
                                      pairs, concurrent, per_stream) for shape in shapes}
            memory = resident_mib(proxy.process.pid)
        return {
            "proxy_options": compose_arguments(tree),
            "proxy_env_changes": proxy_env or {},
            "cpus": os.cpu_count(),
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
            "shapes": figures,
            "proxy_resident_mib": memory,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--per-stream", type=int, default=12)
    parser.add_argument("--proxy-args", help='replace the compose command\'s options, e.g. "--num_workers 2"')
    parser.add_argument("--proxy-env", action="append", default=[], metavar="NAME=VALUE",
                        help="change one variable of the shipped litellm.env for this run (repeatable)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--shape", choices=SHAPES, action="append",
                        help="only this request shape (repeatable; default: every one)")
    args = parser.parse_args()
    result = run(args.pairs, args.concurrent, args.per_stream,
                 shlex.split(args.proxy_args) if args.proxy_args is not None else None,
                 dict(change.split("=", 1) for change in args.proxy_env), tuple(args.shape or SHAPES))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"LiteLLM {settings.load().versions.litellm}, options {result['proxy_options'] or '(none)'}, "
          f"{result['cpus']} CPUs, load average {result['load_average_before']} before, "
          f"{result['load_average_after']} after")
    for shape, figures in result["shapes"].items():
        one, many = figures["one_stream"], figures["concurrent_streams"]
        print(f"{shape} requests ({', '.join(f'{size} bytes' for size in figures['request_bytes'])}), Cline's key")
        print(f"1 stream, {one['pairs']} alternating pairs      p50 ms   p90 ms")
        for label, key, kind in (("first token, direct", "first_token", "direct"),
                                 ("first token, proxy", "first_token", "proxy"),
                                 ("first token, added by proxy", "first_token", "added"),
                                 ("whole stream, direct", "whole_stream", "direct"),
                                 ("whole stream, proxy", "whole_stream", "proxy")):
            values = one[key][kind]
            print(f"  {label:<32} {values['p50_ms']:>7} {values['p90_ms']:>8}")
        print(f"{many['streams']} concurrent streams, {many['requests']} requests")
        print(f"  {'first token, proxy':<32} {many['first_token']['p50_ms']:>7} {many['first_token']['p90_ms']:>8}")
    print(f"proxy resident memory: {result['proxy_resident_mib']} MiB")


if __name__ == "__main__":
    main()
