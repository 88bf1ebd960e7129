"""The metadata firewall (`workbench-boot --firewall`) with the real iptables, on a model of the box.

Three network namespaces stand in for the box: `host` (where the coding user's shell and
LiteLLM's published port are), `container` (a Docker container: its traffic is forwarded
by the host, through DOCKER-USER) and `metadata` (the instance metadata service at
169.254.169.254 and fd00:ec2::254, one routed hop away as on EC2, plus an "internet" server
on 443). The coding user is `nobody`: iptables' owner match needs a real second user, and
so does `runuser`, so this test needs real root (which CI is).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOT_SCRIPT = ROOT / "userdata" / "boot.sh"
CODING_USER = "nobody"
ALLOWED_CONTAINER = "172.29.0.10"  # LiteLLM's address on the shared network (assets/litellm/compose.yaml)
CREDENTIALS_HOST = "169.254.170.2"  # root's endpoint of the services role (assets/systemd/workbench-service-credentials.service)
OTHER_CONTAINER = "172.29.0.99"  # any other container
INTERNET = "10.99.0.2"

# http.server's own server looks its address up in DNS when it binds (getfqdn), which takes
# seconds in a namespace without DNS; this one answers every GET with 200 "ok" and nothing else.
HTTP_SERVER = """
import http.server, socket, socketserver, sys
class Server(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    allow_reuse_address = True
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
Server((sys.argv[1], int(sys.argv[2])), Ok).serve_forever()
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a second real user (CI runs as root)")


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name
        self.holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        deadline = time.monotonic() + 5
        while Path(f"/proc/{self.holder.pid}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline, f"unshare did not create the {name} namespace"
            time.sleep(0.02)
        self.sh("ip link set lo up")

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", "--target", str(self.holder.pid), "--net", *argv]

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), capture_output=True, text=True, timeout=60, **kwargs)

    def sh(self, script: str) -> str:
        result = self.run(["sh", "-ec", script])
        assert result.returncode == 0, f"{self.name}: {script}: {result.stderr}"
        return result.stdout

    def serve(self, address: str, port: int) -> subprocess.Popen:
        """A tiny HTTP server that answers 200 "ok", ready when this returns."""
        server = subprocess.Popen(self.command([sys.executable, "-c", HTTP_SERVER, address, str(port)]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://[{address}]:{port}/" if ":" in address else f"http://{address}:{port}/"
        deadline = time.monotonic() + 10
        while self.run(["curl", "-s", "-o", "/dev/null", "--max-time", "1", url]).returncode != 0:
            assert server.poll() is None and time.monotonic() < deadline, f"server on {url} did not start"
            time.sleep(0.1)
        return server

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def box(tmp_path):
    host, container, metadata = Namespace("host"), Namespace("container"), Namespace("metadata")
    servers = []
    try:
        host.sh(f"""
            ip link add to-metadata type veth peer name eth0 netns {metadata.holder.pid}
            ip link add br-workbench type veth peer name eth0 netns {container.holder.pid}
            ip addr add 10.99.0.1/30 dev to-metadata; ip -6 addr add fd00:99::1/64 dev to-metadata nodad
            ip addr add 172.29.0.1/24 dev br-workbench; ip -6 addr add fd00:29::1/64 dev br-workbench nodad
            ip link set to-metadata up; ip link set br-workbench up
            ip route add 169.254.169.254/32 via 10.99.0.2
            ip -6 route add fd00:ec2::254/128 via fd00:99::2
            sysctl -qw net.ipv4.ip_forward=1
        """)
        metadata.sh("""
            ip addr add 10.99.0.2/30 dev eth0; ip addr add 169.254.169.254/32 dev eth0
            ip -6 addr add fd00:99::2/64 dev eth0 nodad; ip -6 addr add fd00:ec2::254/128 dev eth0 nodad
            ip link set eth0 up
            ip route add default via 10.99.0.1; ip -6 route add default via fd00:99::1
        """)
        container.sh(f"""
            ip addr add {ALLOWED_CONTAINER}/24 dev eth0; ip addr add {OTHER_CONTAINER}/24 dev eth0
            ip -6 addr add fd00:29::2/64 dev eth0 nodad
            ip link set eth0 up; ip route add default via 172.29.0.1
        """)
        servers += [metadata.serve("169.254.169.254", 80), metadata.serve("fd00:ec2::254", 80),
                    metadata.serve(INTERNET, 443), host.serve("127.0.0.1", 4000)]
        sandbox = tmp_path
        (sandbox / "etc/workbench").mkdir(parents=True)
        (sandbox / "etc/workbench/deployment.env").write_text("WORKBENCH_NAME=alice\n")
        yield host, container, sandbox
    finally:
        for server in servers:
            server.kill()
        for namespace in (host, container, metadata):
            namespace.close()


def firewall(host: Namespace, sandbox: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "WORKBENCH_ROOT": str(sandbox), "WORKBENCH_CODING_USER": CODING_USER}
    return subprocess.run(host.command(["bash", str(BOOT_SCRIPT), "--firewall"]), env=env,
                          capture_output=True, text=True, timeout=60)


def reaches(namespace: Namespace, url: str, *, user: str | None = None, source: str | None = None) -> bool:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", url]
    if source:
        argv[1:1] = ["--interface", source]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    result = namespace.run(argv)
    return result.returncode == 0 and result.stdout == "200"


def test_the_coding_user_and_other_containers_lose_the_metadata_service_and_keep_the_rest(box):
    host, container, sandbox = box
    # Without the firewall, anyone on the box reaches it: the model is open as EC2 is.
    assert reaches(host, "http://169.254.169.254/", user=CODING_USER)
    assert reaches(container, "http://169.254.169.254/", source=OTHER_CONTAINER)
    result = firewall(host, sandbox)
    assert result.returncode == 0, result.stderr
    # The coding user: no instance metadata, on either protocol; LiteLLM and the internet stay.
    assert not reaches(host, "http://169.254.169.254/", user=CODING_USER)
    assert not reaches(host, "http://[fd00:ec2::254]/", user=CODING_USER)
    assert reaches(host, "http://127.0.0.1:4000/", user=CODING_USER)
    assert reaches(host, f"http://{INTERNET}:443/", user=CODING_USER)
    # root (the boot, the SSM agent) keeps it.
    assert reaches(host, "http://169.254.169.254/") and reaches(host, "http://[fd00:ec2::254]/")
    # Containers: none reaches the instance role, not even LiteLLM's address; the internet stays open.
    assert not reaches(container, "http://169.254.169.254/", source=ALLOWED_CONTAINER)
    assert not reaches(container, "http://169.254.169.254/", source=OTHER_CONTAINER)
    assert reaches(container, f"http://{INTERNET}:443/", source=OTHER_CONTAINER)


def test_only_the_containers_that_use_aws_reach_the_credentials_endpoint(box):
    """The endpoint listens on the host (169.254.170.2 on its loopback, port 80): containers reach
    it through their bridge's gateway, LiteLLM's and Langfuse's addresses only; the coding user never."""
    host, container, sandbox = box
    host.sh(f"ip address replace {CREDENTIALS_HOST}/32 dev lo")
    endpoint = host.serve(CREDENTIALS_HOST, 80)
    try:
        assert reaches(container, f"http://{CREDENTIALS_HOST}/", source=OTHER_CONTAINER)  # before the firewall
        assert reaches(host, f"http://{CREDENTIALS_HOST}/", user=CODING_USER)
        assert firewall(host, sandbox).returncode == 0
        assert reaches(container, f"http://{CREDENTIALS_HOST}/", source=ALLOWED_CONTAINER)
        assert not reaches(container, f"http://{CREDENTIALS_HOST}/", source=OTHER_CONTAINER)
        assert not reaches(host, f"http://{CREDENTIALS_HOST}/", user=CODING_USER)
        assert reaches(host, f"http://{CREDENTIALS_HOST}/")  # root
    finally:
        endpoint.kill()


BIND = """
import socket, sys
with socket.socket() as listener:
    try:
        listener.bind(("127.0.0.1", int(sys.argv[1])))
    except PermissionError:
        print("refused")
    else:
        print("bound")
"""


def binds(namespace: Namespace, port: int, *, user: str | None = None) -> bool:
    argv = ["/usr/bin/python3", "-c", BIND, str(port)]  # one the coding user may run
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    result = namespace.run(argv)
    answer = result.stdout.strip()
    assert answer in ("bound", "refused"), result.stderr
    return answer == "bound"


def test_the_coding_user_cannot_listen_where_the_tunnels_lead(box):
    # While a container is down (every boot until compose starts it, a restart, an OOM kill),
    # its published port is free: a listener of the coding user's there would receive the keys
    # of the boot's calls and the operator's browser traffic through the SSM tunnel.
    host, _, sandbox = box
    assert binds(host, 3000, user=CODING_USER)  # as on a stock kernel, before the firewall
    assert firewall(host, sandbox).returncode == 0
    for port in (3000, 3030, 4000):  # Langfuse web, its worker, LiteLLM (the model's 4000 is taken)
        assert not binds(host, port, user=CODING_USER), port
    assert binds(host, 3000) and binds(host, 3030)  # root (Docker's proxy) still can
    for port in (8080, 5173, 8000):  # code-server and the coding user's own servers
        assert binds(host, port, user=CODING_USER), port


def test_the_coding_user_reaches_no_container_address(box):
    # Postgres, ClickHouse and Redis need only their passwords; their networks are the
    # containers' own. LiteLLM stays reachable through its published port on localhost.
    host, container, sandbox = box
    database = container.serve(OTHER_CONTAINER, 5432)
    try:
        assert reaches(host, f"http://{OTHER_CONTAINER}:5432/", user=CODING_USER)
        assert firewall(host, sandbox).returncode == 0
        assert not reaches(host, f"http://{OTHER_CONTAINER}:5432/", user=CODING_USER)
        assert reaches(host, f"http://{OTHER_CONTAINER}:5432/")  # root: the boot's health checks
        assert reaches(host, "http://127.0.0.1:4000/", user=CODING_USER)
    finally:
        database.kill()


def test_the_coding_user_reaches_no_container_over_ipv6_either(box):
    # Docker 26+ gives containers IPv6 link-local addresses even on IPv4-only networks (moby#47062),
    # and Postgres, Redis and ClickHouse listen on ::. The bridges are refused by interface.
    host, container, sandbox = box
    database = container.serve("fd00:29::2", 5432)
    try:
        assert reaches(host, "http://[fd00:29::2]:5432/", user=CODING_USER)
        assert firewall(host, sandbox).returncode == 0
        assert not reaches(host, "http://[fd00:29::2]:5432/", user=CODING_USER)
        assert reaches(host, "http://[fd00:29::2]:5432/")
    finally:
        database.kill()


def test_running_it_again_changes_nothing(box):
    host, _, sandbox = box
    save = lambda: host.sh("iptables-save -t filter | grep -v '^#'; ip6tables-save -t filter | grep -v '^#'")  # noqa: E731
    assert firewall(host, sandbox).returncode == 0
    before = save()
    assert firewall(host, sandbox).returncode == 0
    assert save() == before
    for jump in ("-A OUTPUT -j WORKBENCH-CODING-USER", "-A FORWARD -j DOCKER-USER", "-A DOCKER-USER -j WORKBENCH-METADATA",
                 "-A INPUT -j WORKBENCH-CREDENTIALS"):
        assert before.count(jump + "\n") == (2 if "OUTPUT" in jump else 1), jump  # OUTPUT: once per protocol
