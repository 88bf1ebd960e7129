"""What the LiteLLM gateway adds to an agent's time to first token (`make bench-gateway`).

Runs the real proxy (the pinned LiteLLM, the config and env the box gets, the options of the
shipped compose command) against a fake Bedrock that answers ConverseStream at once, with the
Langfuse export on (to a fake Langfuse). Then:

- 1 stream: pairs, alternating in one run, of a Cline-shaped streaming request straight to the
  fake Bedrock and the same request through the proxy; time to first token and total stream
  time, p50 and p90, and what the proxy adds (per pair);
- 8 concurrent streams through the proxy: time to first token, p50 and p90;
- the proxy's resident memory (every process of it), after the load.

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

from tools.gateway import TEST_SECRETS, compose_arguments, running_proxy
from workbench import bundle, settings

SYSTEM_PROMPT = "You are Cline, a highly skilled software engineer. " * 200  # ~10 kB, as Cline's is much longer
TASK = "<task>Add a --verbose flag to the CLI and a test for it.</task>"
CACHED = {"cache_control": {"type": "ephemeral"}}


def cline_request(model: str, session: str) -> dict:
    """Shaped as Cline 3.89.2 sends it (src/core/api/providers/litellm.ts)."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT, **CACHED}]},
            {"role": "user", "content": [{"type": "text", "text": TASK, **CACHED}]},
        ],
        "temperature": 0, "stream": True, "drop_params": True,
        "stream_options": {"include_usage": True},
        "litellm_session_id": session,
    }


def converse_request() -> dict:
    """The same conversation as Bedrock's ConverseStream takes it."""
    return {"system": [{"text": SYSTEM_PROMPT}], "messages": [{"role": "user", "content": [{"text": TASK}]}],
            "inferenceConfig": {"temperature": 0}}


def timed_stream(port: int, path: str, body: dict, headers: dict, first_token) -> tuple[float, float]:
    """(seconds to the first token, seconds to the end of the stream) of one POST."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    payload = json.dumps(body).encode()
    started = time.perf_counter()
    connection.request("POST", path, body=payload, headers={"content-type": "application/json", **headers})
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


def through_proxy(port: int, model: str, session: str) -> tuple[float, float]:
    return timed_stream(port, "/chat/completions", cline_request(model, session),
                        {"authorization": f"Bearer {TEST_SECRETS['LITELLM_MASTER_KEY']}"},
                        lambda chunk: re.search(rb'"content":"[^"]', chunk) is not None)  # not the empty first delta


def direct(port: int, model_id: str) -> tuple[float, float]:
    return timed_stream(port, f"/model/{urllib.parse.quote(model_id, safe='')}/converse-stream", converse_request(),
                        {}, lambda chunk: b"contentBlockDelta" in chunk)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict:
    return {"p50_ms": round(1000 * statistics.median(values), 1), "p90_ms": round(1000 * percentile(values, 0.9), 1)}


def resident_mib(pid: int) -> float:
    """VmRSS of the process and all its descendants (uvicorn workers are children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total_kib, pending = 0, [pid]
    while pending:
        current = pending.pop()
        pending += children.get(current, [])
        try:
            status = (Path("/proc") / str(current) / "status").read_text()
        except OSError:
            continue
        total_kib += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(total_kib / 1024, 1)


def run(pairs: int, concurrent: int, per_stream: int, proxy_args: list[str] | None,
        proxy_env: dict[str, str] | None = None) -> dict:
    loaded = settings.load()
    model = loaded.models[0]
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        workdir = Path(scratch)
        tree = bundle.render(loaded, workdir / "bundle")
        if proxy_args is not None:  # the compose command's options, replaced for this run
            compose = yaml.safe_load((tree / "litellm" / "compose.yaml").read_text())
            compose["services"]["litellm"]["command"] = ["--config", "/app/config.yaml", "--port", "4000", *proxy_args]
            (tree / "litellm" / "compose.yaml").write_text(yaml.safe_dump(compose))
        config = yaml.safe_load((tree / "litellm" / "config.yaml").read_text())
        with running_proxy(workdir, tree, config, proxy_env) as proxy:
            bedrock_port = proxy.bedrock.server_port
            for index in range(5):  # warm-up: imports, connection pools, the first export
                through_proxy(proxy.port, model.name, f"cline-warmup{index}")
                direct(bedrock_port, model.model_id)
            single = {"direct": [], "proxy": [], "added": []}
            totals = {"direct": [], "proxy": []}
            for index in range(pairs):
                direct_first, direct_total = direct(bedrock_port, model.model_id)
                proxy_first, proxy_total = through_proxy(proxy.port, model.name, f"cline-pair{index}")
                single["direct"].append(direct_first)
                single["proxy"].append(proxy_first)
                single["added"].append(proxy_first - direct_first)
                totals["direct"].append(direct_total)
                totals["proxy"].append(proxy_total)
            parallel: list[float] = []
            lock, barrier = threading.Lock(), threading.Barrier(concurrent)

            def stream_worker(worker: int) -> None:
                barrier.wait()
                for index in range(per_stream):
                    first, _ = through_proxy(proxy.port, model.name, f"cline-w{worker}-{index}")
                    with lock:
                        parallel.append(first)

            threads = [threading.Thread(target=stream_worker, args=(n,)) for n in range(concurrent)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            memory = resident_mib(proxy.process.pid)
        return {
            "proxy_options": compose_arguments(tree),
            "proxy_env_changes": proxy_env or {},
            "cpus": os.cpu_count(),
            "one_stream": {
                "pairs": pairs,
                "first_token": {kind: summary(values) for kind, values in single.items()},
                "whole_stream": {kind: summary(values) for kind, values in totals.items()},
            },
            "concurrent_streams": {"streams": concurrent, "requests": len(parallel), "first_token": summary(parallel)},
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
    args = parser.parse_args()
    result = run(args.pairs, args.concurrent, args.per_stream,
                 shlex.split(args.proxy_args) if args.proxy_args is not None else None,
                 dict(change.split("=", 1) for change in args.proxy_env))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    one, many = result["one_stream"], result["concurrent_streams"]
    print(f"LiteLLM {settings.load().versions.litellm}, options {result['proxy_options'] or '(none)'}, "
          f"{result['cpus']} CPUs")
    print(f"1 stream, {one['pairs']} alternating pairs      p50 ms   p90 ms")
    for label, key, kind in (("first token, direct", "first_token", "direct"),
                             ("first token, proxy", "first_token", "proxy"),
                             ("first token, added by proxy", "first_token", "added"),
                             ("whole stream, direct", "whole_stream", "direct"),
                             ("whole stream, proxy", "whole_stream", "proxy")):
        figures = one[key][kind]
        print(f"  {label:<32} {figures['p50_ms']:>7} {figures['p90_ms']:>8}")
    print(f"{many['streams']} concurrent streams, {many['requests']} requests")
    print(f"  {'first token, proxy':<32} {many['first_token']['p50_ms']:>7} {many['first_token']['p90_ms']:>8}")
    print(f"proxy resident memory: {result['proxy_resident_mib']} MiB")


if __name__ == "__main__":
    main()
