"""The team gateway through the product's own commands against the local emulator: `python -m
workbench.team deploy` (what `make deploy-team` runs), again with no change (up to date), an update
that would replace the Aurora cluster (refused: ALLOW_DATA_LOSS unset), then `python -m workbench.team
destroy` (tools/local_aws/team.py checks each step with boto3 and raises on the first miss)."""

import pytest

from tools.local_aws import team as local_team

# The CDK CLI synthesizes into the project's cdk.out, as `make deploy` does: one worker for every
# test that runs the CLI there (see test_local_deploy.py).
pytestmark = [pytest.mark.emulator, pytest.mark.xdist_group("project-cdk-out")]


def test_the_team_gateway_deploys_stays_up_to_date_refuses_a_replacement_and_leaves_its_snapshots(tmp_path):
    seconds = local_team.round_trip(tmp_path)
    assert seconds < 400
