"""checkov's CloudFormation checks on the synthesized templates: every finding fixed or acknowledged.
The default workbench's, a workshop room's (the room's own stack and a participant's workbench), the
team gateway's and a light workbench's."""

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

import app

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
MIN_REASON_LENGTH = 60  # a reason says why this workbench differs, not just "not needed"


def room_templates(directory: Path) -> dict[str, dict]:
    roster = directory / "checked.yaml"
    roster.write_text(yaml.safe_dump({"participants": ["alice"],
                                      "ends_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}))
    assembly = app.create_app({"room": str(roster)}, outdir=str(directory / "cdk.out")).synth()
    return {stack.stack_name: stack.template for stack in assembly.stacks}


@pytest.fixture(scope="module", params=["default", "ai-workshop-checked", "ai-workbench-alice", "team", "light"])
def report(request, tmp_path_factory) -> dict:
    assert CHECKOV.exists(), "checkov is missing: run `make test-install`"
    directory = tmp_path_factory.mktemp("checkov")
    if request.param in ("default", "team", "light"):  # light: a light workbench (gateway: team)
        checked = request.getfixturevalue(f"{request.param}_json")
    else:
        checked = room_templates(directory)[request.param]
    template = directory / "workbench.template.json"
    template.write_text(json.dumps(checked))
    result = subprocess.run(
        [str(CHECKOV), "--file", str(template), "--framework", "cloudformation", "--output", "json"],
        capture_output=True, text=True, timeout=300,
    )
    # Exit 1 means failed checks; the JSON says which.
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_no_check_fails(report):
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 20  # the checks ran on the real resources (the room's has the fewest)


def test_every_acknowledged_check_carries_a_specific_reason(report):
    skipped = report["results"]["skipped_checks"]
    assert skipped, "the template acknowledges nothing, so checkov read no Metadata"
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) >= MIN_REASON_LENGTH, (check["check_id"], check["resource"], reason)
