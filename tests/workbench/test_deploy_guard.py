"""The redeploy guard's decision on CloudFormation change sets (shaped as DescribeChangeSet returns them).

Creating the change set needs real CloudFormation: moto answers CreateChangeSet for an update
of this stack with an internal error, so that step is proven only on AWS.
"""

import pytest

from workbench import deploy_guard


def change(resource_type, logical_id, action="Modify", replacement="False", causes=()):
    return {"Type": "Resource", "ResourceChange": {
        "Action": action, "LogicalResourceId": logical_id, "ResourceType": resource_type,
        "Replacement": replacement,
        "Details": [{"Target": {"Attribute": "Properties", "Name": name, "RequiresRecreation": "Always"}}
                    for name in causes],
    }}


def test_harmless_updates_pass():
    changes = [
        change("AWS::EC2::Instance", "WorkbenchInstance6A737DF1", causes=["UserData"]),
        change("AWS::IAM::Policy", "WorkbenchRoleDefaultPolicyAB56C4FD"),
        change("AWS::S3::Bucket", "BlobStorageBucket73980108", causes=["CorsConfiguration"]),
    ]
    assert deploy_guard.dangerous_changes(changes) == []


def test_replacing_the_instance_or_bucket_or_touching_a_secret_is_dangerous():
    changes = [
        change("AWS::EC2::Instance", "WorkbenchInstance6A737DF1", replacement="True", causes=["ImageId"]),
        change("AWS::S3::Bucket", "BlobStorageBucket73980108", action="Remove"),
        change("AWS::SecretsManager::Secret", "SecretsLangfuseEncryptionKeyFF5B66FD",
               causes=["GenerateSecretString"]),
        change("AWS::EC2::Instance", "Other", replacement="Conditional", causes=["SubnetId"]),
    ]
    assert deploy_guard.dangerous_changes(changes) == [
        "AWS::EC2::Instance WorkbenchInstance6A737DF1 would be replaced (because of ImageId)",
        "AWS::S3::Bucket BlobStorageBucket73980108 would be removed",
        "secret SecretsLangfuseEncryptionKeyFF5B66FD would be changed (because of GenerateSecretString)",
        "AWS::EC2::Instance Other would be replaced (because of SubnetId)",
    ]


def test_context_overrides_pick_the_workbench_being_deployed():
    assert deploy_guard.context_overrides(["-c", "name=alice", "--context", "root_volume_gib=200", "--verbose"]) == {
        "name": "alice", "root_volume_gib": "200"}


@pytest.fixture
def planned(monkeypatch):
    plan = {}
    monkeypatch.setattr(deploy_guard, "planned_changes", lambda stack, args: plan.setdefault(stack, None))
    monkeypatch.delenv("ALLOW_DATA_LOSS", raising=False)
    return plan


def test_a_new_stack_or_a_harmless_update_deploys(planned, capsys):
    assert deploy_guard.main(["-c", "name=alice"]) == 0
    assert "ai-workbench-alice is new" in capsys.readouterr().out
    planned["ai-workbench-bob"] = [change("AWS::IAM::Policy", "P")]
    assert deploy_guard.main(["-c", "name=bob"]) == 0


def test_data_loss_stops_the_deploy_unless_allowed(planned, capsys, monkeypatch):
    planned["ai-workbench-default"] = [change("AWS::EC2::Instance", "I", replacement="True", causes=["ImageId"])]
    assert deploy_guard.main([]) == 1
    err = capsys.readouterr().err
    assert "not deploying ai-workbench-default: this update would lose the workbench's data" in err
    assert "  - AWS::EC2::Instance I would be replaced (because of ImageId)" in err
    assert "ALLOW_DATA_LOSS=1" in err
    monkeypatch.setenv("ALLOW_DATA_LOSS", "1")
    assert deploy_guard.main([]) == 0
