"""Health checks and service command lines against the real programs, wherever they run here.

The stubs in tests/userdata/stubs stand in for programs that cannot run on this machine (dnf,
systemd, Docker); these tests run the ones that can, with the exact configuration, command
line and health check the box uses:

- code-server at the version pinned in workbench.yaml (npm, tests/programs) on Node.js 22:
  `workbench-boot --health` against it, and the curl stub's canned answer against its real one;
- Redis (Debian's redis-server 7.0, the image runs 7.4: the options used exist in both) with
  the compose file's command line and healthcheck, filled until it refuses writes;
- PostgreSQL's pg_isready healthcheck (Debian's PostgreSQL 15 client and server) from both
  compose files;
- the boot's data-volume phase with the real blkid (util-linux) and mkfs.xfs (xfsprogs) on a
  sparse image file standing in for the EBS device (mounting stays stubbed: it needs a loop
  device).

Servers listen on their real ports inside a private network namespace (unshare/nsenter), so
nothing on this machine's loopback can collide with them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.userdata.boot_sandbox import DATA_DEVICE, Sandbox
from workbench import bundle, settings

ROOT = Path(__file__).resolve().parents[2]
BOOT_SCRIPT = ROOT / "userdata" / "boot.sh"
STUBS = Path(__file__).resolve().parent / "stubs"
PROGRAMS = ROOT / "tests" / "programs" / "node_modules"
CODE_SERVER_ENTRY = PROGRAMS / "code-server" / "out" / "node" / "entry.js"
NODE = PROGRAMS / ".bin" / "node"


class NetworkNamespace:
    """A private network namespace with its own loopback, held open by a sleeping process."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(["unshare", "--net", "--map-root-user", "sleep", "600"])
        # unshare execs sleep only once the namespaces and the user mapping are in place.
        deadline = time.monotonic() + 5
        while Path(f"/proc/{self.holder.pid}/comm").read_text().strip() != "sleep":
            assert self.holder.poll() is None, "unshare could not create the namespaces"
            assert time.monotonic() < deadline, "unshare did not create the namespaces within 5 s"
            time.sleep(0.02)
        self.run(["ip", "link", "set", "lo", "up"], check=True)

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", "--target", str(self.holder.pid), "--net", "--user", "--preserve-credentials", *argv]

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), capture_output=True, text=True, timeout=60, **kwargs)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), **kwargs)

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def netns():
    namespace = NetworkNamespace()
    yield namespace
    namespace.close()


def wait_until(check, what: str, timeout: float = 60.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}")
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return bundle.render(settings.load(), tmp_path_factory.mktemp("bundle"))


def compose_service(tree: Path, project: str, service: str) -> dict:
    return yaml.safe_load((tree / project / "compose.yaml").read_text())["services"][service]


def compose_interpolated(text: str) -> str:
    """What Docker Compose hands the container for a string from the compose file: `$$` -> `$`."""
    return text.replace("$$", "$")


def healthcheck_shell(service: dict) -> str:
    kind, command = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    return compose_interpolated(command)


# --- code-server ------------------------------------------------------------------------------

def test_code_server_is_the_pinned_version():
    installed = json.loads((PROGRAMS / "code-server" / "package.json").read_text())["version"]
    assert installed == settings.load().versions.code_server


@pytest.fixture
def code_server(netns, tree, tmp_path):
    """The real code-server with the config the boot writes, on 127.0.0.1:8080 in the namespace."""
    home = tmp_path / "home"
    config = home / ".config" / "code-server" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text((tree / "code-server" / "config.yaml").read_text().replace(
        "{{CODE_SERVER_PASSWORD}}", "codeserverpasswordValue"))
    log = (tmp_path / "code-server.log").open("w")
    process = netns.popen([str(NODE), str(CODE_SERVER_ENTRY), "--config", str(config)],
                          env={**os.environ, "HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: netns.run(["curl", "-fsS", "http://127.0.0.1:8080/healthz"]).returncode == 0,
               "code-server answers /healthz", process=process)
    yield process
    stop(process)
    log.close()


def health_report(netns: NetworkNamespace, tmp_path: Path) -> list[str]:
    """`workbench-boot --health` with the real curl, as `workbench status` runs it on the box."""
    env_file = tmp_path / "box" / "etc/workbench/deployment.env"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("WORKBENCH_NAME=test\n")
    result = netns.run(["bash", str(BOOT_SCRIPT), "--health"],
                       env={**os.environ, "WORKBENCH_ROOT": str(tmp_path / "box")})
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_fresh_code_server_that_no_browser_opened_is_healthy_and_down_is_unhealthy(netns, code_server, tmp_path):
    answer = netns.run(["curl", "-fsS", "http://127.0.0.1:8080/healthz"]).stdout
    assert json.loads(answer) == {"status": "expired", "lastHeartbeat": 0}
    report = health_report(netns, tmp_path)
    assert "code-server healthy" in report
    # Nothing else runs in this namespace: every other service is reported, and unhealthy.
    assert [line.split()[0] for line in report] == [
        "langfuse-web", "langfuse-worker", "litellm", "litellm-langfuse-callback", "code-server",
        "langfuse-llm-connection", "coding-user-setup", "idle-stop", "cline-spend"]
    assert [line for line in report if line.endswith(" healthy")] == ["code-server healthy"]
    # No boot ran in this sandbox: no coding-user phase, no bundle (boot/idle-stop.sh, boot/litellm-keys.sh).
    assert report[-3:] == ["coding-user-setup unknown", "idle-stop unknown", "cline-spend unknown"]
    stop(code_server)
    assert "code-server unhealthy" in health_report(netns, tmp_path)


def test_the_curl_stub_answers_healthz_as_the_real_code_server_does(netns, code_server, tmp_path):
    real = netns.run(["curl", "-fsS", "http://127.0.0.1:8080/healthz"]).stdout.strip()
    stubbed = subprocess.run([str(STUBS / "curl"), "-fsS", "http://127.0.0.1:8080/healthz"],
                             env={**os.environ, "STUB_CALLS": str(tmp_path / "calls")},
                             capture_output=True, text=True, timeout=10).stdout.strip()
    assert json.loads(stubbed) == json.loads(real)


def test_the_rendered_password_logs_in_and_a_wrong_one_does_not(netns, code_server):
    def login(password: str) -> str:
        return netns.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data-urlencode",
                          f"password={password}", "http://127.0.0.1:8080/login"]).stdout
    assert login("wrong") == "200"  # the form again
    assert login("codeserverpasswordValue") == "302"


# --- Redis ------------------------------------------------------------------------------------

REDIS_PASSWORD = "redispasswordValue"

# Connects with the password, writes 8 MiB values until Redis refuses one, then checks it still
# answers. Runs inside the namespace, where Redis listens on its default port.
FILL_REDIS = r"""
import json, socket, sys
sock = socket.create_connection(("127.0.0.1", 6379), timeout=30)
reader = sock.makefile("rb")
def call(*args):
    payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    sock.sendall(payload)
    line = reader.readline()
    if line[:1] == b"$":
        size = int(line[1:])
        return reader.read(size + 2)[:-2].decode() if size >= 0 else None
    return line.decode().rstrip()
print(json.dumps({
    "auth": call(b"AUTH", sys.argv[1].encode()),
    "refused": next((r for i in range(200) if (r := call(b"SET", b"job:%d" % i, b"x" * (8 << 20))) != "+OK"), None),
    "ping": call(b"PING"),
    "memory": call(b"INFO", b"memory"),
}))
"""


def test_redis_with_the_compose_command_line_refuses_writes_when_full_and_stays_up(netns, tree, tmp_path):
    service = compose_service(tree, "langfuse", "redis")
    shell, flag, script = service["command"]
    assert (shell, flag) == ("sh", "-c")
    env_file = (tree / "env" / "redis.env").read_text().replace("{{REDIS_PASSWORD}}", REDIS_PASSWORD)
    container_env = dict(line.split("=", 1) for line in env_file.splitlines() if line and not line.startswith("#"))
    # The image's entrypoint (docker-library/redis docker-entrypoint.sh) chowns /data and
    # re-executes itself as the redis user when started as root, then execs its arguments;
    # here the test already is an ordinary process, so the stand-in only execs them.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker-entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "docker-entrypoint.sh").chmod(0o755)
    data = tmp_path / "data"  # the image's WORKDIR, where the append-only file goes
    data.mkdir()
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", **container_env}
    log = (tmp_path / "redis.log").open("w")
    server = netns.popen(["sh", "-c", compose_interpolated(script)], cwd=data, env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    healthcheck = healthcheck_shell(service)
    try:
        wait_until(lambda: netns.run(["sh", "-c", healthcheck], env=env).returncode == 0,
                   "the compose healthcheck passes", timeout=30, process=server)
        pid = _redis_pid(server)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert "redis-server" in cmdline and REDIS_PASSWORD not in cmdline
        assert REDIS_PASSWORD not in healthcheck

        result = netns.run([sys.executable, "-c", FILL_REDIS, REDIS_PASSWORD])
        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout)
        assert outcome["auth"] == "+OK"
        assert outcome["refused"].startswith("-OOM command not allowed when used memory > 'maxmemory'")
        assert outcome["ping"] == "+PONG"
        assert server.poll() is None
        assert netns.run(["sh", "-c", healthcheck], env=env).returncode == 0
        info = dict(line.split(":", 1) for line in outcome["memory"].splitlines() if ":" in line)
        assert int(info["maxmemory"]) == 256 << 20 and info["maxmemory_policy"] == "noeviction"
        resident_kib = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                                if line.startswith("VmRSS:")))
        limit_mib = int(service["mem_limit"].rstrip("m"))
        assert resident_kib < limit_mib * 1024 * 0.75, f"{resident_kib} KiB resident against a {limit_mib} MiB limit"
    finally:
        stop(server)
        log.close()


def _redis_pid(server: subprocess.Popen) -> int:
    """nsenter execs its command, and sh and the entrypoint exec theirs: one process throughout."""
    comm = Path(f"/proc/{server.pid}/comm").read_text().strip()
    assert comm == "redis-server", comm
    return server.pid


def test_a_wrong_password_fails_the_redis_healthcheck(netns, tree, tmp_path):
    service = compose_service(tree, "langfuse", "redis")
    server = netns.popen(["redis-server", "--port", "6379", "--requirepass", "right", "--save", ""],
                         cwd=tmp_path, stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: netns.run(["redis-cli", "--no-auth-warning", "-a", "right", "ping"]).stdout == "PONG\n",
                   "redis answers", process=server)
        assert netns.run(["sh", "-c", healthcheck_shell(service)], env={**os.environ, "REDISCLI_AUTH": "wrong"}
                         ).returncode != 0
        assert netns.run(["sh", "-c", healthcheck_shell(service)], env={**os.environ, "REDISCLI_AUTH": "right"}
                         ).returncode == 0
    finally:
        stop(server)


# --- PostgreSQL -------------------------------------------------------------------------------

def postgres_bin(name: str) -> Path:
    (found,) = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))[-1:]
    return found


def as_postgres_user() -> dict:
    """Popen arguments: PostgreSQL refuses to run as root, and CI runs the tests as root."""
    return {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}


def test_pg_isready_healthchecks_follow_the_server(tree, tmp_path):
    checks = {project: healthcheck_shell(compose_service(tree, project, f"{project}-postgres"))
              for project in ("langfuse", "litellm")}
    assert checks == {"langfuse": "pg_isready -U langfuse -d langfuse", "litellm": "pg_isready -U litellm -d litellm"}
    # Outside pytest's per-user temporary directory, which the postgres user cannot enter.
    cluster = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(cluster, "postgres", "postgres")
    # The postgres image's entrypoint runs initdb with POSTGRES_USER as the superuser.
    subprocess.run([str(postgres_bin("initdb")), "-D", str(cluster / "data"), "-U", "langfuse", "--auth=trust"],
                   check=True, capture_output=True, timeout=120, **as_postgres_user())
    # Clients find the server through its socket directory (the image's /var/run/postgresql).
    env = {**os.environ, "PGHOST": str(cluster)}

    def healthy(project: str) -> bool:
        return subprocess.run(["sh", "-c", checks[project]], env=env, capture_output=True, timeout=30).returncode == 0

    assert not healthy("langfuse") and not healthy("litellm")
    server = subprocess.Popen([str(postgres_bin("postgres")), "-D", str(cluster / "data"), "-k", str(cluster),
                               "-c", "listen_addresses="],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **as_postgres_user())
    try:
        wait_until(lambda: healthy("langfuse"), "pg_isready reports the server ready", process=server)
        assert healthy("litellm")
        server.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        server.wait(timeout=30)
        assert not healthy("langfuse")
    finally:
        stop(server)
        shutil.rmtree(cluster, ignore_errors=True)


# XFS's smallest file system; sparse, so it takes only what mkfs.xfs writes (its 64 MiB log).
VOLUME_BYTES = 320 * 2**20


def volume_box(root: Path, bundle_zip: Path) -> tuple[Sandbox, Path]:
    """The boot sandbox with the real blkid and mkfs.xfs ahead of the stubs, and a blank device."""
    box = Sandbox(root, bundle_zip)
    real = root / "real-bin"
    real.mkdir()
    for program in ("blkid", "mkfs.xfs"):
        found = shutil.which(program, path="/usr/sbin:/sbin:/usr/bin:/bin")
        assert found, f"{program} is missing: make test installs it (TEST_COMMANDS)"
        (real / program).symlink_to(found)
    box.env["PATH"] = f"{real}:{box.env['PATH']}"
    device = root / "dev/disk/by-id" / DATA_DEVICE
    os.truncate(device, VOLUME_BYTES)
    return box, device


def blkid(device: Path, tag: str) -> str:
    return subprocess.run(["blkid", "-o", "value", "-s", tag, str(device)], capture_output=True, text=True).stdout.strip()


def test_the_data_volume_is_formatted_once_by_the_real_mkfs_xfs_and_found_by_the_real_blkid(tmp_path, bundle_zip):
    box, device = volume_box(tmp_path, bundle_zip)
    first = box.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert (blkid(device, "TYPE"), blkid(device, "LABEL")) == ("xfs", "workbench")
    uuid = blkid(device, "UUID")
    fstab = (tmp_path / "etc/fstab").read_text().splitlines()
    assert fstab[0] == f"UUID={uuid} {tmp_path}/var/lib/workbench-data xfs defaults,nofail 0 2"
    second = box.run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert blkid(device, "UUID") == uuid  # never formatted again
    assert [s["Status"] for s in box.signals] == ["SUCCESS"]


def test_a_volume_with_another_file_system_is_left_untouched_with_the_real_blkid(tmp_path, bundle_zip):
    box, device = volume_box(tmp_path, bundle_zip)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(device)], check=True, env={**os.environ, "PATH": "/usr/sbin:/sbin:"
                                                                             + os.environ["PATH"]})
    uuid = blkid(device, "UUID")
    assert box.run().returncode != 0
    (signal_,) = box.signals
    assert signal_["Reason"] == ("phase data-volume: the data volume vol-0123456789abcdef0 holds a file system of "
                                 "type ext4, not the workbench's xfs; leaving it untouched")
    assert (blkid(device, "TYPE"), blkid(device, "UUID")) == ("ext4", uuid)
