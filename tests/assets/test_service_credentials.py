"""Root's credentials endpoint for the containers (assets/boot/service_credentials.py), run for real.

Everything here is the real program: the server itself, the AWS CLI it calls AssumeRole with,
moto's STS standing in for AWS (its answers are moto 5.2.5's own), the botocore in .venv
(LiteLLM's SDK) and the AWS SDK for JavaScript v3 at the versions Langfuse pins
(@aws-sdk/credential-provider-node 3.972.66 and @aws-sdk/client-sts 3.1074.0 in langfuse's
pnpm-lock.yaml). The credentials an SDK ends up with are proven to be the services role's by
asking STS who they belong to (GetCallerIdentity), which answers with the assumed role's ARN.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import botocore.session
import pytest
import yaml

from workbench import bundle, settings

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "assets" / "boot" / "service_credentials.py"
UNIT = REPO / "assets" / "systemd" / "workbench-service-credentials.service"
AWS_CLI = shutil.which("aws")
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
# @aws-sdk/* as Langfuse pins them: tests/programs/node_modules (make test), or a directory given here.
AWS_SDK_JS = Path(os.environ.get("WORKBENCH_AWS_SDK_JS_DIR", REPO / "tests" / "programs")) / "node_modules"
ACCOUNT = "123456789012"  # moto's account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ai-workbench-default-services"
SERVICES_IDENTITY = f"arn:aws:sts::{ACCOUNT}:assumed-role/ai-workbench-default-services/workbench-services"
TOKEN_GROUP = 2990  # the containers' group_add
CODING_USER_UID = 2000
LANGFUSE_UID = 1001  # langfuse/langfuse's web/Dockerfile and worker/Dockerfile: adduser --uid 1001
CREDENTIALS_HOST = "169.254.170.2"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the token's owner, group and mode need root"),
    pytest.mark.skipif(AWS_CLI is None, reason="the server calls AssumeRole through the AWS CLI"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(host: str, port: int, process: subprocess.Popen, command: list[str] | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        probe = ["bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"]
        if subprocess.run([*(command or []), *probe], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


@pytest.fixture
def moto_sts() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, process)
        yield f"http://localhost:{port}"
    finally:
        stop(process)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """Parents every user may traverse, so only the token directory's own modes decide who reads it."""
    base = Path(tempfile.mkdtemp(prefix="service-credentials-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def instance_role_environment(sts_url: str) -> dict[str, str]:
    """What the AWS CLI signs with on the box is the instance role; here fixed keys moto accepts."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environment.update(AWS_ENDPOINT_URL=sts_url, AWS_ACCESS_KEY_ID="instance-role", AWS_SECRET_ACCESS_KEY="secret",
                       AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return environment


class Server:
    def __init__(self, sts_url: str, token_dir: Path, *, listen: str, session_seconds: int,
                 renew_before_seconds: int, namespace: list[str] | None = None) -> None:
        self.url = f"http://{listen}/services-role"
        self.token_file = token_dir / "token"
        self.log = token_dir.parent / "server.log"
        command = [*(namespace or []), sys.executable, "-I", str(SERVER), "--role-arn", ROLE_ARN,
                   "--region", "us-east-1", "--listen", listen, "--token-dir", str(token_dir),
                   "--group", str(TOKEN_GROUP), "--session-seconds", str(session_seconds),
                   "--renew-before-seconds", str(renew_before_seconds)]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, env=instance_role_environment(sts_url), stdout=log, stderr=log)
        host, port = listen.rsplit(":", 1)
        wait_for_port(host, int(port), self.process, namespace)

    def sessions_assumed(self) -> int:
        return self.log.read_text().count("assumed the services role")


@pytest.fixture
def start_server(moto_sts: str, shared_dir: Path) -> Iterator:
    servers: list[Server] = []

    def start(*, session_seconds: int = 3600, renew_before_seconds: int = 1200) -> Server:
        server = Server(moto_sts, shared_dir / "token-dir", listen=f"127.0.0.1:{free_port()}",
                        session_seconds=session_seconds, renew_before_seconds=renew_before_seconds)
        servers.append(server)
        # Until its first AssumeRole the server answers 503 (which the SDKs retry).
        wait_until(lambda: server.sessions_assumed() >= 1)
        return server

    yield start
    for server in servers:
        stop(server.process)


def sdk_environment(server: Server, token_file: Path) -> dict[str, str]:
    """A container's AWS environment (assets/*/compose.yaml): the endpoint and the token file, nothing else."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environment.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=server.url,
                       AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
                       AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                       # Nothing falls back to a metadata service: only the endpoint can answer.
                       AWS_EC2_METADATA_DISABLED="true")
    return environment


def botocore_session(monkeypatch, server: Server, token_file: Path) -> botocore.session.Session:
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in sdk_environment(server, token_file).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return botocore.session.Session()


def identity(session: botocore.session.Session, sts_url: str) -> str:
    return session.create_client("sts", region_name="us-east-1", endpoint_url=sts_url).get_caller_identity()["Arn"]


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": token} if token is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_botocore_gets_the_services_role_and_the_server_reuses_a_fresh_session(start_server, moto_sts, monkeypatch):
    server = start_server(session_seconds=3600)
    session = botocore_session(monkeypatch, server, server.token_file)
    credentials = session.get_credentials()
    assert credentials.method == "container-role"  # botocore's ContainerProvider
    assert identity(session, moto_sts) == SERVICES_IDENTITY
    first = credentials.get_frozen_credentials().access_key
    assert credentials.get_frozen_credentials().access_key == first  # an hour left: botocore keeps it
    status, body = get(server.url, server.token_file.read_text())
    assert status == 200 and json.loads(body)["AccessKeyId"] == first  # and the server hands out the same
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", json.loads(body)["Expiration"])
    assert server.sessions_assumed() == 1  # an hour left: the server keeps it too


# STS's shortest session (15 minutes) is inside botocore's 15-minute advisory refresh, so botocore
# asks the endpoint on every read; renewing 10 seconds into it makes the server's next session
# come within the test.
SHORT = {"session_seconds": 900, "renew_before_seconds": 890}


def test_botocore_gets_the_new_session_the_server_renewed_before_expiry(start_server, moto_sts, monkeypatch):
    server = start_server(**SHORT)
    session = botocore_session(monkeypatch, server, server.token_file)
    credentials = session.get_credentials()
    first = credentials.get_frozen_credentials().access_key
    wait_until(lambda: server.sessions_assumed() >= 2)
    assert credentials.get_frozen_credentials().access_key != first  # the same provider, no new session object
    assert identity(session, moto_sts) == SERVICES_IDENTITY


def test_the_endpoint_answers_within_botocores_two_seconds_while_it_renews(start_server):
    """AssumeRole (through the CLI) takes longer than botocore waits: renewals must not be in a request."""
    server = start_server(**SHORT)
    token = server.token_file.read_text()
    wait_until(lambda: get(server.url, token)[0] == 200)
    slowest = 0.0
    for _ in range(40):
        started = time.monotonic()
        assert get(server.url, token)[0] == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.5)
    assert server.sessions_assumed() >= 2  # a renewal happened during the 20 seconds
    assert slowest < 0.5


def test_without_the_token_there_are_no_credentials(start_server, monkeypatch, shared_dir):
    server = start_server()
    assert get(server.url)[0] == 401
    assert get(server.url, "wrong-token")[0] == 401
    assert get(server.url, server.token_file.read_text() + "x")[0] == 401
    status, body = get(server.url.replace("/services-role", "/"), server.token_file.read_text())
    assert status == 404 and "AccessKey" not in body
    wrong = shared_dir / "wrong-token"
    wrong.write_text("not-the-token")
    with pytest.raises(botocore.exceptions.CredentialRetrievalError, match="401"):
        botocore_session(monkeypatch, server, wrong).get_credentials()
    assert server.token_file.read_text() not in server.log.read_text()  # the log never holds the token


def test_a_restart_replaces_the_token_and_the_sdk_reads_the_new_one(start_server, moto_sts, monkeypatch):
    """The SDKs read the token file on every request, so a server restart needs no container restart."""
    first_server = start_server()
    old_token = first_server.token_file.read_text()
    stop(first_server.process)
    server = start_server()
    assert server.token_file.read_text() != old_token
    assert get(server.url, old_token)[0] == 401
    assert identity(botocore_session(monkeypatch, server, server.token_file), moto_sts) == SERVICES_IDENTITY


def read_as(path: Path, uid: int, groups: list[int]) -> subprocess.CompletedProcess:
    group_flag = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(uid), *group_flag, "cat", str(path)],
                          capture_output=True, text=True)


def test_the_coding_user_cannot_read_the_token_and_the_containers_group_can(start_server):
    server = start_server()
    token_dir = server.token_file.parent
    assert (token_dir.stat().st_uid, token_dir.stat().st_gid, oct(token_dir.stat().st_mode & 0o777)) == (
        0, TOKEN_GROUP, "0o750")
    assert (server.token_file.stat().st_uid, server.token_file.stat().st_gid,
            oct(server.token_file.stat().st_mode & 0o777)) == (0, TOKEN_GROUP, "0o440")
    coder = read_as(server.token_file, CODING_USER_UID, [])
    assert coder.returncode != 0 and "Permission denied" in coder.stderr
    langfuse = read_as(server.token_file, LANGFUSE_UID, [TOKEN_GROUP])  # what group_add gives the container
    assert langfuse.returncode == 0 and langfuse.stdout == server.token_file.read_text()


def node_program(server: Server, sts_url: str, program: str) -> dict:
    environment = sdk_environment(server, server.token_file) | {"SDK": str(AWS_SDK_JS), "STS": sts_url}
    answer = subprocess.run(["node", "-e", program], env=environment, capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


# Langfuse's S3 client gets credentials: undefined, so the client's default provider is
# credential-provider-node's defaultProvider (StorageService.ts, packages/shared).
JS_REFRESH = """
const { defaultProvider } = require(process.env.SDK + "/@aws-sdk/credential-provider-node");
const { STSClient, GetCallerIdentityCommand } = require(process.env.SDK + "/@aws-sdk/client-sts");
(async () => {
  const provider = defaultProvider();
  const first = await provider();
  const again = await provider();
  const sts = new STSClient({ region: "us-east-1", endpoint: process.env.STS, credentials: provider });
  const identity = await sts.send(new GetCallerIdentityCommand({}));
  // The server renews 10 seconds into a 15-minute session (SHORT); wait for that.
  await new Promise((resolve) => setTimeout(resolve, 15000));
  // 11 minutes on: under the 5 minutes the SDK keeps before an expiration, so it must ask again.
  const realNow = Date.now;
  Date.now = () => realNow() + 11 * 60 * 1000;
  // memoizeChain refreshes passively: this call starts the fetch and still answers the old copy.
  const during = await provider();
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const later = await provider();
  console.log(JSON.stringify({ first: first.accessKeyId, again: again.accessKeyId, during: during.accessKeyId,
                               later: later.accessKeyId, arn: identity.Arn }));
})().catch((error) => { console.error(error); process.exit(1); });
"""


@pytest.mark.skipif(not (AWS_SDK_JS / "@aws-sdk" / "credential-provider-node").is_dir(),
                    reason=f"the AWS SDK for JavaScript at Langfuse's versions is not installed in {AWS_SDK_JS}")
def test_the_javascript_sdk_gets_the_services_role_and_a_new_session_before_expiry(start_server, moto_sts):
    versions = {name: json.loads((AWS_SDK_JS / "@aws-sdk" / name / "package.json").read_text())["version"]
                for name in ("credential-provider-node", "credential-provider-http", "client-sts")}
    assert versions == {"credential-provider-node": "3.972.66", "credential-provider-http": "3.972.59",
                        "client-sts": "3.1074.0"}
    server = start_server(**SHORT)
    seen = node_program(server, moto_sts, JS_REFRESH)
    assert seen["arn"] == SERVICES_IDENTITY
    assert seen["first"] == seen["again"] == seen["during"]  # memoised while it has more than 5 minutes left
    assert seen["later"] != seen["first"]  # asked again before it expired, and got the renewed session


def netns(name: str) -> list[str]:
    return ["ip", "netns", "exec", name]


@pytest.fixture
def host_and_container() -> Iterator[tuple[str, str]]:
    """Two network namespaces: a host owning 169.254.170.2 on its loopback, and a container whose
    default route is the host across a veth pair, as a Docker bridge network's gateway is."""
    suffix = str(os.getpid())[-5:]
    host, container = f"svccred-h{suffix}", f"svccred-c{suffix}"
    setup = [
        ["ip", "netns", "add", host], ["ip", "netns", "add", container],
        ["ip", "link", "add", f"h{suffix}", "netns", host, "type", "veth", "peer", "name", f"c{suffix}",
         "netns", container],
        [*netns(host), "ip", "link", "set", "lo", "up"], [*netns(container), "ip", "link", "set", "lo", "up"],
        [*netns(host), "ip", "address", "add", "10.231.0.1/24", "dev", f"h{suffix}"],
        [*netns(host), "ip", "link", "set", f"h{suffix}", "up"],
        [*netns(container), "ip", "address", "add", "10.231.0.2/24", "dev", f"c{suffix}"],
        [*netns(container), "ip", "link", "set", f"c{suffix}", "up"],
        [*netns(container), "ip", "route", "add", "default", "via", "10.231.0.1"],
        # What workbench-service-credentials.service's ExecStartPre does on the box.
        [*netns(host), "ip", "address", "replace", f"{CREDENTIALS_HOST}/32", "dev", "lo"],
    ]
    try:
        for command in setup:
            subprocess.run(command, check=True, capture_output=True)
        yield host, container
    finally:
        subprocess.run(["ip", "netns", "del", host], capture_output=True)
        subprocess.run(["ip", "netns", "del", container], capture_output=True)


BOTOCORE_IN_CONTAINER = """
import botocore.session, sys
session = botocore.session.Session()
print(session.create_client("sts", region_name="us-east-1", endpoint_url=sys.argv[1]).get_caller_identity()["Arn"])
"""


def test_a_container_reaches_the_endpoint_on_the_hosts_link_local_address(host_and_container, shared_dir):
    """The box's path: Langfuse's uid with the token group, in its own network namespace, asks
    http://169.254.170.2/services-role, which root serves on port 80 of the host's loopback."""
    host, container = host_and_container
    moto_port = free_port()
    moto = subprocess.Popen([*netns(host), str(MOTO_SERVER), "-H", "0.0.0.0", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        wait_for_port("127.0.0.1", moto_port, moto, netns(host))
        server = Server(f"http://localhost:{moto_port}", shared_dir / "token-dir", listen=f"{CREDENTIALS_HOST}:80",
                        session_seconds=3600, renew_before_seconds=1200, namespace=netns(host))
        wait_until(lambda: server.sessions_assumed() == 1)
        environment = sdk_environment(server, server.token_file)
        as_langfuse = ["setpriv", "--reuid", str(LANGFUSE_UID), "--regid", str(LANGFUSE_UID),
                       "--groups", str(TOKEN_GROUP)]
        answer = subprocess.run([*netns(container), *as_langfuse, sys.executable, "-c", BOTOCORE_IN_CONTAINER,
                                 f"http://10.231.0.1:{moto_port}"], env=environment, capture_output=True, text=True)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip() == SERVICES_IDENTITY
        # The same request from a container process without the group: no token, no credentials.
        as_other = ["setpriv", "--reuid", str(LANGFUSE_UID), "--regid", str(LANGFUSE_UID), "--clear-groups"]
        refused = subprocess.run([*netns(container), *as_other, sys.executable, "-c", BOTOCORE_IN_CONTAINER,
                                  f"http://10.231.0.1:{moto_port}"], env=environment, capture_output=True, text=True)
        assert refused.returncode != 0 and "Permission denied" in refused.stderr
    finally:
        if server is not None:
            stop(server.process)
        stop(moto)


BIND = """
import socket, sys
listener = socket.socket()
try:
    listener.bind((sys.argv[1], int(sys.argv[2])))
except PermissionError:
    print("refused")
else:
    print("bound")
"""


def test_the_coding_user_cannot_listen_where_the_containers_ask(host_and_container):
    """Port 80 is privileged: the coding user cannot stand in for the endpoint while it is down
    (a higher port it could take, which is why the endpoint is not there)."""
    host, _ = host_and_container

    def bind(port: int, *user: str) -> str:
        return subprocess.run([*netns(host), *user, sys.executable, "-c", BIND, CREDENTIALS_HOST, str(port)],
                              capture_output=True, text=True, check=True).stdout.strip()

    coder = ["setpriv", "--reuid", str(CODING_USER_UID), "--regid", str(CODING_USER_UID), "--clear-groups"]
    assert bind(80, *coder) == "refused"
    assert bind(80) == "bound"
    assert bind(8081, *coder) == "bound"


def test_the_unit_and_the_compose_files_agree_on_address_token_and_group(tmp_path):
    unit = UNIT.read_text()
    start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
    arguments = dict(zip(start[3::2], start[4::2], strict=True))
    assert start[:3] == ["/usr/bin/python3", "-I", "/opt/workbench/boot/service_credentials.py"]
    assert arguments["--listen"] == f"{CREDENTIALS_HOST}:80"
    assert arguments["--role-arn"] == "${SERVICES_ROLE_ARN}" and arguments["--region"] == "${AWS_REGION}"
    assert f"ExecStartPre=/usr/sbin/ip address replace {CREDENTIALS_HOST}/32 dev lo" in unit
    assert "Before=docker.service" in unit and "EnvironmentFile=/etc/workbench/deployment.env" in unit
    token_dir = arguments["--token-dir"]
    assert token_dir.startswith("/run/")  # only root creates entries there
    tree = bundle.render(settings.load(), tmp_path / "bundle")
    assert (tree / "boot" / "service_credentials.py").read_text() == SERVER.read_text()
    users = {}
    for project in ("langfuse", "litellm"):
        for name, service in yaml.safe_load((tree / project / "compose.yaml").read_text())["services"].items():
            if "AWS_CONTAINER_CREDENTIALS_FULL_URI" in service.get("environment", {}):
                users[name] = service
    assert set(users) == {"langfuse-web", "langfuse-worker", "litellm"}
    for name, service in users.items():
        assert service["environment"] == {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://{CREDENTIALS_HOST}/services-role",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": f"{token_dir}/token"}, name
        assert service["group_add"] == [arguments["--group"]], name
        assert f"{token_dir}:{token_dir}:ro" in service["volumes"], name


class CapturingBedrock:
    """Records the SigV4 Authorization header of each request and answers 400, which ends the call."""

    def __init__(self) -> None:
        seen = self.authorizations = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                seen.append(self.headers.get("Authorization", ""))
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = b'{"message": "captured"}'
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_litellm_signs_its_bedrock_calls_with_the_services_role_session(start_server, monkeypatch):
    """The real LiteLLM 1.108.7, configured as the box configures it (region, no keys), resolves its
    AWS credentials through botocore's chain to the endpoint's session."""
    import litellm

    server = start_server()
    botocore_session(monkeypatch, server, server.token_file)  # the container's AWS environment
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # assets/env/litellm.env
    served = json.loads(get(server.url, server.token_file.read_text())[1])["AccessKeyId"]
    bedrock = CapturingBedrock()
    try:
        with pytest.raises(litellm.exceptions.BadRequestError, match="captured"):
            litellm.completion(model="bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0", api_base=bedrock.url,
                               aws_region_name="us-east-1", messages=[{"role": "user", "content": "hi"}],
                               num_retries=0)
    finally:
        bedrock.server.shutdown()
    (authorization,) = bedrock.authorizations
    assert f"Credential={served}/" in authorization and "/us-east-1/bedrock/aws4_request" in authorization
