"""The idle-stop rule: when was the box last used, and how long until it stops itself.

Pure: boot/idle-stop.sh gathers the inputs on the box and runs this file with them; the tests
call `decide` with inputs of their own (tests/assets/test_idle_rule.py). Standard library only,
for the box's python3.

Run: idle_rule.py NOW MINUTES SSM_SESSIONS BOOTING RECORDED HEARTBEAT_MS LAST_REQUEST RECORDED_WHAT...
(epoch seconds, except the heartbeat's milliseconds; 0 for an input the box could not read);
prints "<last use, epoch seconds> <seconds left, 0 or less when due> <what the last use was>".
"""

from __future__ import annotations

import sys
from typing import NamedTuple


class Verdict(NamedTuple):
    last_use: int  # epoch seconds
    what: str
    seconds_left: int  # <= 0: stop now

    @property
    def due(self) -> bool:
        return self.seconds_left <= 0


def decide(*, now: int, minutes: int, ssm_sessions: int, booting: bool, recorded: int, recorded_what: str,
           heartbeat_ms: int, last_request: int) -> Verdict:
    """In use right now: an open SSM session (each tunnel of `workbench connect` is one) or a boot in
    progress. Otherwise the latest of: what the last check recorded, VS Code's last browser heartbeat
    (code-server's /healthz lastHeartbeat, in ms) and LiteLLM's last request (a Cline task calling the
    model counts, with or without a person watching)."""
    if ssm_sessions > 0:
        last, what = now, "an SSM session"
    elif booting:
        last, what = now, "the boot"
    else:
        last, what = recorded, recorded_what
        for candidate, name in ((heartbeat_ms // 1000, "VS Code in a browser"), (last_request, "a LiteLLM request")):
            if candidate > last:
                last, what = candidate, name
    return Verdict(last, what, minutes * 60 - (now - last))


def main(argv: list[str]) -> None:
    now, minutes, sessions, booting, recorded, heartbeat_ms, last_request = (int(arg) for arg in argv[:7])
    verdict = decide(now=now, minutes=minutes, ssm_sessions=sessions, booting=bool(booting), recorded=recorded,
                     recorded_what=" ".join(argv[7:]) or "nothing since the boot", heartbeat_ms=heartbeat_ms,
                     last_request=last_request)
    print(verdict.last_use, verdict.seconds_left, verdict.what)


if __name__ == "__main__":
    main(sys.argv[1:])
