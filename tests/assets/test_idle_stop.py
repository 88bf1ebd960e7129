"""Which processes boot/idle-stop.sh counts as use, with real processes: only ones root runs.

The SSM agent (root) runs one /usr/bin/ssm-session-worker per open session, with argv
[/usr/bin/ssm-session-worker, SESSION_ID] (amazon-ssm-agent 3.3.1142.0: appconfig/constants_unix.go,
framework/processor/executer/outofproc/master.go and proc/process.go), and every tunnel of
`workbench connect` is one. The boot's phases run as `bash /usr/local/sbin/workbench-boot --phases`
(userdata/boot.sh's main). The coding user can start any program with any argv, as itself, and
setuid-root programs; none of those may keep the box up. The rule's own tests:
tests/assets/test_idle_rule.py.

Each test starts the processes for real, in a sandbox directory (WORKBENCH_ROOT) the script reads
its paths under, and asks `idle-stop.sh report`, which never powers off.
"""

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[2] / "assets"
IDLE_STOP = ASSETS / "boot" / "idle-stop.sh"
# The session id the agent passes: "<the IAM user or role session>-<17 hex digits>" (the sessions
# Session Manager lists).
SESSION_ID = "workbench-operator-0123456789abcdef0"
# The real processes: uid 0 to run them as root, to read root's /proc/PID/exe and to start them as
# another user (setpriv).
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts real processes as root and as nobody "
                                "and reads their /proc/PID/exe, which takes root (CI runs the tests as root)")
AS_CODER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]  # coder: any user but root
IDLE = "idle-stop now (unused for 180 min; last use: the boot)"
IN_A_SESSION = "idle-stop in 60 min (last use: an SSM session at "
BOOTING = "idle-stop in 60 min (last use: the boot at "


class Box:
    """The paths idle-stop.sh reads, under a root of their own: the last recorded use three hours
    ago (the window is 60 minutes), the SSM agent's session worker (a copy of bash, so that it can
    run with the agent's argv: it reads its session id as a script, which waits on stdin) and the
    installed boot script (which waits on stdin too)."""

    def __init__(self, root: Path):
        self.root = root
        (root / "etc/workbench").mkdir(parents=True)
        (root / "etc/workbench/deployment.env").write_text("IDLE_STOP_MINUTES=60\n")
        (root / "opt/workbench/boot").mkdir(parents=True)
        shutil.copy(ASSETS / "boot" / "idle_rule.py", root / "opt/workbench/boot/idle_rule.py")
        (root / "var/lib/workbench").mkdir(parents=True)
        (root / "var/lib/workbench/last-use").write_text(f"{int(time.time()) - 3 * 3600} the boot\n")
        (root / "var/log").mkdir(parents=True)
        (root / "usr/bin").mkdir(parents=True)
        self.worker = root / "usr/bin/ssm-session-worker"
        shutil.copy("/usr/bin/bash", self.worker)
        (root / SESSION_ID).write_text("read -r _\n")
        (root / "usr/local/sbin").mkdir(parents=True)
        self.boot_script = root / "usr/local/sbin/workbench-boot"
        self.boot_script.write_text("read -r _\n")
        self.boot_argv = ["bash", str(self.boot_script), "--phases"]

    def report(self) -> str:
        result = subprocess.run(["bash", str(IDLE_STOP), "report"],
                                env={**os.environ, "WORKBENCH_ROOT": str(self.root)},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    @contextmanager
    def running(self, argv: list[str], exe: str, *, executable: str | None = None) -> Iterator[int]:
        """A real process with this argv, waiting on its stdin until the block ends; yields its pid
        once the kernel runs `exe` in it (after any setpriv/unshare in front has exec'd it)."""
        process = subprocess.Popen(argv, executable=executable, cwd=self.root, stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not runs(process.pid, exe):
                assert process.poll() is None, f"{argv} ended with {process.returncode}"
                assert time.monotonic() < deadline, f"{argv} never ran {exe}"
                time.sleep(0.02)
            yield process.pid
        finally:
            process.kill()
            process.wait()


@pytest.fixture
def box() -> Iterator[Box]:
    # Not pytest's tmp_path: its parents are root's 0700 directories, and nobody must be able to
    # run the sandbox's worker binary and read its boot script.
    with tempfile.TemporaryDirectory(prefix="idle-stop-") as root:
        os.chmod(root, 0o755)
        yield Box(Path(root))


def runs(pid: int, exe: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == exe
    except FileNotFoundError:  # it has ended
        return False


def uids(pid: int) -> list[int]:
    """/proc/PID/status's Uid line: real, effective, saved, filesystem."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:"))
    return [int(uid) for uid in line.split()[1:]]


def pgrep(*args: str) -> bool:
    return subprocess.run(["pgrep", *args], capture_output=True).returncode == 0


def test_nothing_running_is_idle(box):
    assert box.report() == IDLE


def test_an_open_ssm_session_counts_though_its_name_is_cut_to_15_characters(box):
    with box.running([str(box.worker), SESSION_ID], str(box.worker)) as pid:
        assert box.report().startswith(IN_A_SESSION)
        # The old sign: the kernel keeps 15 characters of a program's name, so `pgrep -x` never
        # matched the agent's worker and an open tunnel did not count.
        assert Path(f"/proc/{pid}/comm").read_text() == "ssm-session-wor\n"
        assert not pgrep("-x", "ssm-session-worker")


def test_an_agent_update_replacing_the_worker_on_disk_keeps_the_open_session_counted(box):
    with box.running([str(box.worker), SESSION_ID], str(box.worker)) as pid:
        update = box.worker.with_name("ssm-session-worker.new")
        shutil.copy("/usr/bin/bash", update)
        update.replace(box.worker)  # as rpm installs a file: a new one renamed over the old
        assert os.readlink(f"/proc/{pid}/exe") == f"{box.worker} (deleted)"
        assert box.report().startswith(IN_A_SESSION)


def test_the_worker_binary_run_by_coder_does_not_count(box):
    with box.running([*AS_CODER, str(box.worker), SESSION_ID], str(box.worker)) as pid:
        assert uids(pid) == [65534] * 4
        assert box.report() == IDLE


def test_a_setuid_root_program_coder_names_after_the_worker_does_not_count(box):
    # `su` waits for root's password on its stdin for as long as coder likes, with uid 0 as its
    # effective uid and coder's argv[0]: `pgrep -u root -f '^/usr/bin/ssm-session-worker '`
    # would take it for the agent's worker. Its real uid stays coder's.
    posing = ["bash", "-c", 'exec -a "$0" su root', str(box.worker)]
    with box.running([*AS_CODER, *posing], "/usr/bin/su") as pid:
        assert uids(pid) == [65534, 0, 0, 0]
        assert pgrep("-u", "root", "-f", f"^{box.worker} ")
        assert box.report() == IDLE


def test_a_root_process_that_only_names_itself_after_the_worker_does_not_count(box):
    # argv is what the process says it is; /proc/PID/exe is what the kernel runs.
    with box.running([str(box.worker), SESSION_ID], "/usr/bin/bash", executable="/usr/bin/bash"):
        assert pgrep("-U", "root", "-f", f"^{box.worker} {SESSION_ID}$")
        assert box.report() == IDLE


def test_the_worker_run_by_a_containers_root_does_not_count(box):
    # A container's processes are uid 0 on the host too (no user namespace), and its /usr/bin is its
    # own: the worker counts only in the box's own mount namespace, the SSM agent's.
    with box.running(["unshare", "--mount", "--", str(box.worker), SESSION_ID], str(box.worker)) as pid:
        assert uids(pid) == [0] * 4
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert box.report() == IDLE


def test_a_boot_run_by_root_counts(box):
    with box.running(box.boot_argv, "/usr/bin/bash", executable="/usr/bin/bash"):
        assert box.report().startswith(BOOTING)


def test_the_boot_run_by_coder_does_not_count(box):
    # The old sign, `pgrep -f "workbench-boot --phases"`, took any process with those words for a
    # boot: coder could keep the box up forever.
    with box.running([*AS_CODER, *box.boot_argv], "/usr/bin/bash") as pid:
        assert uids(pid) == [65534] * 4
        assert pgrep("-f", "--", "workbench-boot --phases")
        assert box.report() == IDLE


def test_a_root_process_other_than_bash_that_names_itself_the_boot_does_not_count(box):
    with box.running(box.boot_argv, "/usr/bin/dash", executable="/usr/bin/dash"):
        assert box.report() == IDLE


def test_a_boot_script_other_than_the_installed_one_does_not_count(box):
    elsewhere = box.root / "workbench-boot"
    shutil.copy(box.boot_script, elsewhere)
    with box.running(["bash", str(elsewhere), "--phases"], "/usr/bin/bash", executable="/usr/bin/bash"):
        assert box.report() == IDLE


HEARTBEAT_SERVER = """
import http.server, json, time
class Alive(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "alive", "lastHeartbeat": int(time.time() * 1000)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", 8080), Alive).serve_forever()
"""


def test_a_heartbeat_coder_serves_on_code_servers_port_does_not_count(box):
    # code-server and its /healthz are coder's: a fresh "lastHeartbeat" (code-server's answer,
    # src/node/routes/health.ts) said "VS Code in a browser" to the old script. In a network
    # namespace of its own, so port 8080 is free whatever else runs here.
    network = f"""
        ip link set lo up
        {' '.join(AS_CODER)} python3 -c '{HEARTBEAT_SERVER}' &
        until curl -fsS http://127.0.0.1:8080/healthz | grep -q '"alive"'; do sleep 0.05; done
        bash {IDLE_STOP} report
        status=$?
        kill $!
        exit $status
    """
    result = subprocess.run(["unshare", "--net", "--", "bash", "-c", network],
                            env={**os.environ, "WORKBENCH_ROOT": str(box.root)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == IDLE


# A light workbench (GATEWAY=team): Cline's connection to the team gateway's LiteLLM, seen by the real ss
# (iproute2) in a network namespace of the test's own, where 10.0.2.10 stands for the load balancer.
LIGHT_CASES = r'''
set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
ip link set lo up
ip addr add 10.0.2.10/32 dev lo
ip addr add 192.0.2.10/32 dev lo
listen() { /usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8); held = [s.accept() for _ in range(8)]' "$@" >/dev/null 2>&1 & }
connect() {  # USER HOST PORT: a connection held open until the case ends
  "${@:4}" /usr/bin/python3 -c 'import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2]))); print("open", flush=True); time.sleep(30)' "$2" "$3" \
    >"$WORKBENCH_ROOT/connected" 2>/dev/null &
  holder=$!
  until [[ -s $WORKBENCH_ROOT/connected ]]; do sleep 0.05; done
}
case_() { echo "$1: $(bash "$IDLE_STOP" report)"; }
listen 10.0.2.10 4000; listen 10.0.2.10 4001; listen 192.0.2.10 4000
sleep 0.5
case_ none
connect root 10.0.2.10 4000; case_ root; kill "$holder"; : >"$WORKBENCH_ROOT/connected"
connect coder 10.0.2.10 4001 setpriv --reuid=nobody --regid=nogroup --clear-groups --; case_ other-port
kill "$holder"; : >"$WORKBENCH_ROOT/connected"
connect coder 192.0.2.10 4000 setpriv --reuid=nobody --regid=nogroup --clear-groups --; case_ outside-the-vpc
kill "$holder"; : >"$WORKBENCH_ROOT/connected"
connect coder 10.0.2.10 4000 setpriv --reuid=nobody --regid=nogroup --clear-groups --; case_ cline
kill "$holder"
'''


def test_a_light_workbench_counts_the_coding_users_connection_to_the_team_gateway(tmp_path):
    box = Box(tmp_path)
    (box.root / "etc/workbench/deployment.env").write_text(
        "IDLE_STOP_MINUTES=60\nGATEWAY=team\nGATEWAY_NETWORK=10.0.0.0/16\n")
    result = subprocess.run(["unshare", "--net", "bash", "-c", LIGHT_CASES],
                            env={**os.environ, "WORKBENCH_ROOT": str(box.root), "IDLE_STOP": str(IDLE_STOP),
                                 "WORKBENCH_CODING_USER": "nobody"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    verdicts = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    for case in ("none", "root", "other-port", "outside-the-vpc"):
        assert verdicts[case] == IDLE, (case, verdicts[case])
    assert verdicts["cline"].startswith("idle-stop in 60 min (last use: a LiteLLM request at "), verdicts["cline"]
