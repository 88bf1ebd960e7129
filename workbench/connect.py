"""`workbench connect`: wake the instance if needed and forward its three ports at once."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from workbench.aws import Deployment, WorkbenchAws, WorkbenchError
from workbench.contract import SERVICE_PORTS, port_forward_argv, service_url

# Langfuse signs logins for the URL in its NEXTAUTH_URL, http://localhost:3000, so its local
# port cannot move; an offset applies to the other two.
FIXED_LOCAL_PORTS = {"Langfuse"}
TEAM_SERVICES = ("Langfuse", "LiteLLM")  # a team gateway has no VS Code: each person's is on their workbench
POLL_SECONDS = 5


@dataclass
class Forward:
    service: str
    remote_port: int
    local_port: int
    process: subprocess.Popen | None = None  # set by start_forwards
    log: IO[str] | None = None

    @property
    def url(self) -> str:
        return service_url(self.service, self.local_port)


def plan(port_offset: int) -> list[Forward]:
    return [
        Forward(service, port, port if service in FIXED_LOCAL_PORTS else port + port_offset)
        for service, port in SERVICE_PORTS.items()
    ]


def require_tools() -> None:
    if not shutil.which("aws"):
        raise WorkbenchError("the AWS CLI (aws) is not on PATH: install AWS CLI v2 "
                             "(https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)")
    if not shutil.which("session-manager-plugin"):
        raise WorkbenchError("the Session Manager plugin is not installed: see https://docs.aws.amazon.com/"
                             "systems-manager/latest/userguide/session-manager-working-with-install-plugin.html")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_local_ports(forwards: list[Forward]) -> None:
    for forward in forwards:
        if port_is_free(forward.local_port):
            continue
        if forward.service in FIXED_LOCAL_PORTS:
            raise WorkbenchError(
                f"local port {forward.local_port} is busy, and {forward.service} needs exactly that port (its login "
                f"only works on {forward.url}); stop what is using it and try again"
            )
        raise WorkbenchError(
            f"local port {forward.local_port} ({forward.service}) is busy; pick free ports with "
            "--port-offset, e.g. --port-offset 10000 for 14000 and 18080"
        )


def wait_until_reachable(aws: WorkbenchAws, instance_id: str, say: Callable[[str], None],
                         timeout_seconds: float = 600) -> None:
    """Starts a stopped instance and waits until SSM can reach it."""
    deadline = time.monotonic() + timeout_seconds
    started = False
    while True:
        state = aws.instance_state(instance_id)
        if state in ("terminated", "shutting-down"):
            raise WorkbenchError(f"instance {instance_id} is {state}; redeploy the workbench with `make deploy`")
        if state == "stopped" and not started:
            say(f"instance {instance_id} is stopped: starting it")
            aws.start_instance(instance_id)
            started = True
        elif state == "running":
            ping = aws.ssm_ping(instance_id)
            if ping == "Online":
                return
            say(f"instance running, waiting for its SSM agent (now: {ping})")
        else:
            say(f"instance {instance_id} is {state}, waiting")
        if time.monotonic() > deadline:
            raise WorkbenchError(f"instance {instance_id} not reachable through SSM after {timeout_seconds:.0f} s")
        time.sleep(POLL_SECONDS)


def start_forwards(aws: WorkbenchAws, instance_id: str, forwards: list[Forward],
                   remote_host: str | None = None) -> None:
    for forward in forwards:
        command = port_forward_argv(instance_id, forward.remote_port, forward.local_port, aws.region, remote_host)
        if aws.profile:
            command += ["--profile", aws.profile]
        forward.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (open while the tunnel runs)
        # Its own process group: `aws ssm start-session` runs session-manager-plugin as a child,
        # and closing a tunnel must end both.
        forward.process = subprocess.Popen(command, stdout=forward.log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)


def _signal_group(process: subprocess.Popen, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the tunnel has already ended
        os.killpg(process.pid, signal_number)


def stop_forwards(forwards: list[Forward]) -> None:
    started = [forward.process for forward in forwards if forward.process]
    for process in started:
        _signal_group(process, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


class Closing(Exception):
    """A signal asked `connect` to close its tunnels."""


def _close_on_signal(signal_number, _frame) -> None:
    raise Closing(signal.Signals(signal_number).name)


# Ctrl-C, `kill`, and a closed terminal. Set explicitly rather than relying on Python's
# KeyboardInterrupt, which never comes where SIGINT was ignored at start (a background job).
CLOSING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def hold(forwards: list[Forward]) -> None:
    """Keeps the tunnels open until a closing signal; a tunnel that dies closes the others and is reported."""
    previous = {number: signal.getsignal(number) for number in CLOSING_SIGNALS}
    try:
        for number in CLOSING_SIGNALS:
            if number == signal.SIGHUP and previous[number] == signal.SIG_IGN:
                continue  # started under nohup: keep running when the terminal goes
            signal.signal(number, _close_on_signal)
        while True:
            for forward in forwards:
                assert forward.process is not None and forward.log is not None  # started above
                if forward.process.poll() is not None:
                    forward.log.seek(0)
                    output = " ".join(forward.log.read().split())[-300:]
                    raise WorkbenchError(f"the {forward.service} port forward ended "
                                         f"(exit {forward.process.returncode}): {output or 'no output'}")
            time.sleep(POLL_SECONDS / 10)
    except Closing:
        pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        stop_forwards(forwards)


def connect_team(aws: WorkbenchAws, access_instance_id: str, gateway_host: str, port_offset: int,
                 say: Callable[[str], None]) -> None:
    """`workbench team connect`: Langfuse and LiteLLM of a team gateway, through its access host."""
    require_tools()
    forwards = [forward for forward in plan(port_offset) if forward.service in TEAM_SERVICES]
    check_local_ports(forwards)
    wait_until_reachable(aws, access_instance_id, say)
    start_forwards(aws, access_instance_id, forwards, remote_host=gateway_host)
    say(f"team gateway {gateway_host} connected; Ctrl-C closes both:")
    for forward in forwards:
        say(f"  {forward.service:<9} {forward.url}")
    hold(forwards)
    say("port forwards closed")


def connect(aws: WorkbenchAws, deployment: Deployment, port_offset: int, say: Callable[[str], None]) -> None:
    require_tools()
    # A light workbench serves VS Code only; its Langfuse and LiteLLM are the team's (`workbench team connect`).
    forwards = [forward for forward in plan(port_offset)
                if deployment.team_gateway is None or forward.service == "VS Code"]
    check_local_ports(forwards)
    wait_until_reachable(aws, deployment.instance_id, say)
    start_forwards(aws, deployment.instance_id, forwards)
    say(f"workbench {deployment.name} ({deployment.region}) connected; Ctrl-C closes "
        + ("all three:" if len(forwards) == 3 else "it:"))
    for forward in forwards:
        say(f"  {forward.service:<9} {forward.url}")
    hold(forwards)
    say("port forwards closed")
