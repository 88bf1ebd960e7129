"""The real LiteLLM proxy (the version we deploy) loading the config and env file we ship.

Bedrock and Langfuse are played by local fakes: LiteLLM sends a real SigV4-signed Converse
call to the fake Bedrock and exports its OTLP trace to the fake Langfuse, which proves the
wiring (model ids, callback, host, key pair) end to end without AWS or the internet.
"""

import base64
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tools.gateway import (
    STREAMED_TEXT,
    TEST_SECRETS,
    GatewayError,
    converse_stream,
    running_proxy,
)
from tools.gateway import (
    answer as request,
)
from workbench import bundle, settings

MASTER_KEY = TEST_SECRETS["LITELLM_MASTER_KEY"]
PUBLIC_KEY, SECRET_KEY = TEST_SECRETS["LANGFUSE_PUBLIC_KEY"], TEST_SECRETS["LANGFUSE_SECRET_KEY"]
ROOT = Path(__file__).resolve().parents[2]
KEY_REQUEST = ROOT / "assets" / "boot" / "litellm_key_request.py"
STORED_KEY_AUTH = Path(__file__).resolve().parent / "litellm_stored_key.py"


def start_proxy(workdir: Path, config_changes=None, env_changes=None, overrides=None):
    """The real proxy with the shipped config and env; yields its port and the fakes it talks to."""
    tree = bundle.render(settings.load(overrides=overrides), workdir / "bundle")
    config = yaml.safe_load((tree / "litellm" / "config.yaml").read_text())
    if config_changes:
        config_changes(config, tree)
    try:
        with running_proxy(workdir, tree, config, env_changes) as proxy:
            yield {"port": proxy.port, "bedrock": proxy.bedrock, "langfuse": proxy.langfuse, "process": proxy.process}
    except GatewayError as error:
        pytest.fail(str(error))


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
LANGFUSE_KEY = "sk-" + "l" * 32
# Cline's key as the boot built it before issue 18: LiteLLM's "llm_api_routes" group.
OLD_ROUTES_KEY = "sk-" + "o" * 32
# A model id LiteLLM's own model map does not know: its window and prices come from workbench.yaml alone.
UNKNOWN_MODEL = {"name": "future", "model_id": "us.anthropic.claude-future-9-20270101-v1:0",
                 "context_window": 500000, "max_output_tokens": 32000, "prompt_caching": True,
                 "usd_per_million_tokens": {"input": 2.0, "output": 10.0, "cache_write": 2.5, "cache_read": 0.2}}


def key_request(alias: str, user_id: str, key: str, model_names: str) -> dict:
    """The body the boot sends to /key/generate for one key (its litellm-keys.sh arguments)."""
    return json.loads(subprocess.run(
        [sys.executable, str(KEY_REQUEST), alias, user_id, "test"], input=key, capture_output=True, text=True,
        check=True, env={"LITELLM_MODEL_NAMES": model_names, "CLINE_BUDGET_USD_PER_DAY": "20"},
    ).stdout)


@pytest.fixture(scope="module")
def proxy_as_on_the_box(tmp_path_factory):
    """The proxy with the boot's keys stored as it creates them (Cline's for the first model and an
    unknown one, Langfuse's), and Cline's key with the old route group for comparison."""
    workdir = tmp_path_factory.mktemp("litellm-keys")
    defaults = yaml.safe_load(settings.DEFAULT_SETTINGS_FILE.read_text())["models"]
    cline = key_request("cline", "alice", CLINE_KEY, f"{defaults[0]['name']},future")
    stored = workdir / "stored-keys.json"
    stored.write_text(json.dumps([
        cline,
        key_request("langfuse", "langfuse", LANGFUSE_KEY, ",".join(m["name"] for m in defaults)),
        {**cline, "key": OLD_ROUTES_KEY, "allowed_routes": ["llm_api_routes"]},
    ]))

    def stored_keys(config, tree):
        shutil.copyfile(STORED_KEY_AUTH, workdir / STORED_KEY_AUTH.name)  # found next to the config
        config["general_settings"]["custom_auth"] = f"{STORED_KEY_AUTH.stem}.user_api_key_auth"
        config["general_settings"]["custom_auth_run_common_checks"] = True
        config["litellm_settings"]["enable_post_custom_auth_checks"] = True

    yield from start_proxy(workdir, stored_keys, {"WORKBENCH_STORED_KEYS": str(stored)},
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


def call(port: int, method: str, path: str, headers: dict, body: dict | None = None) -> tuple[int, str]:
    """(status, answer text) of any request to the proxy."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# What a holder of a workbench key must not reach. LiteLLM's pass-through routes forward with the
# server's own credentials: /langfuse/* with the project's key pair (read, delete, re-point the
# playground's connection), /bedrock/* signed with the server's AWS credentials; MCP and key, user and
# config management are LiteLLM's admin surface. Each path exists in LiteLLM 1.108.7 (its
# /openapi.json), so a refusal is the key's route check and not a 404; a model in a path is one
# the keys may call, so the model check does not refuse it first.
FORBIDDEN_CALLS = [
    ("GET", "/langfuse/api/public/traces"),
    ("DELETE", "/langfuse/api/public/traces/a-trace-id"),
    ("PUT", "/langfuse/api/public/llm-connections"),
    ("POST", "/bedrock/model/claude-sonnet-4-5/converse"),
    ("GET", "/bedrock/foundation-models"),
    ("GET", "/openai/v1/models"),
    ("POST", "/openai/v1/chat/completions"),
    ("POST", "/anthropic/v1/messages"),
    ("POST", "/vertex_ai/v1/projects/p/locations/us-central1/publishers/google/models/claude-sonnet-4-5:generateContent"),
    ("POST", "/mcp"),
    ("GET", "/mcp"),
    ("DELETE", "/mcp"),
    ("POST", "/mcp/proxy"),
    ("GET", "/mcp-rest/tools/list"),
    ("POST", "/mcp-rest/tools/call"),
    ("POST", "/key/generate"),
    ("GET", "/key/list"),
    ("GET", "/key/info"),
    ("POST", "/key/update"),
    ("POST", "/key/delete"),
    ("GET", "/user/info"),
    ("GET", "/user/list"),
    ("POST", "/user/new"),
    ("POST", "/user/delete"),
    ("GET", "/config/pass_through_endpoint"),
    ("POST", "/config/pass_through_endpoint"),
    ("DELETE", "/config/pass_through_endpoint"),
]


def as_the_client_sends_it(key: str, path: str) -> dict:
    """The key in the header the route reads: LiteLLM's /langfuse/* takes it as the password of Basic
    auth, the way Langfuse's SDKs send their key pair (proxy/vertex_ai_endpoints/langfuse_endpoints.py)."""
    if path.startswith("/langfuse/"):
        return {"authorization": "Basic " + base64.b64encode(f"anyone:{key}".encode()).decode()}
    return {"authorization": f"Bearer {key}"}


def reached_upstream(proxy: dict, probe: str) -> list:
    """The requests the fakes behind the proxy (Bedrock, Langfuse) received carrying this probe.

    Langfuse's pass-through targets its fake here (LANGFUSE_HOST); the other providers' would go
    to their public hosts, unreachable offline, so for them the route check's refusal is the proof."""
    return [(path, headers) for fake in (proxy["bedrock"], proxy["langfuse"])
            for path, headers, _ in fake.requests if probe in path]


@pytest.mark.parametrize("key", [CLINE_KEY, LANGFUSE_KEY], ids=["cline", "langfuse"])
@pytest.mark.parametrize(("method", "path"), FORBIDDEN_CALLS, ids=[" ".join(c) for c in FORBIDDEN_CALLS])
def test_the_boots_keys_reach_no_pass_through_mcp_or_management_route(proxy_as_on_the_box, key, method, path):
    probe = f"probe-{uuid.uuid4().hex}"  # finds this request among what reached the fakes
    status, answer = call(proxy_as_on_the_box["port"], method, f"{path}?{probe}=1", as_the_client_sends_it(key, path),
                          {} if method in ("POST", "PUT") else None)
    assert status in (401, 403), (status, answer[:500])
    assert "not allowed to call this route" in answer, answer[:500]
    assert reached_upstream(proxy_as_on_the_box, probe) == []


@pytest.mark.parametrize(("method", "path"), [("GET", "/langfuse/api/public/traces"),
                                              ("DELETE", "/langfuse/api/public/traces/a-trace-id")])
def test_the_old_route_group_let_a_key_through_to_langfuse_with_the_servers_key_pair(
        proxy_as_on_the_box, method, path):
    """The regression baseline: the same request with ["llm_api_routes"] reached Langfuse as the server."""
    probe = f"probe-{uuid.uuid4().hex}"
    status, answer = call(proxy_as_on_the_box["port"], method, f"{path}?{probe}=1",
                          as_the_client_sends_it(OLD_ROUTES_KEY, path))
    assert status not in (401, 403), answer[:500]
    ((upstream_path, headers),) = reached_upstream(proxy_as_on_the_box, probe)
    assert upstream_path.startswith(path.removeprefix("/langfuse"))
    assert headers["authorization"] == "Basic " + base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()


def test_langfuses_key_answers_its_playground_and_its_evaluators(proxy_as_on_the_box):
    """What Langfuse's LLM connection sends (baseURL http://litellm:4000/v1, adapter openai): the AI SDK's
    OpenAI-compatible chat model posts <baseURL>/chat/completions with a Bearer key, streamed in the
    playground and with a JSON schema for evaluators and the connection test (langfuse v4.16.0
    packages/shared/src/server/llm/ai-sdk/providers/openai.ts, testModelCall.ts; vercel/ai
    packages/openai-compatible/src/chat/openai-compatible-chat-language-model.ts)."""
    port, model = proxy_as_on_the_box["port"], settings.load().models[0].name
    bearer = {"authorization": f"Bearer {LANGFUSE_KEY}"}
    messages = [{"role": "user", "content": "Extract a score (1-5) and reasoning from this text: 'It worked.'"}]
    schema = {"type": "object", "properties": {"score": {"type": "string"}, "reasoning": {"type": "string"}},
              "required": ["score", "reasoning"], "additionalProperties": False}
    status, answer = call(port, "POST", "/v1/chat/completions", bearer, {
        "model": model, "messages": messages, "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"schema": schema, "strict": True, "name": "response"}},
    })
    assert status == 200, answer[:500]
    status, answer = call(port, "POST", "/v1/chat/completions", bearer,
                          {"model": model, "messages": messages, "stream": True})
    assert status == 200, answer[:500]
    assert "".join(STREAMED_TEXT) == "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in answer.splitlines() if line.startswith("data: {") and json.loads(line[6:]).get("choices"))
