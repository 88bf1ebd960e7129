"""The real Cline CLI running a task through the real LiteLLM proxy, offline, as on the box.

Run inside a network namespace that has only loopback (`unshare --net`, as root):
`python -m tools.cline_scenario OUTDIR`. It brings up loopback, sends every connection that is
not for 127.0.0.0/8 (and every DNS query) to recorders that refuse it, starts the proxy with the
shipped config and the boot's keys (tools/gateway.py), seeds Cline with the boot's own
seed_cline.py under a throwaway HOME, runs Cline's task, then a second Cline run with a key over
its daily budget, and writes what happened to OUTDIR/result.json: Cline's requests to LiteLLM
(recorded by a relay in front of it), the fake Bedrock's and the fake Langfuse's, Cline's output
and every attempt to leave. Cline's requests are also written one per file under
OUTDIR/cline-requests, for review, and the task's chat requests under OUTDIR/cline-capture in the
form the gateway benchmark replays (its copy: benchmarks/cline-requests). The assertions live in
tests/assets/test_cline_acceptance.py.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from tools.gateway import ROOT, FakeAwsServices, converse_stream, key_request, running_proxy, stored_keys
from workbench import bundle, settings
from workbench.secrets import BY_KEY, derive

PROGRAMS = ROOT / "tests" / "programs" / "node_modules"
NODE = PROGRAMS / "node" / "bin" / "node"  # the Node.js 22 of tests/programs (Cline wants >= 20)
CLINE = PROGRAMS / "cline" / "dist" / "cli.mjs"
SEED_CLINE = ROOT / "assets" / "boot" / "seed_cline.py"
TEST_SEED = "T" * 64  # the workbench secret's seed, for this test only
WORKBENCH_NAME = "alice"  # not the default name, so that a user.id of "default" cannot pass for it

TASK = "Create a file hello.txt in the workspace that contains the word hello."
WORKSPACE_FILE, WORKSPACE_TEXT = "hello.txt", "hello"
# What the scripted model answers, in Cline's tool syntax at CLI 2.18.0 / extension 3.89.2: tools
# are XML elements in the answer's text, one element per parameter (the GENERIC tool specs in
# src/core/prompts/system-prompt/tools/execute_command.ts and attempt_completion.ts, parsed by
# src/core/assistant-message/parse-assistant-message.ts; the same blobs at tags v2.18.0-cli and
# v3.89.2 of cline/cline, where they sit under apps/vscode/). Turn 1 runs a command, turn 2
# (after Cline has sent the command's output back) completes the task.
RUN_COMMAND = (
    "I will write the file with a shell command.\n\n"
    "<execute_command>\n"
    f"<command>echo {WORKSPACE_TEXT} > {WORKSPACE_FILE}</command>\n"
    "<requires_approval>false</requires_approval>\n"
    "</execute_command>"
)
COMPLETE = (
    "<attempt_completion>\n"
    f"<result>{WORKSPACE_FILE} now contains {WORKSPACE_TEXT}.</result>\n"
    "</attempt_completion>"
)
SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h: where a REDIRECTed connection was going
# What differs between two runs of the same task in Cline's requests, each replaced by its name
# when a run is compared with the capture: the task's session id (a new ULID per task), the wall
# clock in the environment details, and two facts about the machine in the system prompt and the
# first turn (the kernel release, the programs found on PATH). The run's directory is the third
# kind (workspace and home are under it); the capture names its own.
VOLATILE = (
    ("SESSION", re.compile(r'(?<="litellm_session_id": ")cline-[0-9A-HJKMNP-TV-Z]{26}(?=")')),
    ("TIME", re.compile(r"(?<=# Current Time\\n)[^\\]*(?=\\n)")),
    ("OS", re.compile(r"(?<=Operating System: )[^\\]*(?=\\n)")),
    ("CLI_TOOLS", re.compile(r"(?<=may be useful if needed to accomplish the task: )[^\\]*(?=\\n)")),
)


def stream_chunks(text: str) -> list[str]:
    """The answer streamed line by line, as a model's deltas arrive (Cline parses partial XML)."""
    return [line + "\n" for line in text.split("\n")]


class ScriptedBedrock(FakeAwsServices):
    """The fake Bedrock of tools/gateway.py, whose ConverseStream answers follow a Cline task.

    Which answer is due is read from the request itself: no assistant turn yet means the first
    turn (run the command), one means the second (complete). Its other answers are the parent's.
    """

    def do_POST(self):
        if not self.path.endswith("/converse-stream"):
            return super().do_POST()
        self.record()
        request = json.loads(self.server.requests[-1][2])
        turns = sum(1 for message in request.get("messages", []) if message.get("role") == "assistant")
        payload = converse_stream(stream_chunks(RUN_COMMAND if turns == 0 else COMPLETE))
        self.send_response(200)
        self.send_header("content-type", "application/vnd.amazon.eventstream")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class Relay(BaseHTTPRequestHandler):
    """Cline's LiteLLM URL: passes each request to the proxy and records it with the answer's status."""

    protocol_version = "HTTP/1.1"

    def relay(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        started = time.monotonic()
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body or None, headers=headers)
        response = upstream.getresponse()
        answer = response.read()  # whole, then sent on: Cline's SSE parser reads it the same way
        upstream.close()
        self.server.records.append({
            "method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode(errors="replace"), "status": response.status,
            "seconds": round(time.monotonic() - started, 3), "answer": answer.decode(errors="replace")[:20000],
        })
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = relay

    def log_message(self, *args):
        pass


class RefusingHttpProxy(BaseHTTPRequestHandler):
    """HTTP_PROXY/HTTPS_PROXY for Cline: records each request for elsewhere and refuses it."""

    def refuse(self):
        self.server.attempts.append({"via": "http proxy", "method": self.command, "target": self.path})
        self.send_error(403, "the test allows no connection outside 127.0.0.1")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_CONNECT = refuse

    def log_message(self, *args):
        pass


def serve(handler, **attributes) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def record_direct_connections(attempts: list) -> tuple[int, int]:
    """A TCP listener for connections redirected from any address but loopback (iptables REDIRECT
    keeps the original destination: SO_ORIGINAL_DST), and a DNS listener that answers REFUSED.
    Both record and refuse; returns their ports."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))

    def accept():
        while True:
            connection, _ = tcp.accept()
            original = connection.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, address = struct.unpack("!2xH4s8x", original)
            attempts.append({"via": "direct tcp", "target": f"{socket.inet_ntoa(address)}:{port}"})
            connection.close()

    def answer_dns():
        while True:
            query, sender = udp.recvfrom(4096)
            labels, position = [], 12
            while position < len(query) and query[position]:
                labels.append(query[position + 1:position + 1 + query[position]].decode(errors="replace"))
                position += 1 + query[position]
            attempts.append({"via": "dns", "target": ".".join(labels)})
            # Same id and question, QR and RA set, RCODE 5 (REFUSED): the resolver gives up at once.
            udp.sendto(query[:2] + b"\x81\x85" + query[4:], sender)

    for target in (accept, answer_dns):
        threading.Thread(target=target, daemon=True).start()
    return tcp.getsockname()[1], udp.getsockname()[1]


def isolate(tcp_port: int, dns_port: int) -> None:
    """Inside the new namespace: loopback up, everything else to the recorders."""
    commands = [
        ["ip", "link", "set", "lo", "up"],
        ["ip", "route", "add", "default", "dev", "lo"],  # so that a connect elsewhere reaches the nat table
        ["iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "53", "-j", "REDIRECT",
         "--to-ports", str(dns_port)],
        ["iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "!", "-d", "127.0.0.0/8", "-j", "REDIRECT",
         "--to-ports", str(tcp_port)],
    ]
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)


def check_the_recorders(attempts: list, http_proxy_port: int) -> list:
    """One attempt of each kind (a connection elsewhere, a DNS query, a request through HTTP_PROXY):
    what the recorders saw of them, taken out of the list that must stay empty."""
    with socket.socket() as elsewhere:
        elsewhere.settimeout(10)
        with contextlib.suppress(OSError):
            elsewhere.connect(("192.0.2.1", 443))  # TEST-NET-1
            elsewhere.recv(1)
    with contextlib.suppress(OSError):
        socket.getaddrinfo("recorder-check.example", 443)
    through_proxy = http.client.HTTPConnection("127.0.0.1", http_proxy_port, timeout=10)
    through_proxy.request("GET", "http://recorder-check.example/")
    through_proxy.getresponse().read()
    deadline = time.monotonic() + 10
    while len({attempt["via"] for attempt in attempts}) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    seen = list(attempts)
    attempts.clear()
    return seen


def run_cline(home: Path, workspace: Path, proxy_url: str, outdir: Path, name: str) -> dict:
    environment = {
        "HOME": str(home), "PATH": f"{NODE.parent}:/usr/bin:/bin", "CLINE_NO_AUTO_UPDATE": "1",
        "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url, "http_proxy": proxy_url, "https_proxy": proxy_url,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }
    started = time.monotonic()
    try:
        finished = subprocess.run(
            [str(NODE), str(CLINE), "--json", "-y", "-t", "90", "--max-consecutive-mistakes", "2", TASK],
            cwd=workspace, env=environment, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        returncode, stdout, stderr = finished.returncode, finished.stdout, finished.stderr
    except subprocess.TimeoutExpired as expired:
        returncode, stdout, stderr = "timeout", expired.stdout or "", expired.stderr or ""
        stdout, stderr = (s.decode(errors="replace") if isinstance(s, bytes) else s for s in (stdout, stderr))
    (outdir / f"{name}.stdout").write_text(stdout)
    (outdir / f"{name}.stderr").write_text(stderr)
    messages = []
    for line in stdout.splitlines():
        with contextlib.suppress(ValueError):
            messages.append(json.loads(line))
    return {"returncode": returncode, "seconds": round(time.monotonic() - started, 1), "messages": messages,
            "stderr": stderr[-4000:]}


def replayable(record: dict, outdir: Path) -> dict:
    """One request of Cline's as the benchmark replays it and the capture keeps it: verbatim, with
    the run's directory so that comparable() can tell it from the rest."""
    return {"captured_by": "tools/cline_scenario.py", "outdir": str(outdir), "method": record["method"],
            "path": record["path"], "body": json.loads(record["body"])}


def comparable(request: dict) -> str:
    """A replayable request as JSON text with every VOLATILE part and its directory replaced by a name."""
    text = json.dumps({key: request[key] for key in ("method", "path", "body")}, sort_keys=True)
    text = text.replace(request["outdir"], "{OUTDIR}")
    for name, pattern in VOLATILE:
        text = pattern.sub("{" + name + "}", text)
    return text


def span_attributes(body: bytes) -> list[dict]:
    """Every span of an OTLP/protobuf export, as {name, attributes}."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    export = ExportTraceServiceRequest.FromString(body)
    return [{"name": span.name, **{a.key: a.value.string_value for a in span.attributes}}
            for resource in export.resource_spans for scope in resource.scope_spans for span in scope.spans]


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    attempts: list = []
    isolate(*record_direct_connections(attempts))
    egress = serve(RefusingHttpProxy, attempts=attempts)
    result: dict = {"recorders_self_check": check_the_recorders(attempts, egress.server_port)}

    workbench = settings.load(overrides={"name": WORKBENCH_NAME})
    deployment = workbench.key_request_environment()  # as deployment.env carries it
    cline_key = derive(TEST_SEED, BY_KEY["litellm-cline-key"])
    spent_key = derive("S" * 64, BY_KEY["litellm-cline-key"])  # a second Cline key, for the spent day
    spent = key_request("cline", workbench.name, spent_key, deployment)
    # The key row's spend after a day of work: past the budget (tests/assets/litellm_key_budget.py).
    spent["spend"] = spent["max_budget"] + 0.5

    tree = bundle.render(workbench, outdir / "bundle")
    config = yaml.safe_load((tree / "litellm" / "config.yaml").read_text())
    keys = stored_keys(outdir, config, [key_request("cline", workbench.name, cline_key, deployment), spent])

    result.update({"task": TASK, "workbench_name": workbench.name, "model": workbench.cline_model,
                    "model_info": {m.name: {"context_window": m.info.context_window,
                                            "prompt_caching": m.info.prompt_caching} for m in workbench.models}})
    starting = time.monotonic()
    with running_proxy(outdir, tree, config, keys) as proxy:
        result["proxy_start_seconds"] = round(time.monotonic() - starting, 1)
        proxy.bedrock.RequestHandlerClass = ScriptedBedrock  # the fake's server, with a task's answers
        relay = serve(Relay, upstream_port=proxy.port, records=[])
        litellm_url = f"http://127.0.0.1:{relay.server_port}"
        egress_url = f"http://127.0.0.1:{egress.server_port}"

        def seeded_home(name: str, key: str) -> tuple[Path, Path]:
            home, workspace = outdir / name / "home", outdir / name / "workspace"
            workspace.mkdir(parents=True)
            seeded = subprocess.run([sys.executable, "-I", str(SEED_CLINE), workbench.versions.cline,
                                     workbench.cline_model, litellm_url], input=key, capture_output=True,
                                    text=True, check=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
            result.setdefault("seed_output", []).append(seeded.stdout)
            return home, workspace

        home, workspace = seeded_home("task", cline_key)
        start = len(relay.records)
        result["task_run"] = run_cline(home, workspace, egress_url, outdir, "task")
        result["task_run"]["requests"] = relay.records[start:]
        result["task_run"]["workspace"] = {p.name: p.read_text() for p in workspace.iterdir() if p.is_file()}

        home, workspace = seeded_home("over-budget", spent_key)
        start = len(relay.records)
        result["over_budget_run"] = run_cline(home, workspace, egress_url, outdir, "over-budget")
        result["over_budget_run"]["requests"] = relay.records[start:]
        result["over_budget_run"]["workspace"] = {p.name: p.read_text() for p in workspace.iterdir() if p.is_file()}

        # The task's spans (one per model call) reach the fake Langfuse within a few export intervals.
        calls = [json.loads(r["body"]).get("litellm_session_id") for r in result["task_run"]["requests"]
                 if r["method"] == "POST"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            spans = [span for path, _, body in list(proxy.langfuse.requests) if path.endswith("/v1/traces")
                     for span in span_attributes(body)]
            if len([s for s in spans if s["name"] == "litellm_request" and s.get("session.id") in calls]) >= len(calls):
                break
            time.sleep(0.5)
        result["langfuse_spans"] = spans
        result["bedrock_requests"] = [path for path, _, _ in proxy.bedrock.requests]
    result["attempts_to_leave"] = attempts

    requests_dir = outdir / "cline-requests"
    requests_dir.mkdir()
    for number, record in enumerate(result["task_run"]["requests"] + result["over_budget_run"]["requests"]):
        name = f"{number:02d}-{record['method']}-{urllib.parse.quote(record['path'], safe='')}.json"
        (requests_dir / name).write_text(json.dumps(record, indent=2))
    capture = outdir / "cline-capture"
    capture.mkdir()
    chats = [record for record in result["task_run"]["requests"] if record["path"].endswith("/chat/completions")]
    for number, record in enumerate(chats, 1):
        (capture / f"turn{number}.json").write_text(json.dumps(replayable(record, outdir), indent=1) + "\n")
    (outdir / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root inside `unshare --net`: it configures the namespace's loopback and iptables")
    main(Path(sys.argv[1]))
