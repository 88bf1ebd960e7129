"""A workshop room through the organiser's own commands against the local emulator: `workbench
workshop up` for 7 participants, `up` again with an 8th, `down` (tools/local_aws/room.py checks
each step with boto3 and raises on the first miss)."""

import pytest

from tools.local_aws import room as local_room

pytestmark = pytest.mark.emulator


def test_a_room_of_seven_shares_one_network_grows_by_one_and_leaves_nothing(tmp_path):
    seconds = local_room.round_trip(tmp_path)
    assert seconds < 900
