"""The Workshop Studio content tree of the default settings, written once per test session (one
synthesis and one wheel build) for the tests that read it (test_workshop_studio.py) and the one that
deploys it into the emulator (tests/tools/test_workshop_studio_deploy.py).

Cached by the session's base temporary directory, which pytest gives each xdist worker of its own.
"""

from functools import cache
from pathlib import Path

import pytest

from workbench.workshop_studio import ContentTree, write_content


@cache
def _written(base: Path) -> ContentTree:
    return write_content(base / "workshop-studio", {})


def content_tree(tmp_path_factory: pytest.TempPathFactory) -> ContentTree:
    return _written(tmp_path_factory.getbasetemp())
