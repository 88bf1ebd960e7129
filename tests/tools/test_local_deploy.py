"""The real `cdk bootstrap`, `cdk deploy` and `cdk destroy` of the real app against the local emulator.

Slow-ish (about half a minute); `pytest -m "not emulator"` skips it locally. CI runs it.
"""

import pytest

from tools.local_aws import deploy as local_deploy

# The CDK CLI deploys from the project's cdk.out, which test_app.py's refused synth writes to as well:
# one worker runs both, since a second CLI on that directory fails on its lock ("Other CLIs (PID=...)
# are currently reading from cdk.out", aws-cdk 2.1148.1 lib/index.js).
pytestmark = [pytest.mark.emulator, pytest.mark.xdist_group("project-cdk-out")]


def test_round_trip_deploys_checks_and_leaves_nothing_behind():
    # Each step checks what it should with boto3 and raises on the first miss.
    seconds = local_deploy.round_trip()
    assert seconds < 300


def test_destroy_without_a_local_deployment_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(local_deploy, "DEPLOYED_MARKER", tmp_path / "deployed")
    with pytest.raises(local_deploy.LocalDeployError, match="nothing deployed locally: run make deploy-local first"):
        local_deploy.destroy()
