"""What `make deploy` and `workbench status` say about Bedrock's first-use steps, per model.

Bedrock's answers come through botocore's Stubber, which checks every canned response against
botocore's own model of the Bedrock API (the same one boto3 uses against AWS), so they have
the shape the real service gives. moto has no Bedrock control plane.
"""

import boto3
from botocore.stub import Stubber

from workbench import bedrock_access
from workbench.settings import Model

SONNET = Model("claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1")
NOVA = Model("nova", "amazon.nova-pro-v1:0", "us-east-1")


class StubbedSession:
    def __init__(self):
        self.client_ = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x",
                                             region_name="us-east-1").client("bedrock")
        self.stubber = Stubber(self.client_)

    def client(self, service, region_name=None):
        assert service == "bedrock"
        return self.client_


def availability(model_id, entitlement="AVAILABLE", agreement="AVAILABLE", region="AVAILABLE"):
    return {"modelId": model_id, "agreementAvailability": {"status": agreement},
            "authorizationStatus": "AUTHORIZED", "entitlementAvailability": entitlement,
            "regionAvailability": region}


def test_a_subscribed_model_with_the_form_on_record_is_ready():
    session = StubbedSession()
    session.stubber.add_response("get_use_case_for_model_access", {"formData": b"{}"})
    session.stubber.add_response("get_foundation_model_availability",
                                 availability("anthropic.claude-sonnet-4-5-20250929-v1:0"),
                                 {"modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0"})
    with session.stubber:
        (result,) = bedrock_access.check_all(session, [SONNET])
    assert (result.ready, result.detail) == (True, "ready")


def test_a_missing_subscription_and_form_are_named_with_the_commands_that_fix_them():
    session = StubbedSession()
    session.stubber.add_client_error("get_use_case_for_model_access", "ResourceNotFoundException", http_status_code=404)
    session.stubber.add_response("get_foundation_model_availability", availability(
        "anthropic.claude-sonnet-4-5-20250929-v1:0", entitlement="NOT_AVAILABLE", agreement="NOT_AVAILABLE"))
    lines = []
    with session.stubber:
        (result,) = bedrock_access.report(session, [SONNET], lines.append)
    assert result.ready is False
    (line,) = lines
    assert line.startswith("bedrock: claude-sonnet-4-5 (us.anthropic.claude-sonnet-4-5-20250929-v1:0): the account "
                           "has no Marketplace subscription yet (agreement NOT_AVAILABLE)")
    assert ("aws bedrock create-foundation-model-agreement --model-id anthropic.claude-sonnet-4-5-20250929-v1:0 "
            "--offer-token <offerToken> --region us-east-1") in line
    assert "Anthropic's one-time use-case form is not on record" in line


def test_no_form_is_asked_for_a_model_that_is_not_anthropics():
    session = StubbedSession()
    session.stubber.add_response("get_foundation_model_availability", availability("amazon.nova-pro-v1:0"))
    with session.stubber:
        (result,) = bedrock_access.check_all(session, [NOVA])
    assert result.ready is True


def test_a_check_the_caller_may_not_make_is_unknown_not_a_failure():
    session = StubbedSession()
    session.stubber.add_client_error("get_use_case_for_model_access", "AccessDeniedException", http_status_code=403)
    session.stubber.add_client_error("get_foundation_model_availability", "AccessDeniedException",
                                     http_status_code=403)
    with session.stubber:
        (result,) = bedrock_access.check_all(session, [SONNET])
    assert result.ready is None
    assert result.detail.startswith("cannot check (AccessDeniedException: your identity needs "
                                    "bedrock:GetFoundationModelAvailability)")
