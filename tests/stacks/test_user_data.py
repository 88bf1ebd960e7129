"""deployment.env as the user data writes it: a root shell sources it, so every value is quoted,
and it holds the wait handle's URL, so it is root's alone."""

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from stacks.user_data import DEPLOYMENT_ENV, boot_user_data, deployment_env_lines
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


# The wait handle's presigned URL: whoever holds it can answer for the deploy.
OLD_URL = "https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/old?X-Amz-Signature=old"
NEW_URL = "https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/new?X-Amz-Signature=new"
DEPLOYMENT = {"WORKBENCH_NAME": "alice", "WAIT_HANDLE_URL": NEW_URL}


@pytest.fixture
def box():
    """A root directory for the user data's paths, traversable by anyone as / is, so only the
    file's own mode keeps other users out (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory(prefix="box-") as root:
        os.chmod(root, 0o755)
        yield Path(root)


def write_deployment_env(box: Path, probe_dir: Path) -> list[str]:
    """Runs the user data, up to where it installs the boot script, with /etc/workbench moved
    into box. Its `cat` is a probe that records the mode of the file the shell opened for it,
    before a byte is written, and then runs the real cat; returns the modes it saw."""
    head, found, _ = boot_user_data(DEPLOYMENT).render().partition("base64 -d <<'BOOT_SCRIPT'")
    assert found and DEPLOYMENT_ENV.startswith("/etc/workbench/")
    head = head.replace("/etc/workbench", f"{box}/etc/workbench")
    modes = probe_dir / "modes"
    probe = probe_dir / "cat"
    probe.write_text(f'#!/bin/sh\nstat -L -c %a "/proc/$$/fd/1" >> {modes}\nexec {shutil.which("cat")} "$@"\n')
    probe.chmod(0o755)
    # systemd starts cloud-init, which runs the user data, with its default UMask=0022.
    result = subprocess.run(["bash", "-c", "umask 022\n" + head], env={"PATH": f"{probe_dir}:/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return modes.read_text().split() if modes.exists() else []


def test_deployment_env_is_root_only_from_its_first_byte(box, tmp_path):
    assert write_deployment_env(box, tmp_path) == ["600"]
    env_file = box / DEPLOYMENT_ENV.lstrip("/")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and env_file.stat().st_uid == 0
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o755
    assert sorted(p.name for p in env_file.parent.iterdir()) == ["deployment.env"]
    as_nobody = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(env_file)],
                               capture_output=True, text=True, timeout=10)
    assert as_nobody.returncode != 0 and "Permission denied" in as_nobody.stderr
    assert NEW_URL not in as_nobody.stdout
    sourced = subprocess.run(["bash", "-c", 'set -a; source "$1"; printf "%s" "$WAIT_HANDLE_URL"', "-", str(env_file)],
                             capture_output=True, text=True, timeout=10)
    assert sourced.stdout == NEW_URL


def test_a_reader_of_an_older_world_readable_copy_never_sees_the_new_url(box, tmp_path):
    # A box deployed before this fix has a 0644 deployment.env; the coding user opened it then
    # and holds the descriptor, which keeps its access whatever the file's mode becomes.
    env_file = box / DEPLOYMENT_ENV.lstrip("/")
    env_file.parent.mkdir(parents=True)
    env_file.write_text(f"WAIT_HANDLE_URL='{OLD_URL}'\n")
    env_file.chmod(0o644)
    holder = subprocess.Popen(
        ["runuser", "-u", "nobody", "--", "python3", "-c",
         "import sys; held = open(sys.argv[1]); print('open', flush=True); sys.stdin.readline(); print(held.read())",
         str(env_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        write_deployment_env(box, tmp_path)
        read_through_held, errors = holder.communicate("\n", timeout=10)
    finally:
        holder.kill()
    assert holder.returncode == 0, errors
    assert NEW_URL not in read_through_held
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and NEW_URL in env_file.read_text()
