"""A light workbench (`-c gateway=team`): the box's constructs without Langfuse or LiteLLM, in the team
gateway's VPC, reading only its own seed and its person's key on the gateway. Synthesized once for the
module (the real app, cdk-nag included)."""

import json
import re
import tempfile
from pathlib import Path

from stacks.user_data import USER_DATA_LIMIT_BYTES, compressed_boot_script
from tests.helpers import EC2_DESCRIPTION, security_group_descriptions
from tests.stacks.test_workbench_stack import instance_policy_statements, only, render_arn, resources
from tests.userdata.boot_sandbox import Sandbox
from workbench import bundle, contract, settings, team_contract

TEAM = "default"


def imported(key: str) -> dict:
    return {"Fn::ImportValue": team_contract.export_name(TEAM, key)}


def user_data_text(template: dict) -> str:
    return json.dumps(only(template, "AWS::EC2::Instance")["Properties"]["UserData"])


def deployment_env(template: dict) -> dict[str, str]:
    """deployment.env's lines, with each CloudFormation token as its JSON."""
    parts = only(template, "AWS::EC2::Instance")["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else json.dumps(part) for part in parts)
    body = text.split("<<'DEPLOYMENT_ENV'\n", 1)[1].split("\nDEPLOYMENT_ENV\n", 1)[0]
    return dict(line.split("=", 1) for line in body.splitlines())


def test_no_langfuse_litellm_blob_bucket_services_role_or_bedrock(light_json):
    types = {resource["Type"] for resource in light_json["Resources"].values()}
    assert "AWS::S3::Bucket" not in types and "AWS::Lambda::Function" not in types
    assert not [k for k in resources(light_json, "AWS::IAM::Role") if "ServicesRole" in k]
    roles = sorted(resources(light_json, "AWS::IAM::Role"))
    assert len(roles) == 2 and roles[0].startswith("DataSnapshotRole") and roles[1].startswith("WorkbenchRole")
    policies = [r["Properties"]["PolicyDocument"] for r in resources(light_json, "AWS::IAM::Policy").values()]
    actions = {action for document in policies for statement in document["Statement"]
               for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])}
    assert not [a for a in actions if a.startswith(("bedrock:", "sts:", "s3:Put", "s3:List", "s3:Delete"))], actions
    env = deployment_env(light_json)
    assert not {"BLOB_BUCKET", "SERVICES_ROLE_ARN", "COMPOSE_VERSION", "LITELLM_MODEL_NAMES",
                "LANGFUSE_ADMIN_EMAIL"} & set(env)
    assert set(light_json["Outputs"]) >= {"InstanceId", "SecretArn", "DataVolumeId", "BootReport", "VSCodeUrl",
                                          "VSCodePortForwardCommand", contract.TEAM_GATEWAY, contract.USER_SECRET_NAME}
    assert not [name for name in light_json["Outputs"] if "Langfuse" in name or "Bedrock" in name]


def test_the_bundle_the_box_checks_is_the_light_one_without_compose(light_json):
    loaded = settings.load(overrides={"gateway": "team", "name": "alice"})
    with tempfile.TemporaryDirectory() as scratch:
        tree = bundle.render(loaded, Path(scratch) / "tree")
        names = sorted(path.relative_to(tree).as_posix() for path in tree.rglob("*") if path.is_file())
        sha256 = bundle.pack(tree, Path(scratch) / "bundle.zip")
    assert deployment_env(light_json)["BUNDLE_SHA256"] == sha256
    assert "boot/light.sh" in names
    assert not [n for n in names if "compose" in n or n.startswith(("langfuse/", "litellm/", "env/"))], names
    box = bundle.render(settings.load(), Path(tempfile.mkdtemp()) / "tree")
    assert not (box / "boot/light.sh").exists() and (box / "litellm/compose.yaml").exists()


def test_it_joins_the_teams_vpc_and_subnet_by_their_exports(light_json):
    assert "AWS::EC2::VPC" not in {r["Type"] for r in light_json["Resources"].values()}
    group = only(light_json, "AWS::EC2::SecurityGroup")["Properties"]
    assert group["VpcId"] == imported(team_contract.EXPORT_VPC_ID)
    instance = only(light_json, "AWS::EC2::Instance")["Properties"]
    assert instance["NetworkInterfaces"][0]["SubnetId"] == imported(team_contract.EXPORT_SUBNET_ID)
    assert instance["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True  # out through the team's IGW
    volume = only(light_json, "AWS::EC2::Volume")["Properties"]
    assert volume["AvailabilityZone"] == imported(team_contract.EXPORT_SUBNET_AZ)
    assert volume["Size"] == 20 and volume["Encrypted"] and volume["VolumeType"] == "gp3"
    assert deployment_env(light_json)["GATEWAY_URL"] == (
        "'http://" + json.dumps(imported(team_contract.EXPORT_GATEWAY_HOST)) + ":4000'")
    assert light_json["Outputs"][contract.GATEWAY_URL]["Value"] == {
        "Fn::Join": ["", ["http://", imported(team_contract.EXPORT_GATEWAY_HOST), ":4000"]]}


def test_the_security_group_admits_nothing_and_sends_https_and_the_gateways_port_only(light_json):
    group = only(light_json, "AWS::EC2::SecurityGroup")["Properties"]
    assert "SecurityGroupIngress" not in group
    assert not resources(light_json, "AWS::EC2::SecurityGroupIngress")
    # The gateway's port to the team VPC's range, imported from the team stack (a token until deploy).
    assert sorted((rule["CidrIp"] if isinstance(rule["CidrIp"], str) else json.dumps(rule["CidrIp"]),
                   rule["IpProtocol"], rule["FromPort"], rule["ToPort"])
                  for rule in group["SecurityGroupEgress"]) == [
        ("0.0.0.0/0", "tcp", 443, 443), (json.dumps(imported(team_contract.EXPORT_VPC_CIDR)), "tcp", 4000, 4000)]


def test_the_teams_vpc_range_is_the_one_the_team_stack_exports(team_json):
    (vpc_id,) = [key for key, r in team_json["Resources"].items() if r["Type"] == "AWS::EC2::VPC"]
    output = team_json["Outputs"][team_contract.EXPORT_VPC_CIDR]
    assert output["Value"] == {"Fn::GetAtt": [vpc_id, "CidrBlock"]}
    assert output["Export"]["Name"] == team_contract.export_name(TEAM, team_contract.EXPORT_VPC_CIDR)


def test_the_instance_role_reads_its_seed_and_that_persons_user_secret_only(light_json):
    statements = instance_policy_statements(light_json)
    secret_statements = [s for s in statements if any(a.startswith("secretsmanager:") for a in
                                                      (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))]
    assert len(secret_statements) == 1 and secret_statements[0]["Action"] == "secretsmanager:GetSecretValue"
    (seed_id,) = resources(light_json, "AWS::SecretsManager::Secret")
    rendered = sorted(render_arn(r, light_json) for r in secret_statements[0]["Resource"])
    assert rendered == sorted([
        f"arn:<Partition>:secretsmanager:<Region>:<AccountId>:secret:<{seed_id}>",
        "arn:<Partition>:secretsmanager:<Region>:<AccountId>:secret:ai-workbench-team-default/users/alice-??????"])
    # Exactly the add-user command's secret name (workbench/team_contract.py), nothing the pattern could widen to.
    assert team_contract.user_secret_name(TEAM, "alice") == "ai-workbench-team-default/users/alice"
    pattern = re.compile(re.escape("ai-workbench-team-default/users/alice-") + "......$")
    assert pattern.match("ai-workbench-team-default/users/alice-AbCdEf")
    assert not pattern.match("ai-workbench-team-default/users/alice-bob-AbCdEf")
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert "secretsmanager:PutSecretValue" not in actions and not [a for a in actions if a.startswith(("s3:Put",
                                                                                                       "bedrock:"))]


def test_a_small_instance_that_still_stops_itself_and_keeps_imds_closed(light_json):
    instance = only(light_json, "AWS::EC2::Instance")["Properties"]
    assert instance["InstanceType"] == "t4g.large"
    assert instance["InstanceInitiatedShutdownBehavior"] == "stop"
    assert instance["MetadataOptions"] == {"HttpPutResponseHopLimit": 1, "HttpTokens": "required"}
    assert light_json["Parameters"][instance["ImageId"]["Ref"]]["Default"] == (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-arm64")


def test_the_user_data_fits_and_carries_the_light_settings_the_boot_reads(light_json, tmp_path):
    env = deployment_env(light_json)
    assert env["GATEWAY"] == "team" and env["TEAM_NAME"] == TEAM
    assert env["USER_SECRET_ID"] == "ai-workbench-team-default/users/alice"
    assert env["GATEWAY_NETWORK"] == "'" + json.dumps(imported(team_contract.EXPORT_VPC_CIDR)) + "'"
    # The boot's sandbox tests (tests/userdata/test_light_boot.py) run with these same settings.
    sandbox = Sandbox(tmp_path, Path(__file__), light=True)
    assert set(sandbox.deployment) == set(env)
    assert compressed_boot_script().replace("\n", "\\n") in user_data_text(light_json)  # the box's own script
    parts = only(light_json, "AWS::EC2::Instance")["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    handle_id = next(iter(resources(light_json, "AWS::CloudFormation::WaitConditionHandle")))
    literal = sum(len(p.encode()) for p in parts if isinstance(p, str))
    # The box's bounds (tests/stacks/test_workbench_stack.py): the wait handle's URL, then names and imports.
    resolved = sum(1200 if p == {"Ref": handle_id} else 200 for p in parts if not isinstance(p, str))
    assert literal + resolved < USER_DATA_LIMIT_BYTES, literal + resolved


def test_every_security_group_and_rule_description_is_one_ec2_accepts(light_json, default_json):
    for template in (light_json, default_json):
        descriptions = security_group_descriptions(template)
        assert descriptions and [text for text in descriptions if not EC2_DESCRIPTION.fullmatch(text)] == []
