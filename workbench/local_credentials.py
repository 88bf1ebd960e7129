"""The laptop's credentials process: the user's AWS profile, served to the local LiteLLM container.

`workbench local up` resolves the profile in the foreground (so an SSO login or an MFA prompt
reaches the user), then starts this module detached. It serves the profile's credentials in the
same format and with the same token check as the box's endpoint (assets/boot/service_credentials.py,
whose SessionHolder and request handler it reuses), and the container's botocore fetches them
through aws/fetch.py, its credential_process. Nothing of ~/.aws enters the container, and the
container never writes to it (botocore would write SSO token caches there).

Each session served carries an Expiration: the profile's own for temporary credentials, or at most
SERVE_SECONDS ahead for long-term keys, so the container asks again and picks up a rotated key.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import logging
import os
import secrets
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import boto3

from workbench.bundle import ASSETS

SERVE_SECONDS = 3600
STATE_FILE = "credentials.json"  # {"pid": ..., "port": ..., "profile": ...}, beside the token



@functools.cache
def box_endpoint():
    """The box's assets/boot/service_credentials.py, loaded when used: `workbench --help` needs no assets."""
    spec = importlib.util.spec_from_file_location("service_credentials", ASSETS / "boot" / "service_credentials.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

log = logging.getLogger("local-credentials")


def profile_session(profile: str | None) -> dict:
    """The profile's current credentials as the box's endpoint serves them (botocore refreshes them)."""
    credentials = boto3.Session(profile_name=profile).get_credentials()
    if credentials is None:
        raise RuntimeError(f"AWS profile {profile or 'default'} gives no credentials")
    frozen = credentials.get_frozen_credentials()
    service_credentials = box_endpoint()
    latest = service_credentials.now() + datetime.timedelta(seconds=SERVE_SECONDS)
    # RefreshableCredentials keeps its end in _expiry_time (no public accessor in botocore 1.44);
    # a long-term key has none.
    expiry = getattr(credentials, "_expiry_time", None)
    expiration = min(latest, expiry.astimezone(service_credentials.UTC)) if expiry else latest
    return {"AccessKeyId": frozen.access_key, "SecretAccessKey": frozen.secret_key, "Token": frozen.token,
            "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}


def write_token(path: Path) -> str:
    """A new random token, for the user only (0600); the container reads it through its mount."""
    token = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{path.name}.new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(descriptor, token.encode())
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    return token


def serve(profile: str | None, host: str, directory: Path) -> ThreadingHTTPServer:
    """Starts serving on a free port of host (in a thread) and writes the token and the state file."""
    service_credentials = box_endpoint()
    holder = service_credentials.SessionHolder(lambda: profile_session(profile),
                                               service_credentials.RENEW_BEFORE_SECONDS)
    threading.Thread(target=holder.renew_forever, name="renew", daemon=True).start()
    token = write_token(directory / "token")
    server = ThreadingHTTPServer((host, 0), service_credentials.handler_for(holder, token))
    threading.Thread(target=server.serve_forever, name="serve", daemon=True).start()
    state = {"pid": os.getpid(), "host": host, "port": server.server_port, "profile": profile}
    temporary = directory / f".{STATE_FILE}.new"
    temporary.write_text(json.dumps(state))
    os.replace(temporary, directory / STATE_FILE)
    log.info("serving profile %s on http://%s:%s%s", profile or "default", host, server.server_port,
             service_credentials.CREDENTIALS_PATH)
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="AWS profile (default: the default chain)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (Docker's host gateway)")
    parser.add_argument("--directory", type=Path, required=True, help="where the token and state file go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(args.profile, args.host, args.directory)
    threading.Event().wait()  # until `workbench local down` ends this process


if __name__ == "__main__":
    main()
