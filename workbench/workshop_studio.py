"""`make workshop-studio OUT=dir` and `make package BUCKET=name [PREFIX=p]`: the workbench as one
CloudFormation template that deploys without the CDK and its bootstrap.

content OUT: synthesizes the same WorkbenchStack with the Workshop Studio synthesizer
(stacks/synthesizers.py) and writes Workshop Studio's content tree:

    contentspec.yaml                 the template, its two asset parameters, the participant role's policy
    static/<stack>.template.json     the template (no BootstrapVersion, no cdk-hnb659fds)
    static/iam_policy.json           what a participant may do: participant_policy()
    assets/<hash>.zip                every file asset the template names, under the name it expects
    assets/<wheel>                   the `workbench` command, for participants who never clone this repo
    content/index.en.md, index.ja.md the participant guide (source: workshop/, placeholders @{key})

package --bucket B [--prefix P]: writes the same tree to a scratch directory, uploads assets/ and
the template to s3://B/P, and prints a CloudFormation console quick-create link with the two
asset parameters filled in.

Settings come from workbench.yaml and `-c key=value`, as for `make deploy`.

Run: python -m workbench.workshop_studio content OUT [-c KEY=VALUE]...
     python -m workbench.workshop_studio package --bucket NAME [--prefix P] [--profile NAME] [-c KEY=VALUE]...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.exceptions
import yaml

import app as cdk_app
from stacks.synthesizers import (
    ASSETS_BUCKET_NAME,
    ASSETS_BUCKET_PREFIX,
    BUCKET_NAME_PATTERN,
    BUCKET_PREFIX_PATTERN,
)
from workbench import bundle, contract
from workbench import settings as workbench_settings
from workbench.snapshots import WORKBENCH_TAG

ROOT = Path(__file__).resolve().parent.parent
GUIDE_SOURCES = ROOT / "workshop"
GUIDE_LOCALES = ("en", "ja")
POLICY_FILE = "static/iam_policy.json"
# What the wheel is built from: the package pyproject.toml names and nothing else.
WHEEL_SOURCES = ("pyproject.toml", "workbench")
# Zip entries dated 1980-01-01 (setuptools honours SOURCE_DATE_EPOCH), so the same sources build
# the same wheel and the content tree does not change when nothing did.
WHEEL_SOURCE_DATE_EPOCH = "315532800"


class WorkshopStudioError(Exception):
    """What stopped the content tree or the package; one line for the user."""


@dataclass(frozen=True)
class ContentTree:
    root: Path
    stack_name: str
    template: Path  # static/<stack>.template.json
    assets: tuple[Path, ...]  # everything under assets/, the wheel included
    wheel: Path


def synthesize(context: Mapping[str, str], cloud_assembly: Path) -> tuple[str, dict, dict[str, Path]]:
    """The stack's name, its template, and {object name under the prefix: file} of its file assets.
    The `-c` overrides go over cdk.json's feature flags, as with the CDK CLI (app.feature_flags)."""
    assembly = cdk_app.create_app(context, workshop_studio=True, outdir=str(cloud_assembly)).synth()
    (stack,) = assembly.stacks
    manifest = json.loads((cloud_assembly / f"{stack.id}.assets.json").read_text())
    assets: dict[str, Path] = {}
    for asset in manifest["files"].values():
        source = cloud_assembly / asset["source"]["path"]
        if source.name == stack.template_file:  # the template itself goes to static/
            continue
        (destination,) = asset["destinations"].values()
        name = destination["objectKey"].removeprefix(f"${{{ASSETS_BUCKET_PREFIX}}}")
        # A directory (a handler's code), which the CDK CLI would zip at upload: its object name is
        # the directory's fingerprint, so any faithful zip of it fits.
        if asset["source"]["packaging"] == "zip":
            scratch = cloud_assembly / "zipped"
            scratch.mkdir(exist_ok=True)
            bundle.pack(source, scratch / name)
            source = scratch / name
        assets[name] = source
    return stack.stack_name, stack.template, assets


def participant_policy(workbench_name: str) -> dict:
    """Exactly what a participant needs to use their workbench from their laptop with `workbench
    connect` and `workbench credentials`, and nothing that reaches inside the box.

    Resources are named by the workbench's tag because the template's resources get names only
    at deploy time, in an account nobody knows at synth. Run Command (`workbench status` and
    `logs`) is left out on purpose: it runs as root on the box, where the instance role's
    credentials (the secret's PutSecretValue, the services role and its Bedrock access) are, and
    with them LiteLLM's daily budget no longer binds. Sources: the Service Authorization
    Reference (actions, resource types, condition keys; tests/workbench/test_workshop_studio.py
    checks them), and the Systems Manager user guide's Session Manager examples: the document
    check, the port-forwarding document, the data channel a client opens, and ending or resuming
    only one's own sessions. For that last one the examples for IAM users name the session
    `session/${aws:username}-*`, but a participant's credentials are an assumed role's, which has
    no aws:username; the session's `aws:ssmmessages:session-id` tag, a condition key the Service
    Authorization Reference lists for both actions, holds the caller's user id instead.
    """
    instances = "arn:aws:ec2:*:*:instance/*"
    tagged = {f"aws:ResourceTag/{WORKBENCH_TAG}": workbench_name}
    document_check = {"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}}
    return {"Version": "2012-10-17", "Statement": [
        # The stack's outputs (instance id, secret ARN). Workshop Studio names the stack, so no name pattern fits.
        {"Sid": "ReadTheStackOutputs", "Effect": "Allow", "Action": "cloudformation:DescribeStacks",
         "Resource": "arn:aws:cloudformation:*:*:stack/*/*"},
        # Neither has a resource type in the Service Authorization Reference: "*" or nothing.
        {"Sid": "SeeTheInstanceStateAndItsAgent", "Effect": "Allow",
         "Action": ["ec2:DescribeInstances", "ssm:DescribeInstanceInformation"], "Resource": "*"},
        {"Sid": "StartTheStoppedWorkbench", "Effect": "Allow", "Action": "ec2:StartInstances",
         "Resource": instances, "Condition": {"StringEquals": tagged}},
        # With the document check, a session without a document (a shell) is refused: every
        # statement that allows StartSession must carry it (Systems Manager user guide).
        {"Sid": "SessionsToTheWorkbenchOnly", "Effect": "Allow", "Action": "ssm:StartSession",
         "Resource": instances,
         "Condition": {"StringEquals": {f"ssm:resourceTag/{WORKBENCH_TAG}": workbench_name}, **document_check}},
        {"Sid": "PortForwardingOnly", "Effect": "Allow", "Action": "ssm:StartSession",
         "Resource": "arn:aws:ssm:*:*:document/AWS-StartPortForwardingSession", "Condition": document_check},
        {"Sid": "EndOrResumeOwnSessionsOnly", "Effect": "Allow",
         "Action": ["ssm:TerminateSession", "ssm:ResumeSession"], "Resource": "arn:aws:ssm:*:*:session/*",
         "Condition": {"StringLike": {"ssm:resourceTag/aws:ssmmessages:session-id": "${aws:userid}*"}}},
        # The Session Manager plugin opens the session's data channel with the caller's credentials;
        # the Service Authorization Reference gives this action no resource type.
        {"Sid": "OpenTheSessionDataChannel", "Effect": "Allow", "Action": "ssmmessages:OpenDataChannel",
         "Resource": "*"},
        # The seed every login and key derives from (`workbench credentials`).
        {"Sid": "ReadTheWorkbenchSeed", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": "arn:aws:secretsmanager:*:*:secret:*", "Condition": {"StringEquals": tagged}},
    ]}


def contentspec(stack_name: str, template_file: str, settings: workbench_settings.Settings) -> dict:
    """Workshop Studio's contentspec.yaml, in the shape of awslabs/multi-az-workshop's."""
    return {
        "version": 2.0,
        "defaultLocaleCode": "en-US",
        "localeCodes": ["en-US", "ja-JP"],
        "awsAccountConfig": {
            "accountSources": ["WorkshopStudio"],
            "participantRole": {"iamPolicies": [POLICY_FILE]},
            # One workbench per account, next to the Bedrock region LiteLLM calls.
            "regionConfiguration": {"minAccessibleRegions": 1, "maxAccessibleRegions": 1,
                                    "deployableRegions": {"recommended": [settings.bedrock_region]}},
        },
        "infrastructure": {"cloudformationTemplates": [{
            "templateLocation": template_file,
            "label": stack_name,
            "parameters": [
                {"templateParameter": ASSETS_BUCKET_NAME, "defaultValue": f"{{{{.{ASSETS_BUCKET_NAME}}}}}"},
                {"templateParameter": ASSETS_BUCKET_PREFIX, "defaultValue": f"{{{{.{ASSETS_BUCKET_PREFIX}}}}}"},
            ],
        }]},
    }


def guide_values(settings: workbench_settings.Settings, wheel: str) -> dict[str, str]:
    return {
        "name": settings.name,
        "wheel": wheel,
        "admin_email": settings.langfuse_admin_email,
        "cline_model": settings.cline_model,
        "models": ", ".join(model.name for model in settings.models),
        "budget": f"{settings.cline_budget_usd_per_day:g}",
        "idle_stop_minutes": str(settings.idle_stop_minutes),
        "langfuse_url": contract.service_url("Langfuse", contract.SERVICE_PORTS["Langfuse"]),
        "vscode_url": contract.service_url("VS Code", contract.SERVICE_PORTS["VS Code"]),
    }


def render_guide(source: str, values: Mapping[str, str]) -> str:
    """Fills @{key}; an unknown key fails here rather than reaching a participant as text."""
    return bundle.SynthTemplate(source).substitute(values)


def build_wheel(out_dir: Path) -> Path:
    """The `workbench` command as a wheel, built from a copy of its sources (a build in the work
    tree would leave build/ and egg-info behind and race other builds)."""
    with tempfile.TemporaryDirectory(prefix="workbench-wheel-") as scratch:
        sources = Path(scratch) / "src"
        sources.mkdir()
        for name in WHEEL_SOURCES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, sources / name, ignore=shutil.ignore_patterns(bundle.BYTE_CODE_CACHE))
            else:
                shutil.copyfile(source, sources / name)
        built = Path(scratch) / "wheel"
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--wheel-dir", str(built), str(sources)],
            capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": WHEEL_SOURCE_DATE_EPOCH},
        )
        if result.returncode != 0:
            raise WorkshopStudioError(f"building the workbench wheel failed: {result.stderr.strip()[-500:]}")
        (wheel,) = built.glob("*.whl")
        return Path(shutil.copy2(wheel, out_dir / wheel.name))


def write_content(out: Path, context: Mapping[str, str]) -> ContentTree:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise WorkshopStudioError(f"{out} is not empty; give a new or empty directory")
    settings = workbench_settings.load(overrides=workbench_settings.context_overrides(dict(context)))
    for folder in ("static", "assets", "content"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workbench-cdk-out-") as cloud_assembly:
        stack_name, template, assets = synthesize(context, Path(cloud_assembly))
        copied = [Path(shutil.copyfile(source, out / "assets" / name)) for name, source in sorted(assets.items())]
    template_path = out / "static" / f"{stack_name}.template.json"
    template_path.write_text(json.dumps(template, indent=1))
    (out / POLICY_FILE).write_text(json.dumps(participant_policy(settings.name), indent=2) + "\n")
    (out / "contentspec.yaml").write_text(yaml.safe_dump(
        contentspec(stack_name, template_path.relative_to(out).as_posix(), settings), sort_keys=False))
    wheel = build_wheel(out / "assets")
    values = guide_values(settings, wheel.name)
    for locale in GUIDE_LOCALES:
        source = GUIDE_SOURCES / f"index.{locale}.md"
        (out / "content" / source.name).write_text(render_guide(source.read_text(), values))
    return ContentTree(out, stack_name, template_path, (*copied, wheel), wheel)


def normalized_prefix(prefix: str) -> str:
    """'' or a key prefix ending in '/', the form the template's AssetsBucketPrefix accepts."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def quick_create_link(region: str, url: str, stack_name: str, bucket: str, prefix: str) -> str:
    """The CloudFormation console's Create stack page with the template at url and both parameters filled in."""
    query = urllib.parse.urlencode({"templateURL": url, "stackName": stack_name,
                                    f"param_{ASSETS_BUCKET_NAME}": bucket, f"param_{ASSETS_BUCKET_PREFIX}": prefix})
    return f"https://{region}.console.aws.amazon.com/cloudformation/home?region={region}#/stacks/quickcreate?{query}"


def bucket_region(s3, bucket: str) -> str:
    # GetBucketLocation answers no constraint for us-east-1, and 'EU' for the oldest eu-west-1 buckets.
    constraint = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)


def template_url(bucket: str, region: str, key: str) -> str:
    return f"https://{bucket}.s3.{region}.amazonaws.com/{urllib.parse.quote(key)}"


def upload(s3, tree: ContentTree, bucket: str, prefix: str, say=print) -> str:
    """Puts the assets and the template under the prefix, where the template's parameters will
    point; returns the key of the template."""
    for path in (*tree.assets, tree.template):
        say(f"upload s3://{bucket}/{prefix}{path.name}")
        s3.upload_file(str(path), bucket, f"{prefix}{path.name}")
    return f"{prefix}{tree.template.name}"


def package(session: boto3.session.Session, bucket: str, prefix: str, context: Mapping[str, str],
            say=print) -> str:
    """Uploads the template and its assets to s3://bucket/prefix; returns the quick-create link."""
    if not re.fullmatch(BUCKET_NAME_PATTERN, bucket):
        raise WorkshopStudioError(f"BUCKET: {bucket!r} is not an S3 bucket name")
    prefix = normalized_prefix(prefix)
    if not re.fullmatch(BUCKET_PREFIX_PATTERN, prefix):
        raise WorkshopStudioError(f"PREFIX: {prefix!r} holds characters the template's {ASSETS_BUCKET_PREFIX} refuses")
    region = bucket_region(session.client("s3"), bucket)
    with tempfile.TemporaryDirectory(prefix="workbench-package-") as scratch:
        tree = write_content(Path(scratch) / "content", context)
        # Lambda reads its code, and the box its bundle, from a bucket in the stack's own region.
        key = upload(session.client("s3", region_name=region), tree, bucket, prefix, say)
        say(f"\nThe `workbench` command: aws s3 cp s3://{bucket}/{prefix}{tree.wheel.name} . && "
            f"python3 -m venv ~/.workbench && ~/.workbench/bin/pip install ./{tree.wheel.name}")
        return quick_create_link(region, template_url(bucket, region, key), tree.stack_name, bucket, prefix)


def parse_context(pairs: Sequence[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not key or not equals:
            raise WorkshopStudioError(f"-c {pair}: a context value is KEY=VALUE, e.g. -c name=alice")
        context[key] = value
    return context


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m workbench.workshop_studio", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    content = commands.add_parser("content", help="write the Workshop Studio content tree")
    content.add_argument("out", type=Path, help="a new or empty directory")
    upload = commands.add_parser("package", help="upload the template and assets, print a quick-create link")
    upload.add_argument("--bucket", required=True, help="an S3 bucket of yours, in the region to deploy to")
    upload.add_argument("--prefix", default="", help="key prefix in that bucket (default: none)")
    upload.add_argument("--profile", help="AWS profile (default: your AWS configuration)")
    for command in (content, upload):
        command.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                             help="a setting for this template, as for make deploy")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        context = parse_context(args.context)
        if args.command == "content":
            tree = write_content(args.out, context)
            print(f"Workshop Studio content for {tree.stack_name} in {tree.root}")
        else:
            link = package(boto3.session.Session(profile_name=args.profile), args.bucket, args.prefix, context)
            print(f"\nCreate the stack (tick the IAM acknowledgement, then Create stack):\n{link}")
    except (WorkshopStudioError, workbench_settings.SettingsError) as error:
        print(f"workshop-studio: {error}", file=sys.stderr)
        return 1
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        print(f"workshop-studio: AWS said: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
