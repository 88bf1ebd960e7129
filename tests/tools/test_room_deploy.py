"""A workshop room of 7 participants through the real `cdk deploy --all` and `cdk destroy --all`
against the local emulator (tools/local_aws/room.py checks each step with boto3 and raises on
the first miss)."""

import pytest

from tools.local_aws import room as local_room

pytestmark = pytest.mark.emulator


def test_a_room_of_seven_shares_one_network_and_leaves_only_the_data_snapshots(tmp_path):
    seconds = local_room.round_trip(tmp_path)
    assert seconds < 600
