"""The sanitiser every operator tool prints through (workbench/terminal.py)."""

import random

import pytest

from workbench.terminal import printable

CONTROLS = {chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]} - {"\n", "\t"}


@pytest.mark.parametrize("hostile, shown", [
    ("\x1b]0;pwned\x07boot ok", "boot ok"),  # OSC: window title, ended by BEL
    ("\x1b]52;c;cm0gLXJmIH4K\x1b\\boot ok", "boot ok"),  # OSC 52: the clipboard, ended by ST
    ("\x9d52;c;cm0gLXJmIH4K\x9cboot ok", "boot ok"),  # the same in 8-bit C1 form
    ("\x1b[2J\x1b[1;1Hboot ok", "boot ok"),  # CSI: erase the screen, move the cursor
    ("\x9b2Jboot ok", "boot ok"),  # 8-bit CSI
    ("failed\rhealthy", "failedhealthy"),  # a carriage return would overwrite "failed"
    ("failed\x08\x08\x08\x08\x08\x08healthy", "failedhealthy"),  # so would backspaces
    ("\x1bP+q696e646e\x1b\\boot ok", "boot ok"),  # DCS (a terminal query)
    ("\x1b7\x1b(0boot ok\x1b8", "boot ok"),  # save/restore cursor, switch character set
    ("title \x1b]0;never ended\nnext line", "title \nnext line"),  # an open OSC ends at its line
    ("x\x00y\x7fz\x85w", "xyzw"),  # NUL, DEL, NEL
    ("litellm \u202eyhtlaehnu\u202c", "litellm yhtlaehnu"),  # RLO would show "unhealthy" as "healthy"-like text
    ("a\u2066b\u2069c\u200fd\u061ce", "abcde"),  # isolates, RLM, Arabic letter mark
])
def test_control_sequences_and_characters_are_removed(hostile, shown):
    assert printable(hostile) == shown


def test_newlines_tabs_and_text_are_kept():
    text = "phase\tseconds\nservices\t42 ✓ Größe 日本\n"
    assert printable(text) == text


def test_no_control_character_survives_any_mix():
    alphabet = [*CONTROLS, "[", "]", "0", ";", "\\", "P", "a", "\n", "\t", "é"]
    rng = random.Random(18)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert not set(printable(text)) & CONTROLS, repr(text)
