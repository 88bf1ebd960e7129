"""The real LiteLLM proxy (the version we deploy) loading the config and env file we ship.

Bedrock and Langfuse are played by local fakes: LiteLLM sends a real SigV4-signed Converse
call to the fake Bedrock and exports its OTLP trace to the fake Langfuse, which proves the
wiring (model ids, callback, host, key pair) end to end without AWS or the internet.
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from workbench import bundle, settings

MASTER_KEY = "sk-testmasterkey"
PUBLIC_KEY, SECRET_KEY = "pk-lf-testpublic", "sk-lf-testsecret"
LITELLM = Path(sys.executable).parent / "litellm"
ROOT = Path(__file__).resolve().parents[2]
KEY_REQUEST = ROOT / "assets" / "boot" / "litellm_key_request.py"
STORED_KEY_AUTH = Path(__file__).resolve().parent / "litellm_stored_key.py"


class Recorder(BaseHTTPRequestHandler):
    """Records every POST; answers Converse calls like Bedrock and OTLP posts like Langfuse."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.requests = []
    server.unsubscribed = set()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port, path, key=None, body=None):
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


def shipped_env(tree: Path, langfuse_url: str) -> dict[str, str]:
    """env/litellm.env as the boot script renders it, with test values for the placeholders."""
    values = {"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_SALT_KEY": "sk-testsalt", "LITELLM_DB_PASSWORD": "unused",
              "AWS_REGION": "us-east-1", "LANGFUSE_PUBLIC_KEY": PUBLIC_KEY, "LANGFUSE_SECRET_KEY": SECRET_KEY}
    env = {}
    for line in (tree / "env" / "litellm.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], value)
    # The Langfuse container's name only resolves on the box; here the fake listens locally.
    assert env["LANGFUSE_OTEL_HOST"] == env["LANGFUSE_HOST"] == "http://langfuse-web:3000"
    env["LANGFUSE_OTEL_HOST"] = env["LANGFUSE_HOST"] = langfuse_url
    # No database offline: Prisma would download its engines (the deployed image has them).
    del env["DATABASE_URL"]
    return env


def start_proxy(workdir: Path, config_changes=None, env_changes=None, overrides=None):
    """The real proxy with the shipped config and env; yields its port and the fakes it talks to."""
    if not LITELLM.exists():
        pytest.fail(f"{LITELLM} missing: install requirements-dev.txt")
    tree = bundle.render(settings.load(overrides=overrides), workdir / "bundle")
    bedrock, langfuse = serve(), serve()
    config = yaml.safe_load((tree / "litellm" / "config.yaml").read_text())
    for model in config["model_list"]:  # the only change to the shipped config: where Bedrock is
        model["litellm_params"]["aws_bedrock_runtime_endpoint"] = f"http://127.0.0.1:{bedrock.server_port}"
    if config_changes:
        config_changes(config, tree)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {
        "PATH": os.environ["PATH"], "HOME": str(workdir),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true",
        "AWS_ACCESS_KEY_ID": "AKIATESTTESTTESTTEST", "AWS_SECRET_ACCESS_KEY": "test-secret",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        **shipped_env(tree, f"http://127.0.0.1:{langfuse.server_port}"),
        **(env_changes or {}),
    }
    port = free_port()
    log = open(workdir / "proxy.log", "w")  # noqa: SIM115 (the proxy writes to it until the fixture ends)
    process = subprocess.Popen([str(LITELLM), "--config", str(workdir / "config.yaml"), "--host", "127.0.0.1",
                                "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            pytest.fail(f"proxy exited with {process.returncode}:\n{(workdir / 'proxy.log').read_text()[-3000:]}")
        try:
            if request(port, "/health/liveliness")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("proxy did not answer /health/liveliness within 90 s")
        time.sleep(0.25)
    yield {"port": port, "bedrock": bedrock, "langfuse": langfuse, "process": process}
    process.send_signal(signal.SIGINT)  # SIGINT flushes pending spans; see the compose stop_signal
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    bedrock.shutdown()
    langfuse.shutdown()
    log.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    yield from start_proxy(tmp_path_factory.mktemp("litellm"))


def test_liveliness(proxy):
    assert request(proxy["port"], "/health/liveliness")[0] == 200


def test_models_are_listed_with_the_master_key_and_refused_without(proxy):
    status, body = request(proxy["port"], "/v1/models", key=MASTER_KEY)
    assert status == 200
    assert [m["id"] for m in body["data"]] == [m.name for m in settings.load().models]
    assert request(proxy["port"], "/v1/models")[0] == 401


def test_langfuse_callback_is_active(proxy):
    status, body = request(proxy["port"], "/health/readiness/details", key=MASTER_KEY)
    assert status == 200
    assert "LangfuseOtelLogger" in body["success_callbacks"]
    assert body["litellm_version"] == settings.load().versions.litellm


def test_completion_goes_to_bedrock_and_its_trace_reaches_langfuse_with_the_project_keys(proxy):
    model = settings.load().models[0]
    status, body = request(proxy["port"], "/v1/chat/completions", key=MASTER_KEY,
                           body={"model": model.name, "messages": [{"role": "user", "content": "Hi"}]})
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "Hello from fake Bedrock"

    path, headers, _ = proxy["bedrock"].requests[-1]
    assert path == f"/model/{urllib.parse.quote(model.model_id, safe='')}/converse"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIATESTTESTTESTTEST/")
    assert f"/{model.region}/bedrock/aws4_request" in headers["authorization"]

    # Other tests' requests (the refused /v1/models call) export spans of their own, in no fixed
    # order, so pick this completion's span by its answer.
    def completion_span():
        return next((r for r in proxy["langfuse"].requests
                     if b"litellm_request" in r[2] and b"Hello from fake Bedrock" in r[2]), None)

    started = time.monotonic()
    while (span := completion_span()) is None:
        assert time.monotonic() < started + 30, "the completion's trace did not reach the fake Langfuse within 30 s"
        time.sleep(0.2)
    path, headers, body = span
    assert path == "/api/public/otel/v1/traces"
    expected = base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()
    assert headers["authorization"] == f"Basic {expected}"
    assert headers["content-type"] == "application/x-protobuf"
    assert b"langfuse.observation.type" in body and b"generation" in body


def test_bedrocks_first_use_denial_reaches_the_client_naming_its_cause(proxy):
    """A model the account is not subscribed to: Cline sees Bedrock's reason, not a bare error."""
    haiku = next(m for m in settings.load().models if m.name == "claude-haiku-4-5")
    proxy["bedrock"].unsubscribed.add(haiku.model_id)
    try:
        status, body = request(proxy["port"], "/v1/chat/completions", MASTER_KEY,
                               {"model": haiku.name, "messages": [{"role": "user", "content": "hi"}]})
    finally:
        proxy["bedrock"].unsubscribed.clear()
    assert status >= 400
    assert "aws-marketplace:Subscribe" in body and "Model access is denied" in body, body[:500]


CLINE_KEY = "sk-" + "c" * 32
# A model id LiteLLM's own model map does not know: its window and prices come from workbench.yaml alone.
UNKNOWN_MODEL = {"name": "future", "model_id": "us.anthropic.claude-future-9-20270101-v1:0",
                 "context_window": 500000, "max_output_tokens": 32000, "prompt_caching": True,
                 "usd_per_million_tokens": {"input": 2.0, "output": 10.0, "cache_write": 2.5, "cache_read": 0.2}}


@pytest.fixture(scope="module")
def proxy_as_on_the_box(tmp_path_factory):
    """The proxy with Cline's key stored as the boot creates it, for the first model and an unknown one."""
    workdir = tmp_path_factory.mktemp("litellm-keys")
    defaults = yaml.safe_load(settings.DEFAULT_SETTINGS_FILE.read_text())["models"]
    first_model = defaults[0]["name"]
    stored = workdir / "cline-key.json"
    stored.write_text(subprocess.run(
        [sys.executable, str(KEY_REQUEST), "cline", "alice", "Cline"], input=CLINE_KEY, capture_output=True, text=True, check=True,
        env={"LITELLM_MODEL_NAMES": f"{first_model},future",
             "CLINE_BUDGET_USD_PER_DAY": "20"},
    ).stdout)

    def stored_keys(config, tree):
        shutil.copyfile(STORED_KEY_AUTH, workdir / STORED_KEY_AUTH.name)  # found next to the config
        config["general_settings"]["custom_auth"] = f"{STORED_KEY_AUTH.stem}.user_api_key_auth"
        config["general_settings"]["custom_auth_run_common_checks"] = True
        config["litellm_settings"]["enable_post_custom_auth_checks"] = True

    yield from start_proxy(workdir, stored_keys, {"WORKBENCH_STORED_KEY": str(stored)},
                           overrides={"models": json.dumps([*defaults, UNKNOWN_MODEL])})


def test_clines_key_calls_its_models_and_nothing_else(proxy_as_on_the_box):
    """LiteLLM's own checks on the key the boot creates: the model list and model calls only.

    Proven here: given the stored key, the proxy refuses other models and key management. Only
    the box proves that /key/generate stores it (Postgres) and that the daily budget is enforced,
    which needs LiteLLM's spend tracking in that database.
    """
    port = proxy_as_on_the_box["port"]
    allowed, other = (m.name for m in settings.load().models[:2])
    chat = lambda model: request(port, "/v1/chat/completions", CLINE_KEY,  # noqa: E731
                                 {"model": model, "messages": [{"role": "user", "content": "hi"}]})
    status, body = chat(allowed)
    assert status == 200, body
    status, body = chat(other)
    assert status == 403 and "key_model_access_denied" in body, body
    status, body = request(port, "/key/generate", CLINE_KEY, {"models": [other]})
    assert status == 403 and "not allowed to call this route" in body, body
    assert request(port, "/v1/models", "sk-someone-elses-key")[0] in (400, 401)


def test_model_info_gives_cline_the_window_prices_and_caching_even_for_a_model_litellm_does_not_know(
        proxy_as_on_the_box):
    """What Cline reads (GET /v1/model/info with x-litellm-api-key, src/core/api/providers/litellm.ts)."""
    req = urllib.request.Request(f"http://127.0.0.1:{proxy_as_on_the_box['port']}/v1/model/info",
                                 headers={"x-litellm-api-key": CLINE_KEY, "accept": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as response:
        data = json.loads(response.read())["data"]
    by_name = {entry["model_name"]: entry["model_info"] for entry in data}
    future = by_name["future"]
    assert future["max_input_tokens"] == 500000 and future["max_output_tokens"] == 32000
    assert future["supports_prompt_caching"] is True
    assert future["input_cost_per_token"] == pytest.approx(2.0e-6)
    assert future["output_cost_per_token"] == pytest.approx(10.0e-6)
    assert future["cache_creation_input_token_cost"] == pytest.approx(2.5e-6)
    assert future["cache_read_input_token_cost"] == pytest.approx(0.2e-6)
    sonnet = settings.load().models[0]
    assert by_name[sonnet.name]["max_input_tokens"] == sonnet.info.context_window


def test_the_bedrock_fake_speaks_the_event_stream_that_botocore_decodes():
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(converse_stream(["a", "b"]))
    messages = list(buffer)
    assert [m.headers[":event-type"] for m in messages] == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
    assert json.loads(messages[1].payload) == {"contentBlockIndex": 0, "delta": {"text": "a"}}


def span_attributes(body: bytes) -> list[dict]:
    """Every span of an OTLP/protobuf export, as {name, attributes}."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    export = ExportTraceServiceRequest.FromString(body)
    return [{"name": span.name, **{a.key: a.value.string_value for a in span.attributes}}
            for resource in export.resource_spans for scope in resource.scope_spans for span in scope.spans]


def test_a_cline_task_arrives_in_langfuse_as_one_session_of_the_workbenchs_user(proxy_as_on_the_box):
    """A streaming request shaped as Cline 3.89.2 sends it (src/core/api/providers/litellm.ts)."""
    port = proxy_as_on_the_box["port"]
    session = "cline-01JZWORKBENCHTESTSESSION01"
    body = {
        "model": settings.load().models[0].name,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are Cline.",
                                            "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": "<task>hi</task>",
                                          "cache_control": {"type": "ephemeral"}}]},
        ],
        "temperature": 0, "stream": True, "drop_params": True,
        "stream_options": {"include_usage": True},
        "litellm_session_id": session,
    }
    req = urllib.request.Request(f"http://127.0.0.1:{port}/chat/completions", data=json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {CLINE_KEY}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as response:
        events = [line[6:] for line in response.read().decode().splitlines() if line.startswith("data: ")]
    chunks = [json.loads(event) for event in events if event != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == "".join(STREAMED_TEXT)
    assert any(c.get("usage") for c in chunks)  # stream_options.include_usage: Cline counts tokens from it

    bedrock_path = proxy_as_on_the_box["bedrock"].requests[-1][0]
    assert bedrock_path.endswith("/converse-stream")

    def exported():
        for path, _, payload in proxy_as_on_the_box["langfuse"].requests:
            for span in span_attributes(payload) if path == "/api/public/otel/v1/traces" else []:
                if span["name"] == "litellm_request" and span.get("session.id") == session:
                    return span
        return None

    started = time.monotonic()
    while (span := exported()) is None:
        assert time.monotonic() < started + 30, "no span with the task's session id reached the fake Langfuse"
        time.sleep(0.2)
    assert span["user.id"] == "alice"  # Cline's key's user_id: the workbench's name
