"""Helpers the tests share: hostile setting values, the app synthesized once per configuration, an
image for moto's EC2."""

import json
import re
from functools import cache

from aws_cdk.assertions import Template

import app as cdk_app

ACCOUNT = "123456789012"
REGION = "us-east-1"
PINNED_IMAGE = "ami-0123456789abcdef0"

# Values that would run a command, end a quoted word or start a new line in a file a shell
# or Docker reads. `a'$(touch${IFS}/tmp/x)'@x.io` once got through as the admin email.
HOSTILE_VALUES = [
    "a'$(touch${IFS}/tmp/x)'@x.io",
    "x`id`",
    "x$(id)",
    "x;id",
    'x"y',
    "x'y",
    "x y",
    "default\n",
    "x\nEVIL=1",
    "x\rEVIL=1",
]


def pinned_context(architecture: str = "arm64") -> dict:
    """What `cdk deploy` records in cdk.context.json after its lookups."""
    parameter = f"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-{architecture}"
    return {
        f"availability-zones:account={ACCOUNT}:region={REGION}": [f"{REGION}a", f"{REGION}b"],
        f"ssm:account={ACCOUNT}:parameterName={parameter}:region={REGION}": PINNED_IMAGE,
    }


@cache
def synth(context_json: str = "{}", account: str | None = None, region: str | None = None) -> dict:
    """Synthesizes the real app (cdk-nag included) and returns {stack name: template JSON}."""
    app = cdk_app.create_app(json.loads(context_json), account=account, region=region)
    assembly = app.synth()
    return {stack.stack_name: stack.template for stack in assembly.stacks}


def template_of(context: dict | None = None, **env) -> Template:
    templates = synth(json.dumps(context or {}, sort_keys=True), **env)
    (template,) = templates.values()
    return Template.from_json(template)


def moto_image_id(ec2) -> str:
    """An image moto's EC2 has by default, for run_instances: the first of its list
    (moto/ec2/resources/amis.json), the one `describe_images()["Images"][0]` also returns. Asked for
    by id, because listing all 1301 of them costs moto 4-20 s of response serialization per call."""
    from moto.ec2.models.amis import AMIS

    (image,) = ec2.describe_images(ImageIds=[AMIS[0]["ami_id"]])["Images"]
    return image["ImageId"]


# What EC2 accepts in a security group's description and its rules' (EC2 API reference, CreateSecurityGroup
# GroupDescription and IpRange/UserIdGroupPair Description): "a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*".
# moto does not check it, so the emulator round trips would not show a refused one.
EC2_DESCRIPTION = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}$")


def security_group_descriptions(template: dict) -> list[str]:
    """Every description of a security group or a rule in the template."""
    found = []
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            found.append(properties["GroupDescription"])
            found += [rule["Description"] for key in ("SecurityGroupIngress", "SecurityGroupEgress")
                      for rule in properties.get(key, []) if "Description" in rule]
        elif resource["Type"] in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
            found += [properties["Description"]] if "Description" in properties else []
    return found
