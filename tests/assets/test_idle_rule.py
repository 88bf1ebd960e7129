"""The idle-stop rule (assets/boot/idle_rule.py) on inputs of its own: SSM sessions, a boot in
progress, LiteLLM's last request (a Cline task at work) and what the last check recorded.
boot/idle-stop.sh gathers these on the box (tests/assets/test_idle_stop.py, with real processes)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

RULE = Path(__file__).resolve().parents[2] / "assets" / "boot" / "idle_rule.py"
spec = importlib.util.spec_from_file_location("idle_rule", RULE)
idle_rule = importlib.util.module_from_spec(spec)
spec.loader.exec_module(idle_rule)

NOW = 1_800_000_000
HOUR = 3600


def decide(**changes):
    inputs = {"now": NOW, "minutes": 60, "ssm_sessions": 0, "booting": False, "recorded": NOW - 3 * HOUR,
              "recorded_what": "the boot", "last_request": 0, **changes}
    return idle_rule.decide(**inputs)


def test_nothing_for_longer_than_the_window_is_due():
    verdict = decide()
    assert verdict == idle_rule.Verdict(NOW - 3 * HOUR, "the boot", 60 * 60 - 3 * HOUR)
    assert verdict.due


@pytest.mark.parametrize("changes, what", [
    ({"ssm_sessions": 1}, "an SSM session"),
    ({"ssm_sessions": 3}, "an SSM session"),
    ({"booting": True}, "the boot"),
])
def test_an_open_session_or_a_boot_is_use_right_now(changes, what):
    verdict = decide(**changes)
    assert verdict == idle_rule.Verdict(NOW, what, 60 * 60)
    assert not verdict.due


def test_a_session_counts_over_everything_older():
    assert decide(ssm_sessions=1, last_request=NOW - 30).what == "an SSM session"


@pytest.mark.parametrize("request_age, due", [(59 * 60, False), (60 * 60, True), (61 * 60, True)])
def test_a_cline_task_calling_the_model_with_nobody_watching_keeps_the_box_up_for_the_window(request_age, due):
    verdict = decide(last_request=NOW - request_age)
    assert (verdict.what, verdict.last_use) == ("a LiteLLM request", NOW - request_age)
    assert verdict.due is due


def test_a_task_that_stopped_calling_the_model_for_the_window_counts_as_idle():
    # e.g. one command running longer than idle_stop_minutes with no model call (README, "Idle stop")
    assert decide(last_request=NOW - 61 * 60).due


def test_the_latest_sign_wins_and_a_recorded_use_is_remembered():
    verdict = decide(recorded=NOW - 5 * 60, recorded_what="an SSM session", last_request=NOW - 40 * 60)
    assert (verdict.last_use, verdict.what) == (NOW - 5 * 60, "an SSM session")
    later = decide(recorded=NOW - 40 * 60, recorded_what="an SSM session", last_request=NOW - 5 * 60)
    assert (later.last_use, later.what) == (NOW - 5 * 60, "a LiteLLM request")


def test_signs_that_could_not_be_read_count_as_none():
    assert decide(last_request=0).what == "the boot"


def test_the_window_follows_idle_stop_minutes():
    assert decide(minutes=240, recorded=NOW - 3 * HOUR).seconds_left == HOUR


def test_the_box_runs_it_with_positional_inputs_and_reads_one_line():
    result = subprocess.run([sys.executable, str(RULE), str(NOW), "60", "0", "0", str(NOW - 600),
                             str(NOW - 300), "an", "SSM", "session"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{NOW - 300} {60 * 60 - 300} a LiteLLM request\n"
    recorded = subprocess.run([sys.executable, str(RULE), str(NOW), "60", "0", "0", str(NOW - 600), "0",
                               "an", "SSM", "session"], capture_output=True, text=True)
    assert recorded.stdout == f"{NOW - 600} {60 * 60 - 600} an SSM session\n"
    in_use = subprocess.run([sys.executable, str(RULE), str(NOW), "60", "1", "0", "0", "0"],
                            capture_output=True, text=True)
    assert in_use.stdout == f"{NOW} {60 * 60} an SSM session\n"
