"""The real LiteLLM proxy with the shipped config, and fakes of what it talks to (Bedrock, Langfuse).

Shared by the proxy tests (tests/assets/test_litellm_proxy.py), the laptop's test
(tests/workbench/test_local.py), the Cline scenario (tools/cline_scenario.py) and the gateway
benchmark (benchmarks/gateway.py). The fake Bedrock answers Converse and ConverseStream (AWS
event-stream framing) at once; the fake Langfuse accepts OTLP exports. Both record every request.
The boot's virtual keys stand in for LiteLLM's Postgres key table through stored_keys().
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LITELLM = Path(sys.executable).parent / "litellm"
ROOT = Path(__file__).resolve().parents[1]
KEY_REQUEST = ROOT / "assets" / "boot" / "litellm_key_request.py"
STORED_KEY_AUTH = ROOT / "tests" / "assets" / "litellm_stored_key.py"
KEY_BUDGET_AUTH = ROOT / "tests" / "assets" / "litellm_key_budget.py"  # wraps the one above
CACHED_KEY_AUTH = ROOT / "tests" / "assets" / "litellm_cached_key.py"  # wraps the one above
# How long the proxy may take to answer its liveliness check after it starts (startup_turn).
STARTUP_SECONDS = 240
STARTUP_LOCK = Path(tempfile.gettempdir()) / "ai-workbench-litellm-startup.lock"
TEST_SECRETS = {"LITELLM_MASTER_KEY": "sk-testmasterkey", "LITELLM_SALT_KEY": "sk-testsalt",
                "LITELLM_DB_PASSWORD": "unused", "AWS_REGION": "us-east-1",
                "LANGFUSE_PUBLIC_KEY": "pk-lf-testpublic", "LANGFUSE_SECRET_KEY": "sk-lf-testsecret"}


class GatewayError(Exception):
    """The proxy did not start; the message holds the tail of its log."""


class FakeAwsServices(BaseHTTPRequestHandler):
    """Records every request; answers Converse calls like Bedrock and OTLP posts like Langfuse."""

    def record(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))

    def do_GET(self):
        """Only LiteLLM's pass-through routes (/langfuse/*, ...) send other methods: recorded, so a test
        sees what got through and with which credentials, and refused, as these fakes serve nothing else."""
        self.record()
        self.send_error(501, f"the fake serves no {self.command}")

    do_DELETE = do_PUT = do_PATCH = do_GET

    def do_POST(self):
        self.record()
        model_id = urllib.parse.unquote(self.path.split("/")[2]) if self.path.startswith("/model/") else None
        if model_id in self.server.unsubscribed:
            # Bedrock's answer to the first call of a model the account is not subscribed to, by a
            # caller without Marketplace rights: the AccessDeniedException error type and the
            # message as AWS reports it (CloudTrail errorMessage quoted in
            # aws-samples/sample-host-openclaw-on-amazon-bedrock-agentcore#41).
            payload = json.dumps({"message": MARKETPLACE_DENIED}).encode()
            self.send_response(403)
            self.send_header("x-amzn-errortype", "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/")
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if self.path.endswith("/converse-stream"):
            payload, content_type = converse_stream(STREAMED_TEXT), "application/vnd.amazon.eventstream"
        elif self.path.endswith("/converse"):
            reply = {
                "output": {"message": {"role": "assistant", "content": [{"text": "Hello from fake Bedrock"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 5, "outputTokens": 4, "totalTokens": 9},
                "metrics": {"latencyMs": 12},
            }
            payload, content_type = json.dumps(reply).encode(), "application/json"
        else:
            payload, content_type = b"", "application/x-protobuf"
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


STREAMED_TEXT = ["Hello ", "from streaming ", "fake Bedrock"]


def event_stream_message(event_type: str, payload: dict) -> bytes:
    """One message of AWS's event-stream encoding, as Bedrock's ConverseStream sends it.

    Prelude (total length, headers length, CRC32 of both), string headers (name length, name,
    type 7, value length, value), JSON payload, CRC32 of the whole message (the framing that
    botocore.eventstream parses; Bedrock API reference, ConverseStream response).
    """
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")):
        headers += bytes([len(name)]) + name.encode() + b"\x07" + len(value).to_bytes(2, "big") + value.encode()
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = total.to_bytes(4, "big") + len(headers).to_bytes(4, "big")
    prelude += zlib.crc32(prelude).to_bytes(4, "big")
    message = prelude + headers + body
    return message + zlib.crc32(message).to_bytes(4, "big")


def converse_stream(chunks: list[str]) -> bytes:
    """A whole ConverseStream answer: the events and their order from Bedrock's ConverseStream reference."""
    events = [("messageStart", {"role": "assistant"})]
    events += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": chunk}}) for chunk in chunks]
    events += [("contentBlockStop", {"contentBlockIndex": 0}), ("messageStop", {"stopReason": "end_turn"}),
               ("metadata", {"usage": {"inputTokens": 1200, "outputTokens": 9, "totalTokens": 1209,
                                       "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 0},
                             "metrics": {"latencyMs": 15}})]
    return b"".join(event_stream_message(event_type, payload) for event_type, payload in events)


MARKETPLACE_DENIED = (
    "Model access is denied due to IAM user or service role is not authorized to perform the required AWS "
    "Marketplace actions (aws-marketplace:ViewSubscriptions, aws-marketplace:Subscribe) to enable access to this "
    "model. Refer to the Amazon Bedrock documentation for further details. Your AWS Marketplace subscription for "
    "this model cannot be completed at this time. If you recently fixed this issue, try again after 2 minutes."
)


def serve() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAwsServices)
    server.requests = []
    server.unsubscribed = set()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answer(port: int, path: str, key: str | None = None, body: dict | None = None) -> tuple[int, object]:
    """(status, JSON answer) of one request to the proxy; the error text for an HTTP error."""
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body else None,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def shipped_env(tree: Path, langfuse_url: str, values: Mapping[str, str] = TEST_SECRETS) -> dict[str, str]:
    """env/litellm.env as the boot script renders it, with test values for the placeholders."""
    env = {}
    for line in (tree / "env" / "litellm.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], value)
    # The Langfuse container's name only resolves on the box; here the fake listens locally.
    if not env["LANGFUSE_OTEL_HOST"] == env["LANGFUSE_HOST"] == "http://langfuse-web:3000":
        raise GatewayError(f"litellm.env points Langfuse elsewhere: {env['LANGFUSE_OTEL_HOST']}")
    env["LANGFUSE_OTEL_HOST"] = env["LANGFUSE_HOST"] = langfuse_url
    # No database offline: Prisma would download its engines (the deployed image has them).
    del env["DATABASE_URL"]
    return env


def key_request(alias: str, user_id: str, key: str, environment: Mapping[str, str]) -> dict:
    """The body the boot sends to /key/generate for one key (assets/boot/litellm-keys.sh runs
    litellm_key_request.py with deployment.env's LITELLM_MODEL_NAMES and CLINE_BUDGET_USD_PER_DAY)."""
    return json.loads(subprocess.run([sys.executable, str(KEY_REQUEST), alias, user_id, "test"], input=key,
                                     capture_output=True, text=True, check=True, env=dict(environment)).stdout)


def stored_keys(workdir: Path, config: dict, keys: list[dict], cached: bool = False) -> dict[str, str]:
    """Serve `keys` (bodies of key_request, optionally with the row's "spend") as LiteLLM's key table.

    The table needs Postgres, which cannot run offline: the keys are read from a file instead
    (tests/assets/litellm_stored_key.py) and every check after the lookup is LiteLLM's own, the
    daily budget included (tests/assets/litellm_key_budget.py). Changes `config` (written by
    running_proxy into `workdir`, where the proxy finds the two modules) and returns the
    environment change that names the file. `cached`: rows are read only on a miss of LiteLLM's own
    key cache, as from its database, and can be revoked through it (tests/assets/litellm_cached_key.py).
    """
    for module in (STORED_KEY_AUTH, KEY_BUDGET_AUTH, *([CACHED_KEY_AUTH] if cached else [])):
        shutil.copyfile(module, workdir / module.name)
    auth = CACHED_KEY_AUTH if cached else KEY_BUDGET_AUTH
    config["general_settings"]["custom_auth"] = f"{auth.stem}.user_api_key_auth"
    config["general_settings"]["custom_auth_run_common_checks"] = True
    config["litellm_settings"]["enable_post_custom_auth_checks"] = True
    stored = workdir / "stored-keys.json"
    stored.write_text(json.dumps(keys))
    return {"WORKBENCH_STORED_KEYS": str(stored)}


@dataclass
class Proxy:
    port: int
    process: subprocess.Popen
    bedrock: ThreadingHTTPServer
    langfuse: ThreadingHTTPServer


def compose_arguments(tree: Path) -> list[str]:
    """The proxy's own options from the shipped compose command, without --config and --port."""
    import yaml

    command = yaml.safe_load((tree / "litellm" / "compose.yaml").read_text())["services"]["litellm"]["command"]
    options, skip = [], False
    for argument in command:
        if skip:
            skip = False
        elif argument in ("--config", "--port"):
            skip = True
        else:
            options.append(argument)
    return options


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (a proxy's uvicorn workers are its children), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:  # the parent's pid is the 2nd field after the command name in parentheses
                children.setdefault(int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(
                    int(entry.name))
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += children.get(current, [])
    return tree


@contextmanager
def startup_turn() -> Iterator[None]:
    """Held while one proxy starts, by every process on this machine that starts one (parallel
    test workers, another checkout's tests): importing LiteLLM is CPU-bound (12-17 s alone on a
    2-CPU machine), and the parallel suite starting several proxies at once, next to other
    CPU-heavy tests, left one without a line of log after 240 s. One at a time, each starts in
    its own time; a started proxy answers at once. Waiting for the turn is bounded too."""
    with STARTUP_LOCK.open("a") as lock:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise GatewayError(f"no turn to start a proxy within {STARTUP_SECONDS} s ({STARTUP_LOCK} "
                                       "held by another proxy's start)") from None
                time.sleep(0.25)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def wait_until_live(process: subprocess.Popen, port: int, log_path: Path) -> None:
    """Until the proxy answers its liveliness check; its log in the error when it exits or never does."""
    deadline = time.monotonic() + STARTUP_SECONDS  # only an upper bound: a healthy proxy answers at once
    while True:
        if process.poll() is not None:
            raise GatewayError(f"proxy exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if answer(port, "/health/liveliness")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise GatewayError(f"proxy did not answer /health/liveliness within {STARTUP_SECONDS} s:\n"
                               f"{log_path.read_text()[-3000:]}")
        time.sleep(0.25)


@contextmanager
def running_proxy(workdir: Path, tree: Path, config: dict, env_changes: Mapping[str, str] | None = None,
                  bedrock: ThreadingHTTPServer | None = None) -> Iterator[Proxy]:
    """The real proxy on a free local port, with the fakes it calls; stopped with SIGINT (flushes spans).
    `bedrock`: a fake Bedrock (serve()) that several proxies share, left running; else one of its own."""
    import yaml

    if not LITELLM.exists():
        raise GatewayError(f"{LITELLM} missing: install requirements-dev.txt")
    own_bedrock = bedrock is None
    bedrock, langfuse = bedrock or serve(), serve()
    for model in config["model_list"]:  # the only change to the shipped config: where Bedrock is
        model["litellm_params"]["aws_bedrock_runtime_endpoint"] = f"http://127.0.0.1:{bedrock.server_port}"
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(workdir),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true",
        "AWS_ACCESS_KEY_ID": "AKIATESTTESTTESTTEST", "AWS_SECRET_ACCESS_KEY": "test-secret",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        **shipped_env(tree, f"http://127.0.0.1:{langfuse.server_port}"),
        **(env_changes or {}),
    }
    log_path = workdir / "proxy.log"
    process = None
    with log_path.open("w") as log:
        try:
            with startup_turn():
                port = free_port()  # in the turn: no other proxy's start takes it meanwhile
                process = subprocess.Popen([str(LITELLM), "--config", str(workdir / "config.yaml"), "--host",
                                            "127.0.0.1", "--port", str(port), *compose_arguments(tree)],
                                           env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
                wait_until_live(process, port, log_path)
            yield Proxy(port, process, bedrock, langfuse)
        finally:
            if process is not None:
                process.send_signal(signal.SIGINT)  # SIGINT flushes pending spans; see the compose stop_signal
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if own_bedrock:
                bedrock.shutdown()
            langfuse.shutdown()
