"""The idle-stop rule (assets/boot/idle_rule.py) on inputs of its own: SSM sessions, a boot in
progress, VS Code's heartbeat, LiteLLM's last request (a Cline task at work) and what the last
check recorded. boot/idle-stop.sh gathers these on the box (tests/userdata/test_boot_script.py)."""

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
              "recorded_what": "the boot", "heartbeat_ms": 0, "last_request": 0, **changes}
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
    assert decide(ssm_sessions=1, heartbeat_ms=(NOW - 60) * 1000, last_request=NOW - 30).what == "an SSM session"


@pytest.mark.parametrize("heartbeat_age, due", [(59 * 60, False), (60 * 60, True), (61 * 60, True)])
def test_vs_code_in_a_browser_keeps_the_box_up_for_the_window_after_its_last_heartbeat(heartbeat_age, due):
    verdict = decide(heartbeat_ms=(NOW - heartbeat_age) * 1000 + 999)  # milliseconds, rounded down
    assert verdict.what == "VS Code in a browser" and verdict.last_use == NOW - heartbeat_age
    assert verdict.due is due


def test_a_cline_task_calling_the_model_with_nobody_watching_counts_as_use():
    verdict = decide(last_request=NOW - 10 * 60, heartbeat_ms=(NOW - 2 * HOUR) * 1000)
    assert (verdict.what, verdict.seconds_left) == ("a LiteLLM request", 50 * 60)


def test_a_task_that_stopped_calling_the_model_for_the_window_counts_as_idle():
    # e.g. one command running longer than idle_stop_minutes with no model call (README, "Idle stop")
    assert decide(last_request=NOW - 61 * 60).due


def test_the_latest_sign_wins_and_a_recorded_use_is_remembered():
    verdict = decide(recorded=NOW - 5 * 60, recorded_what="an SSM session", heartbeat_ms=(NOW - 20 * 60) * 1000,
                     last_request=NOW - 40 * 60)
    assert (verdict.last_use, verdict.what) == (NOW - 5 * 60, "an SSM session")


def test_signs_that_could_not_be_read_count_as_none():
    assert decide(heartbeat_ms=0, last_request=0).what == "the boot"


def test_the_window_follows_idle_stop_minutes():
    assert decide(minutes=240, recorded=NOW - 3 * HOUR).seconds_left == HOUR


def test_the_box_runs_it_with_positional_inputs_and_reads_one_line():
    result = subprocess.run([sys.executable, str(RULE), str(NOW), "60", "0", "0", str(NOW - 600), "0",
                             str(NOW - 300), "VS", "Code", "in", "a", "browser"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{NOW - 300} {60 * 60 - 300} a LiteLLM request\n"
    recorded = subprocess.run([sys.executable, str(RULE), str(NOW), "60", "0", "0", str(NOW - 600), "0", "0",
                               "VS", "Code", "in", "a", "browser"], capture_output=True, text=True)
    assert recorded.stdout == f"{NOW - 600} {60 * 60 - 600} VS Code in a browser\n"
