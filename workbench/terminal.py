"""What the operator's terminal is shown of text that came from the box or from AWS.

The boot log and the box's health answers hold text the coding user can write, and stack events'
reasons and the BootReport output carry what the box signalled. A terminal obeys the control
sequences in what it prints: OSC sets the window title or, with OSC 52, the clipboard (the
operator's next paste); CSI moves the cursor and erases the screen; a carriage return or a
backspace overwrites what is already shown, so a failed check can be made to read "healthy".
Everything the operator tools print goes through printable(), which keeps newlines and tabs and
drops every other control character, with the whole sequence it introduces.
"""

from __future__ import annotations

import re

# ECMA-48 control sequences, in their 7-bit (ESC ...) and 8-bit (C1) forms: a control string
# (OSC, DCS, SOS, PM, APC) up to its terminator (BEL or ST) or, left open, the line's end; a CSI
# with its parameter, intermediate and final bytes; any other escape with its intermediate
# bytes and final byte.
_SEQUENCE = re.compile(r"""
    (?: \x1b[\]PX^_] | [\x90\x98\x9d\x9e\x9f] ) [^\x07\x1b\x9c\n]* (?: \x07 | \x1b\\ | \x9c )?
  | (?: \x1b\[ | \x9b ) [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]?
  | \x1b [\x20-\x2f]* [\x30-\x7e]?
""", re.VERBOSE)
# C0 but newline and tab, DEL, C1: what is left of a control character once the sequences are gone;
# and Unicode's bidirectional controls (Unicode's "Bidirectional Algorithm", UAX #9: ALM, LRM,
# RLM, the embeddings, overrides and isolates), which reorder what is shown, so "unhealthy" can
# read as something else.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """text without terminal control sequences or control characters, newlines and tabs kept."""
    return _CONTROL.sub("", _SEQUENCE.sub("", text))


def say(message: str) -> None:
    """Prints one message for the operator, made printable."""
    print(printable(message), flush=True)
