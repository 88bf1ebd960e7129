"""Shared fixtures: the default stack, synthesized once per test session (tests/helpers.py)."""

import os

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
# Tests that import litellm read its model map from the package instead of the internet.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest
from aws_cdk.assertions import Template

from tests.helpers import template_of


@pytest.fixture(scope="session")
def default_template() -> Template:
    return template_of()


@pytest.fixture(scope="session")
def default_json(default_template) -> dict:
    return default_template.to_json()


def pytest_addoption(parser):
    parser.addoption("--reverse", action="store_true", help="run the tests in reverse order (order independence)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse"):
        items.reverse()
