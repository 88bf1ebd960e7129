"""deployment.env as the user data writes it: a root shell sources it, so every value is quoted."""

import subprocess

import pytest

from stacks.user_data import deployment_env_lines
from tests.helpers import HOSTILE_VALUES


@pytest.mark.parametrize("value", [v for v in HOSTILE_VALUES if "\n" not in v and "\r" not in v]
                         + ["plain", "", "https://x.example/h?X-Amz-Signature=a&b=c%2F", "it's"])
def test_a_sourced_value_is_exactly_what_was_written_and_runs_nothing(tmp_path, value):
    # Defence in depth: settings validation refuses these, and quoting would stop them anyway.
    env_file = tmp_path / "deployment.env"
    env_file.write_text("\n".join(deployment_env_lines({"WORKBENCH_NAME": value, "OTHER": "kept"})) + "\n")
    result = subprocess.run(
        ["bash", "-c", 'set -a; source "$1"; printf "%s\\0%s" "$WORKBENCH_NAME" "$OTHER"', "-", str(env_file)],
        cwd=tmp_path, capture_output=True, text=True, timeout=10,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\0") == [value, "kept"]
    assert not (tmp_path / "tmp").exists() and list(tmp_path.iterdir()) == [env_file]


@pytest.mark.parametrize("value", ["x\nEVIL=1", "x\nDEPLOYMENT_ENV\nreboot", "x\r"])
def test_a_value_spanning_lines_is_refused(value):
    # It could also end the heredoc that carries deployment.env inside the user data.
    with pytest.raises(ValueError, match="WORKBENCH_NAME spans lines"):
        deployment_env_lines({"WORKBENCH_NAME": value})


def test_a_key_that_is_no_shell_name_is_refused():
    with pytest.raises(ValueError, match="is not a shell variable name"):
        deployment_env_lines({"X=$(id)": "v"})
