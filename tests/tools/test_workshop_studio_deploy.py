"""The Workshop Studio template deployed into the local emulator without `cdk bootstrap`: the
assets uploaded under a prefix, CreateStack with boto3 and the two parameters, the checks of
`make deploy-local` and those only this path has, then DeleteStack and nothing left
(tools/local_aws/workshop_studio.py says what each step checks)."""

import pytest

from tests.workbench.content_tree import content_tree
from tools.local_aws import workshop_studio as local_workshop_studio
from workbench import settings

pytestmark = pytest.mark.emulator


def test_the_template_deploys_without_the_cdk_and_leaves_nothing_behind(tmp_path_factory):
    # Each step checks what it should with boto3 and raises on the first miss.
    seconds = local_workshop_studio.round_trip(content_tree(tmp_path_factory), settings.load().name)
    assert seconds < 120

