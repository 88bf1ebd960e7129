"""Root's credentials endpoint: the services role's short-lived credentials for LiteLLM and Langfuse.

The containers never reach the instance metadata service (the instance role also reads the
workbench's secret and carries the SSM agent's channels). This server, run by root
(workbench-service-credentials.service), assumes the services role with the instance role and
serves that session in the container credentials format both SDKs read:

- botocore (LiteLLM): ContainerProvider, AWS_CONTAINER_CREDENTIALS_FULL_URI plus
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, re-read on every refresh (botocore/credentials.py);
- AWS SDK for JavaScript v3 (Langfuse's S3 client, default chain): fromHttp, the same two
  variables (@aws-sdk/credential-provider-http).

Both accept plain http only from a loopback address or the link-local container hosts, among
them 169.254.170.2, where this server listens on port 80: an address root puts on the host and a
privileged port, so the coding user can neither bind it nor stand in for it. A request must
carry the token that this server writes at start into a directory only root and one group can
read; only the three containers that use AWS get that group and that directory.

Role chaining caps a session at one hour. The SDKs ask again before their copy expires (botocore
15 minutes before, the JavaScript SDK 5); the server assumes the role again, in the background,
once the session it holds has less than --renew-before-seconds left (20 minutes), so those
requests get the new session.

Amazon Linux 2023's python3 (3.9), standard library only; AssumeRole goes through the AWS CLI,
which signs with the instance role from the metadata service.
"""

from __future__ import annotations

import argparse
import datetime
import hmac
import json
import logging
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREDENTIALS_PATH = "/services-role"
TOKEN_FILE_NAME = "token"
SESSION_NAME = "workbench-services"
# Role chaining (the instance role assuming another role) allows at most one hour.
SESSION_SECONDS = 3600
# Above botocore's 15-minute advisory refresh: when an SDK asks, it gets a new session.
RENEW_BEFORE_SECONDS = 20 * 60
AWS_CLI_TIMEOUT_SECONDS = 60
RETRY_SECONDS = 10
CHECK_SECONDS = 60

Session = dict[str, str]  # AccessKeyId, SecretAccessKey, Token, Expiration (RFC 3339, UTC, "Z")

log = logging.getLogger("service-credentials")
UTC = datetime.timezone.utc  # noqa: UP017 (datetime.UTC is Python 3.11; the box runs 3.9)


def now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def rfc3339_utc(expiration: str) -> datetime.datetime:
    """The CLI prints 2026-12-02T22:48:54+00:00 (or Z); Python 3.9's fromisoformat reads no Z."""
    parsed = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"expiration {expiration!r} has no time zone")
    return parsed.astimezone(UTC)


def assume_role_with_aws_cli(role_arn: str, region: str, session_seconds: int) -> Session:
    """One AssumeRole of the services role; the AWS CLI signs it with the instance role."""
    command = ["aws", "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", SESSION_NAME,
               "--duration-seconds", str(session_seconds), "--region", region, "--output", "json"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=AWS_CLI_TIMEOUT_SECONDS,
                               stdin=subprocess.DEVNULL)
    if completed.returncode != 0:
        raise RuntimeError(f"aws sts assume-role failed ({completed.returncode}): {completed.stderr.strip()[-500:]}")
    credentials = json.loads(completed.stdout)["Credentials"]
    expiration = rfc3339_utc(credentials["Expiration"])
    # The JavaScript SDK parses Expiration as RFC 3339 in UTC with a Z (parseRfc3339DateTime).
    return {
        "AccessKeyId": credentials["AccessKeyId"],
        "SecretAccessKey": credentials["SecretAccessKey"],
        "Token": credentials["SessionToken"],
        "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class SessionHolder:
    """The current session of the services role, renewed in the background before its end.

    Never in a request: an AssumeRole through the CLI takes a second or more, and botocore gives
    the endpoint two seconds (ContainerMetadataFetcher.TIMEOUT_SECONDS).
    """

    def __init__(self, assume_role: Callable[[], Session], renew_before_seconds: int) -> None:
        self._assume_role = assume_role
        self._renew_before = datetime.timedelta(seconds=renew_before_seconds)
        self._session: Session | None = None

    def current(self) -> Session:
        session = self._session  # one read: the renewing thread swaps whole sessions
        if session is None or self._remaining(session) <= datetime.timedelta(0):
            raise LookupError("no unexpired session of the services role yet")
        return session

    def renew_forever(self) -> None:
        while True:
            session = self._session
            if session is None or self._remaining(session) < self._renew_before:
                try:
                    session = self._session = self._assume_role()
                    log.info("assumed the services role; session %s expires %s",
                             session["AccessKeyId"], session["Expiration"])
                except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as error:
                    # The current session, if any, is served until it ends; AWS may answer later.
                    log.error("could not assume the services role, trying again in %ss: %s", RETRY_SECONDS, error)
                    time.sleep(RETRY_SECONDS)
                    continue
            until_renewal = (self._remaining(session) - self._renew_before).total_seconds()
            time.sleep(min(max(until_renewal, 1), CHECK_SECONDS))

    @staticmethod
    def _remaining(session: Session) -> datetime.timedelta:
        return rfc3339_utc(session["Expiration"]) - now()


def write_token(directory: str, group_id: int) -> str:
    """A new random token, readable by root and the containers' group only (directory 0750, file 0440)."""
    # Under /run, where only root creates entries. It may exist from an earlier start, or because
    # Docker created it for a bind mount: either way it becomes root's and the group's.
    os.makedirs(directory, mode=0o750, exist_ok=True)
    os.chown(directory, 0, group_id)
    os.chmod(directory, 0o750)
    token = secrets.token_urlsafe(32)
    temporary = os.path.join(directory, f".{TOKEN_FILE_NAME}.new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o440)
    try:
        os.fchown(descriptor, 0, group_id)
        os.fchmod(descriptor, 0o440)
        os.write(descriptor, token.encode())
    finally:
        os.close(descriptor)
    # A new file, not a rewrite: a client reads either the old token or the new, never half of one.
    os.replace(temporary, os.path.join(directory, TOKEN_FILE_NAME))
    return token


def handler_for(holder: SessionHolder, token: str) -> type:
    expected = token.encode()

    class CredentialsHandler(BaseHTTPRequestHandler):
        server_version = "workbench-service-credentials"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path != CREDENTIALS_PATH:
                self._answer(404, {"message": "not found"})
                return
            offered = self.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(offered, expected):
                self._answer(401, {"message": "missing or wrong authorization token"})
                return
            try:
                session = holder.current()
            except LookupError as error:
                self._answer(503, {"message": str(error)})
                return
            self._answer(200, session)

        def _answer(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            # Method, path and status only: never a header, so never the token.
            log.info("%s %s", self.address_string(), format % args)

    return CredentialsHandler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role-arn", required=True, help="the services role")
    parser.add_argument("--region", required=True, help="where STS is called (the stack's region)")
    parser.add_argument("--listen", default="169.254.170.2:80", help="address:port to serve on")
    parser.add_argument("--token-dir", required=True, help="where the token goes (mounted into the containers)")
    parser.add_argument("--group", type=int, required=True, help="group id that may read the token")
    parser.add_argument("--session-seconds", type=int, default=SESSION_SECONDS)
    parser.add_argument("--renew-before-seconds", type=int, default=RENEW_BEFORE_SECONDS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    holder = SessionHolder(lambda: assume_role_with_aws_cli(args.role_arn, args.region, args.session_seconds),
                           args.renew_before_seconds)
    threading.Thread(target=holder.renew_forever, name="renew", daemon=True).start()
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), handler_for(holder, write_token(args.token_dir, args.group)))
    log.info("serving the session of %s on http://%s%s", args.role_arn, args.listen, CREDENTIALS_PATH)
    server.serve_forever()


if __name__ == "__main__":
    main()
