"""Shared fixtures: the default stack, synthesized once per test session (tests/helpers.py); and
which tests pytest-xdist keeps on one worker (pytest.ini runs the suite on parallel workers)."""

import json
import os

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
# Tests that import litellm read its model map from the package instead of the internet.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest
from aws_cdk.assertions import Template

import app as cdk_app
from tests.helpers import synth, template_of

# Session fixtures that cost enough to run on one worker only, with every test that uses them
# (the default synthesis: 37 s on this project's 2-CPU machine under load, on each worker building it).
SHARED_SESSION_FIXTURES = {"default_template", "team_json", "light_json"}


@pytest.fixture(scope="session")
def default_template() -> Template:
    return template_of()


@pytest.fixture(scope="session")
def default_json(default_template) -> dict:
    return default_template.to_json()


@pytest.fixture(scope="session")
def team_json() -> dict:
    """The default team gateway (app.py -c target=team-gateway), synthesized once."""
    (template,) = synth(json.dumps({cdk_app.TARGET_CONTEXT: cdk_app.TEAM_GATEWAY_TARGET})).values()
    return template


@pytest.fixture(scope="session")
def light_json() -> dict:
    """alice's light workbench (gateway: team) on the default team gateway, synthesized once."""
    (template,) = synth(json.dumps({"gateway": "team", "name": "alice"})).values()
    return template


def pytest_addoption(parser):
    parser.addoption("--reverse", action="store_true", help="run the tests in reverse order (order independence)")


def shared_fixtures(item) -> set[str]:
    """The fixtures of this test that are built once and shared by other tests: its module's
    module-scoped ones, by module, and the session fixtures above, across modules."""
    shared = set()
    for name, definitions in item._fixtureinfo.name2fixturedefs.items():
        scope = definitions[-1].scope  # the definition that applies to this test
        if scope == "module":
            shared.add(f"{item.nodeid.split('::')[0]}:{name}")
        elif name in SHARED_SESSION_FIXTURES:
            shared.add(name)
    return shared


def group_by_shared_fixtures(items) -> None:
    """An xdist_group for each set of tests linked by a shared fixture, so that `--dist loadgroup`
    builds a proxy, a synthesis or a scenario on one worker and not on each worker that gets one of
    its tests. Tests that share nothing stay ungrouped and are spread one by one; a test that
    already names its group (a resource no two workers may use at once) keeps it."""
    parent = {}

    def root(name):
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    linked = []
    for item in items:
        if item.get_closest_marker("xdist_group") is None and (names := sorted(shared_fixtures(item))):
            linked.append((item, names))
            for name in names[1:]:
                parent[root(name)] = root(names[0])
    for item, names in linked:
        item.add_marker(pytest.mark.xdist_group(root(names[0])))


# Before xdist's own hook, which reads the xdist_group marks into the test ids it schedules by.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    group_by_shared_fixtures(items)
    if config.getoption("--reverse"):
        items.reverse()


# Before xdist's own hook, which sends the ids to the scheduler.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session):
    """What xdist's own hook means to do: on a worker of `--dist loadgroup`, the test's id ends with
    "@" and its groups, by which the scheduler keeps them on one worker. pytest-xdist 3.8.0 writes that
    id to item._nodeid, which pytest 9.2 no longer reads (its ids are NodeId objects in item._id), so
    the groups were silently ignored (pytest-dev/pytest-xdist#1386; the fix proposed upstream, #1388,
    updates the structured id, as here). Ids that already end so are left alone."""
    if not getattr(session.config.option, "loadgroup", False):  # set by xdist for --dist loadgroup only
        return
    from _pytest.nodeid import NodeId

    for item in session.items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)
