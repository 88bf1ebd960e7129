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
