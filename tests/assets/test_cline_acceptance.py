"""The real Cline CLI 2.18.0 (the core of the extension 3.89.2 we pin) works a task through the real
LiteLLM with the shipped config, offline, configured only by the boot's seed_cline.py.

One scenario (tools/cline_scenario.py) runs in a network namespace with loopback only: the proxy
with the boot's keys, a fake Bedrock scripted in Cline's tool syntax, a fake Langfuse, Cline's
two-turn task with its own key, then Cline with a key over its daily budget. These tests read
what it recorded; Cline's requests are kept in the test's tmp dir (cline-requests/).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gateway import CAPTURE
from tools.cline_scenario import (
    CLINE,
    COMPLETE,
    NODE,
    TASK,
    WORKBENCH_NAME,
    WORKSPACE_FILE,
    WORKSPACE_TEXT,
    comparable,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("iptables"):
        pytest.skip("needs root with unshare and iptables: Cline runs in a network namespace with loopback only")
    assert NODE.exists() and CLINE.exists(), "Cline is not installed: run `make test-install` (tests/programs)"
    outdir = tmp_path_factory.mktemp("cline")
    finished = subprocess.run(["unshare", "--net", "--", sys.executable, "-m", "tools.cline_scenario", str(outdir)],
                              cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-5000:]
    result = json.loads((outdir / "result.json").read_text())
    result["outdir"] = outdir
    return result


def chat_requests(run: dict) -> list[dict]:
    return [request for request in run["requests"] if request["path"].endswith("/chat/completions")]


def test_cline_reads_our_model_info_and_turns_on_prompt_caching_from_it(scenario):
    """Cline sends cache_control only when /model/info says supports_prompt_caching
    (src/core/api/providers/litellm.ts at v2.18.0-cli and v3.89.2)."""
    assert scenario["model_info"][scenario["model"]]["prompt_caching"] is True
    info = scenario["task_run"]["requests"][0]
    assert (info["method"], info["path"], info["status"]) == ("GET", "/v1/model/info", 200)
    assert info["headers"]["x-litellm-api-key"]  # Cline's own key, not the master key
    served = {entry["model_name"]: entry["model_info"] for entry in json.loads(info["answer"])["data"]}
    assert served[scenario["model"]]["max_input_tokens"] == scenario["model_info"][scenario["model"]]["context_window"]
    assert served[scenario["model"]]["supports_prompt_caching"] is True
    for request in chat_requests(scenario["task_run"]):
        messages = json.loads(request["body"])["messages"]
        assert messages[0]["role"] == "system"
        assert messages[0]["content"][-1]["cache_control"] == {"type": "ephemeral"}
        users = [m for m in messages if m["role"] == "user"]
        assert all(m["content"][-1].get("cache_control") == {"type": "ephemeral"} for m in users[-2:])


def test_the_task_ran_its_command_in_the_workspace_and_completed_with_every_turn_answered(scenario):
    run = scenario["task_run"]
    assert run["returncode"] == 0, run["stderr"]
    assert [r["status"] for r in run["requests"]] == [200, 200, 200]  # model info, then the two turns
    assert run["workspace"] == {WORKSPACE_FILE: WORKSPACE_TEXT + "\n"}
    assert [path.rsplit("/", 1)[1] for path in scenario["bedrock_requests"]] == ["converse-stream"] * 2
    said = [(m.get("say"), m.get("text")) for m in run["messages"] if m.get("type") == "say"]
    assert ("command", f"echo {WORKSPACE_TEXT} > {WORKSPACE_FILE}") in said
    completion = COMPLETE.split("<result>")[1].split("</result>")[0]
    assert said[-1] == ("completion_result", completion)
    first, second = (json.loads(r["body"]) for r in chat_requests(run))
    assert first["messages"][1]["content"][0]["text"].startswith(f"<task>\n{TASK}")
    # The second turn carries the command's outcome back, as Cline reports a tool's result.
    assert f"[execute_command for 'echo {WORKSPACE_TEXT} > {WORKSPACE_FILE}'] Result:" in json.dumps(second)


def test_the_task_is_one_session_in_langfuse_under_the_workbenchs_name(scenario):
    bodies = [json.loads(r["body"]) for r in chat_requests(scenario["task_run"])]
    sessions = {body["litellm_session_id"] for body in bodies}
    assert len(bodies) == 2 and len(sessions) == 1
    (session,) = sessions
    assert session.startswith("cline-")
    exported = [s for s in scenario["langfuse_spans"] if s["name"] == "litellm_request" and s.get("session.id") == session]
    assert len(exported) == 2, scenario["langfuse_spans"]
    assert {span["user.id"] for span in exported} == {WORKBENCH_NAME}


def test_a_key_over_its_daily_budget_shows_litellms_budget_error_and_stops(scenario):
    run = scenario["over_budget_run"]
    assert run["seconds"] < 60  # Cline's -t 90 is not what ended it
    refused = chat_requests(run)
    assert refused and all(r["status"] == 422 for r in refused)
    assert "budget_exceeded" in refused[0]["answer"]
    errors = [m["message"] for m in run["messages"] if m.get("type") == "error"]
    assert errors and "Budget has been exceeded!" in errors[-1], run["messages"][-3:]
    assert run["returncode"] != 0
    assert run["workspace"] == {}
    assert len(scenario["bedrock_requests"]) == 2  # the task's two turns: the refused call never reached Bedrock


def test_nothing_tried_to_leave_loopback(scenario):
    # The recorders see each way out: a connection elsewhere, a DNS query, a request through the proxy.
    assert {a["via"] for a in scenario["recorders_self_check"]} == {"direct tcp", "dns", "http proxy"}, (
        scenario["recorders_self_check"])
    assert scenario["attempts_to_leave"] == []


def test_clines_requests_are_kept_for_review_and_the_benchmark(scenario):
    kept = sorted((scenario["outdir"] / "cline-requests").iterdir())
    assert len(kept) == len(scenario["task_run"]["requests"]) + len(scenario["over_budget_run"]["requests"])
    system = json.loads(chat_requests(scenario["task_run"])[0]["body"])["messages"][0]
    system_prompt = system["content"] if isinstance(system["content"], str) else system["content"][0]["text"]
    assert len(system_prompt) > 20000  # Cline's own prompt, not a stand-in


def test_the_benchmark_replays_what_cline_sends_today(scenario):
    """benchmarks/cline-requests is a capture of this task's chat turns: a Cline that sends anything
    else (another prompt, other parameters, another cache_control placement) fails here until the
    capture is refreshed (copy OUTDIR/cline-capture/*.json there). Only the parts that differ
    between any two runs are compared by name (tools/cline_scenario.py, VOLATILE)."""
    today = sorted((scenario["outdir"] / "cline-capture").glob("turn*.json"))
    captured = sorted(CAPTURE.glob("turn*.json"))
    assert [path.name for path in today] == [path.name for path in captured] == ["turn1.json", "turn2.json"]
    for now, then in zip(today, captured, strict=True):
        assert comparable(json.loads(now.read_text())) == comparable(json.loads(then.read_text())), now.name
