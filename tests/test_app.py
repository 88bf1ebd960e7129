"""The app as the CDK CLI runs it: offline synth, cfn-lint on the result."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cli_synth(tmp_path_factory) -> Path:
    """`cdk synth` through the pinned CLI with no AWS credentials or config at all."""
    out = tmp_path_factory.mktemp("cdk.out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("CDK_")}
    env.update(HOME=str(out), AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    result = subprocess.run(["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_synth_works_without_credentials(cli_synth):
    assert (cli_synth / "ai-workbench-default.template.json").exists()


def without_cli_metadata(template: dict) -> dict:
    """What only the CLI adds (its path-metadata, asset-metadata and version-reporting context): each
    resource's aws:cdk:path and aws:asset:* keys, and the CDKMetadata resource with its condition."""
    resources = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::CDK::Metadata":
            continue
        metadata = {key: value for key, value in resource.get("Metadata", {}).items()
                    if key != "aws:cdk:path" and not key.startswith("aws:asset:")}
        resources[logical_id] = {**{k: v for k, v in resource.items() if k != "Metadata"},
                                 **({"Metadata": metadata} if metadata else {})}
    conditions = {k: v for k, v in template.get("Conditions", {}).items() if k != "CDKMetadataAvailable"}
    return {**{k: v for k, v in template.items() if k not in ("Resources", "Conditions")}, "Resources": resources,
            **({"Conditions": conditions} if conditions else {})}


def test_the_template_the_tests_check_is_the_one_the_cli_deploys(cli_synth, default_json):
    """The tests, and `make workshop-studio`, synthesize in-process: with cdk.json's feature flags
    (app.feature_flags), or three policies differed from what `cdk deploy` sends."""
    deployed = json.loads((cli_synth / "ai-workbench-default.template.json").read_text())
    assert without_cli_metadata(deployed) == without_cli_metadata(default_json)


# E6101: the BootReport output is a wait condition's Data, which CloudFormation renders as a string
#   (AWS's WaitCondition documentation outputs it the same way); the schema calls it an object.
# W3005: a redundant DependsOn inside CDK's own auto-delete-objects provider, not our code.
ACCEPTED_LINT_FINDINGS = ["E6101", "W3005"]


def test_cfn_lint_finds_nothing_else(cli_synth):
    result = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks", *ACCEPTED_LINT_FINDINGS, "--",
                             str(cli_synth / "ai-workbench-default.template.json")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# Synthesizes into the project's cdk.out, as the local deploy's CDK CLI does (tests/tools/test_local_deploy.py).
@pytest.mark.xdist_group("project-cdk-out")
def test_a_bad_setting_stops_synth_with_one_clear_line():
    result = subprocess.run(["npx", "--no-install", "cdk", "synth", "--quiet", "-c", "data_volume_gib=20"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert ("workbench settings: data_volume_gib: 20 is out of range; allowed 30-16384" in result.stderr)


def test_a_light_workbench_is_neither_a_room_nor_a_workshop_studio_template(tmp_path):
    import app as cdk_app
    from workbench.settings import SettingsError

    with pytest.raises(SettingsError, match="imports a team gateway's exports of one account"):
        cdk_app.create_app({"gateway": "team"}, workshop_studio=True, outdir=str(tmp_path / "ws"))
    roster = tmp_path / "june.yaml"
    roster.write_text("participants: [alice, bob]\nends_at: 2030-01-01T00:00:00+00:00\n")
    with pytest.raises(SettingsError, match="a workshop room's workbenches join the room's own network"):
        cdk_app.create_app({"gateway": "team", "room": str(roster)}, outdir=str(tmp_path / "room"))
