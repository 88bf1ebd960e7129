"""The bundle in the cloud assembly: the CDK CLI uploads exactly the bytes whose sha256 the
template hands the box (BUNDLE_SHA256), and a different bundle means a new boot signal.

The boot package is built here in a stack of its own (no cdk-nag, a second or two), from the
same settings; the app's template, synthesized once per session (tests/conftest.py), is checked
against it.
"""

import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace

import aws_cdk as cdk
import pytest

from stacks.boot import BootPackage
from workbench import settings

BUNDLE_SHA256 = re.compile(r"\\nBUNDLE_SHA256=([0-9a-f]{64})\\n")  # in a template's JSON text


def build(outdir: Path, overrides: dict | None = None) -> SimpleNamespace:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "Boot")
    # deployment_env reads only these attributes of the stack's secret, blob storage, volume and services role.
    package = BootPackage(
        stack, "Boot", settings=settings.load(overrides=overrides),
        secrets=SimpleNamespace(arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:ai-workbench-x"),
        storage=SimpleNamespace(bucket=SimpleNamespace(bucket_name="ai-workbench-blobs")),
        services_role=SimpleNamespace(role_arn="arn:aws:iam::123456789012:role/ai-workbench-services"),
        data=SimpleNamespace(volume_id="vol-0123456789abcdef0"),
    )
    user_data = json.dumps(stack.resolve(package.user_data.render()))
    app.synth()
    return SimpleNamespace(
        outdir=outdir,
        sha256s=BUNDLE_SHA256.findall(user_data),
        bundle_url=json.dumps(stack.resolve(package.bundle.s3_object_url)),
        object_key=stack.resolve(package.bundle.s3_object_key),
        fingerprint=package.signal.fingerprint,
    )


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> SimpleNamespace:
    return build(tmp_path_factory.mktemp("cdk.out"))


def test_the_cli_uploads_the_file_whose_hash_the_user_data_carries(default):
    (sha256,) = default.sha256s
    manifest = json.loads((default.outdir / "Boot.assets.json").read_text())
    (asset,) = [a for a in manifest["files"].values()
                if any(d["objectKey"] == default.object_key for d in a["destinations"].values())]
    # "file": the CLI uploads the path as it is; "zip" would have it zip a directory at deploy
    # time (aws-cdk 2.1148.1, lib/index.js, FileAssetHandler.packageFile).
    assert asset["source"]["packaging"] == "file" and asset["source"]["path"].endswith(".zip")
    assert hashlib.sha256((default.outdir / asset["source"]["path"]).read_bytes()).hexdigest() == sha256
    assert default.object_key.endswith(".zip") and default.object_key in default.bundle_url


def test_the_apps_template_points_the_box_at_this_same_zip(default, default_json):
    # Two separate renders and packs (this module's and the session's synth of the app) give
    # the same bytes: a repeated synth does not change the template.
    (sha256,) = default.sha256s
    template = json.dumps(default_json)
    assert BUNDLE_SHA256.findall(template) == [sha256]
    assert f"/{default.object_key}" in template  # the bundle URL and the instance's read permission


def test_a_different_bundle_gets_its_own_hash_key_and_boot_signal(default, tmp_path):
    # The Langfuse version reaches the box only inside the bundle (its compose file).
    changed = build(tmp_path / "changed", {"versions.langfuse": "4.51.0"})
    assert changed.sha256s != default.sha256s and changed.object_key != default.object_key
    assert changed.fingerprint != default.fingerprint
