"""The Workshop Studio template in the local emulator, the way Workshop Studio and the console deploy it:
no `cdk bootstrap`, no CDK CLI.

The content tree's assets and template are uploaded to a bucket under a prefix (workbench/workshop_studio.py's
own upload), the stack is created with boto3's CreateStack from the quick-create link's template URL, stack
name and parameters, and checked as `make deploy-local` checks its deploy (tools/local_aws/deploy.py), plus
what only this path has: no bootstrap resource exists, the bundle and the custom-resource handlers' code come
from the assets bucket under the prefix, the instance role may read exactly the bundle's object there, and
the instance and the secret carry the tag the participant policy names them by. Then DeleteStack, and
nothing is left but the data volume's snapshot (its DeletionPolicy) and the assets bucket as uploaded.
"""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.parse

from tools.local_aws.deploy import (
    REGION,
    bundle_location,
    check,
    clients,
    emulator,
    verify_deployed,
    verify_nothing_left,
)
from workbench import contract
from workbench.aws import CLOUDFORMATION_STACK_TAG
from workbench.snapshots import WORKBENCH_TAG
from workbench.workshop_studio import ContentTree, quick_create_link, template_url, upload

# Shaped like Workshop Studio's: a bucket that is not the deployer's, a prefix that ends in '/'.
ASSETS_BUCKET = "ws-assets-emulated"
ASSETS_PREFIX = "event-0123/assets/"


def quick_create_fields(link: str) -> tuple[str, str, dict[str, str]]:
    """Stack name, template URL and parameters, as the console reads them from the link's fragment."""
    fields = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).fragment.split("?", 1)[1]))
    parameters = {key.removeprefix("param_"): value for key, value in fields.items() if key.startswith("param_")}
    return fields["stackName"], fields["templateURL"], parameters


def tags_of(resource: dict) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}


def round_trip(tree: ContentTree, workbench_name: str) -> float:
    """Upload, CreateStack, checks, DeleteStack, checks, in one emulator; returns the seconds it took."""
    started = time.monotonic()
    with emulator() as endpoint:
        client = clients(endpoint)
        s3, cloudformation = client("s3"), client("cloudformation")
        s3.create_bucket(Bucket=ASSETS_BUCKET)
        key = upload(s3, tree, ASSETS_BUCKET, ASSETS_PREFIX)
        uploaded = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=ASSETS_BUCKET)["Contents"]}
        link = quick_create_link(REGION, template_url(ASSETS_BUCKET, REGION, key), tree.stack_name,
                                 ASSETS_BUCKET, ASSETS_PREFIX)
        stack_name, url, parameters = quick_create_fields(link)
        print(f"$ CreateStack {stack_name} {url} {parameters}", flush=True)
        cloudformation.create_stack(
            StackName=stack_name, TemplateURL=url, Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
        outputs = verify_deployed(endpoint, stack_name)
        print("Checking what only a deploy without the CDK has:")
        verify_no_bootstrap(client, uploaded)
        verify_assets_from_the_prefix(client, stack_name, outputs, workbench_name)

        print(f"$ DeleteStack {stack_name}", flush=True)
        cloudformation.delete_stack(StackName=stack_name)
        volume_id = outputs[contract.DATA_VOLUME_ID]
        print("Checking that nothing of the workbench is left but its data's snapshot and the assets:")
        snapshots = client("ec2").describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume_id]}])
        check([s["State"] for s in snapshots["Snapshots"]] == ["completed"],
              f"the data volume left one snapshot (DeletionPolicy Snapshot) of {volume_id}")
        verify_nothing_left(endpoint, stack_name, volume_id, kept_bucket_prefix=ASSETS_BUCKET,
                            kept_what="the assets bucket")
        check(client("iam").list_roles()["Roles"] == [], "no role left at all")
        check(client("lambda").list_functions()["Functions"] == [], "no Lambda function left")
        after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=ASSETS_BUCKET)["Contents"]}
        check(after == uploaded, f"the assets bucket holds exactly the {len(uploaded)} uploaded objects")
    return time.monotonic() - started


def verify_no_bootstrap(client, uploaded: dict[str, str]) -> None:
    buckets = [b["Name"] for b in client("s3").list_buckets()["Buckets"]]
    check(not [b for b in buckets if b.startswith("cdk-")], "no CDK bootstrap bucket exists")
    check(not [r for r in client("iam").list_roles()["Roles"] if r["RoleName"].startswith("cdk-")],
          "no CDK bootstrap role exists")
    parameters = client("ssm").get_parameters_by_path(Path="/cdk-bootstrap/", Recursive=True)["Parameters"]
    check(parameters == [], "no CDK bootstrap version parameter exists")
    check(all(key.startswith(ASSETS_PREFIX) for key in uploaded), f"every asset is under {ASSETS_PREFIX}")


def verify_assets_from_the_prefix(client, stack_name: str, outputs: dict[str, str], workbench_name: str) -> None:
    ec2, iam, s3 = client("ec2"), client("iam"), client("s3")
    instance_id = outputs[contract.INSTANCE_ID]
    bucket, key, _ = bundle_location(ec2, instance_id)
    check(bucket == ASSETS_BUCKET and key.startswith(ASSETS_PREFIX) and "/" not in key[len(ASSETS_PREFIX):],
          f"the box fetches its bundle from the assets bucket under the prefix: s3://{bucket}/{key}")

    (instance,) = [i for r in ec2.describe_instances(InstanceIds=[instance_id])["Reservations"] for i in r["Instances"]]
    profile = instance["IamInstanceProfile"]["Arn"].rsplit("/", 1)[1]
    (role,) = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]
    statements = [statement
                  for name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
                  for statement in iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)
                  ["PolicyDocument"]["Statement"]]
    on_assets = [s for s in statements if ASSETS_BUCKET in str(s["Resource"])]
    check([(s["Action"], s["Resource"]) for s in on_assets] == [("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}")],
          "the instance role may read exactly that object of the assets bucket, nothing else there")

    # The custom resources' handlers: moto reads a function's code from S3 at create and keeps its sha256.
    resources = client("cloudformation").list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    functions = [r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::Lambda::Function"]
    assets = {hashlib.sha256(s3.get_object(Bucket=ASSETS_BUCKET, Key=o["Key"])["Body"].read()).digest()
              for o in s3.list_objects_v2(Bucket=ASSETS_BUCKET, Prefix=ASSETS_PREFIX)["Contents"]}
    shas = [base64.b64decode(client("lambda").get_function(FunctionName=f)["Configuration"]["CodeSha256"])
            for f in functions]
    check(len(functions) == 2 and all(sha in assets for sha in shas),
          f"the {len(functions)} custom-resource handlers' code is assets under the prefix")

    check({WORKBENCH_TAG: workbench_name, CLOUDFORMATION_STACK_TAG: stack_name}.items()
          <= tags_of(instance).items(),
          f"the instance carries {WORKBENCH_TAG}={workbench_name} (the participant policy's condition) and its stack")
    secret = client("secretsmanager").describe_secret(SecretId=outputs[contract.SECRET_ARN])
    check(tags_of(secret).get(WORKBENCH_TAG) == workbench_name,
          f"the seed's secret carries {WORKBENCH_TAG}={workbench_name} (the participant policy's condition)")
