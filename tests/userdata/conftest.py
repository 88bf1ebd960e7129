"""Fixtures of the boot script's tests: one bundle for all of them, a sandbox per test."""

from pathlib import Path

import pytest

from tests.userdata.boot_sandbox import Sandbox, render_bundle_zip


@pytest.fixture(scope="session")
def bundle_zip(tmp_path_factory) -> Path:
    return render_bundle_zip(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def sandbox(tmp_path, bundle_zip) -> Sandbox:
    return Sandbox(tmp_path, bundle_zip)
