"""The idle-stop rule: when was the box last used, and how long until it stops itself.

Pure: boot/idle-stop.sh gathers the inputs on the box and runs this file with them; the tests
call `decide` with inputs of their own (tests/assets/test_idle_rule.py). Standard library only,
for the box's python3.

Run: idle_rule.py NOW MINUTES SSM_SESSIONS BOOTING RECORDED LAST_REQUEST RECORDED_WHAT...
(times in epoch seconds; 0 for an input the box could not read);
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
           last_request: int) -> Verdict:
    """In use right now: an open SSM session (each tunnel of `workbench connect` is one, and VS Code,
    Langfuse and LiteLLM's UI are reached only through one) or a boot in progress. Otherwise the later
    of what the last check recorded and LiteLLM's last request (a Cline task calling the model counts,
    with or without a person watching)."""
    if ssm_sessions > 0:
        last, what = now, "an SSM session"
    elif booting:
        last, what = now, "the boot"
    elif last_request > recorded:
        last, what = last_request, "a LiteLLM request"
    else:
        last, what = recorded, recorded_what
    return Verdict(last, what, minutes * 60 - (now - last))


def main(argv: list[str]) -> None:
    now, minutes, sessions, booting, recorded, last_request = (int(arg) for arg in argv[:6])
    verdict = decide(now=now, minutes=minutes, ssm_sessions=sessions, booting=bool(booting), recorded=recorded,
                     recorded_what=" ".join(argv[6:]) or "nothing since the boot", last_request=last_request)
    print(verdict.last_use, verdict.seconds_left, verdict.what)


if __name__ == "__main__":
    main(sys.argv[1:])
