"""Pre-fills Cline's and VS Code Server's settings, so Cline works the moment VS Code opens.

Run by the boot script as the coding user (python3 of Amazon Linux 2023, standard library
only): `seed_cline.py CLINE_VERSION MODEL LITELLM_URL [managed]`, Cline's LiteLLM key on stdin. Every
file is merged: a key already there is never changed, so a user's own choices survive every boot.
`managed` (a light workbench, whose key the team gateway issues and `workbench team add-user` may
issue anew): the LiteLLM base URL and key are the team's, set on every boot.

Cline 3.66+ keeps its state in files on the machine that runs the extension, here the box
(cline/cline at v3.89.2, apps/vscode/src/shared/storage/storage-context.ts): `~/.cline/data/
globalState.json` and `secrets.json` (mode 0600), each one flat JSON object (ClineFileStorage.ts).
The key names are those of apps/vscode/src/shared/storage/state-keys.ts at that tag.
"""

import json
import os
import sys
from pathlib import Path

HOME = Path.home()
CLINE_DATA = HOME / ".cline" / "data"
# code-server's user settings (VS Code's User/settings.json under code-server's data directory).
CODE_SERVER_SETTINGS = HOME / ".local" / "share" / "code-server" / "User" / "settings.json"


def cline_state(version: str, model: str, litellm_url: str) -> dict:
    return {
        # The LiteLLM provider in both modes, on the box's LiteLLM, with the configured model.
        "planModeApiProvider": "litellm",
        "actModeApiProvider": "litellm",
        "liteLlmBaseUrl": litellm_url,
        "planModeLiteLlmModelId": model,
        "actModeLiteLlmModelId": model,
        # First-run prompts a file can answer: the welcome view (set once a provider is chosen,
        # core/controller/index.ts), the "Welcome to Cline vX" notice shown while
        # lastShownAnnouncementId differs from the version's major.minor (common.ts,
        # utils/announcements.ts), and telemetry to Cline's servers, which a private workbench
        # does not send ("unset" until answered; TelemetrySetting.ts).
        "welcomeViewCompleted": True,
        "lastShownAnnouncementId": ".".join(version.split(".")[:2]),
        "telemetrySetting": "disabled",
    }


def code_server_settings() -> dict:
    # The Cline version is pinned by the boot; VS Code would otherwise update it from Open VSX.
    return {"extensions.autoUpdate": False, "extensions.autoCheckUpdates": False}


def merge(path: Path, wanted: dict, mode: int, managed: frozenset = frozenset()) -> str:
    """Adds the missing keys, and sets the `managed` ones to what is wanted; returns what it did, for the
    boot log (names only, never a value)."""
    existing: dict = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text() or "{}")
        except ValueError:
            return f"{path}: not plain JSON (edited by hand?), left as it is"
        if not isinstance(existing, dict):
            return f"{path}: not a JSON object, left as it is"
    missing = {key: value for key, value in wanted.items()
               if key not in existing or (key in managed and existing[key] != value)}
    if not missing and path.exists():
        return f"{path}: nothing to add"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".seed")
    temporary.write_text(json.dumps({**existing, **missing}, indent=2) + "\n")
    os.chmod(temporary, mode)
    temporary.replace(path)  # atomic, as Cline's own writes are
    return f"{path}: added {', '.join(sorted(missing))}"


def main(argv: list) -> None:
    version, model, litellm_url, *mode = argv
    managed = frozenset({"liteLlmBaseUrl", "liteLlmApiKey"} if mode == ["managed"] else ())
    key = sys.stdin.read().strip()
    os.umask(0o077)  # no moment in which another user could read a file half-written
    for path, wanted, mode in (
        (CLINE_DATA / "globalState.json", cline_state(version, model, litellm_url), 0o600),
        (CLINE_DATA / "secrets.json", {"liteLlmApiKey": key}, 0o600),
        (CODE_SERVER_SETTINGS, code_server_settings(), 0o644),
    ):
        print(merge(path, wanted, mode, managed))


if __name__ == "__main__":
    main(sys.argv[1:])
