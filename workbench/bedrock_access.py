"""Bedrock on first use: what the account still needs before each configured model answers.

Bedrock's model-access page is retired: serverless models are on by default, but the first
call to a third-party model subscribes the account through AWS Marketplace, which only works
if the caller may `aws-marketplace:Subscribe`, `ViewSubscriptions` and `Unsubscribe`;
Anthropic models also need a one-time use-case form per account (AWS Bedrock user guide,
"Request access to models"). Without them LiteLLM passes on Bedrock's AccessDeniedException,
whose message names the missing Marketplace actions.

The instance role gets none of those: they are account-wide, standing purchase rights on an
identity that the agent on the box can reach. The person deploying does the one-time steps
with their own identity; `make deploy` and `workbench status` say, per model, what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import botocore.exceptions

from workbench.settings import Model

ANTHROPIC_PREFIX = "anthropic."


@dataclass(frozen=True)
class ModelAccess:
    model: Model
    ready: bool | None  # None: could not be checked
    detail: str


def check(session, model: Model, anthropic_form_on_record: bool | None) -> ModelAccess:
    """One model's state, from Bedrock's GetFoundationModelAvailability in the model's region."""
    client = session.client("bedrock", region_name=model.region)
    model_id = model.foundation_model_id
    try:
        answer = client.get_foundation_model_availability(modelId=model_id)
    except botocore.exceptions.ClientError as error:
        code = error.response["Error"]["Code"]
        return ModelAccess(model, None, f"cannot check ({code}: your identity needs "
                                        "bedrock:GetFoundationModelAvailability); see README, Bedrock on first use")
    except botocore.exceptions.BotoCoreError as error:
        return ModelAccess(model, None, f"cannot check ({error})")
    missing = []
    if answer["regionAvailability"] != "AVAILABLE":
        missing.append(f"not offered in {model.region}")
    if answer["entitlementAvailability"] != "AVAILABLE" or answer["agreementAvailability"]["status"] != "AVAILABLE":
        status = answer["agreementAvailability"]["status"]
        missing.append(
            f"the account has no Marketplace subscription yet (agreement {status}); subscribe once with your own "
            f"identity: aws bedrock list-foundation-model-agreement-offers --model-id {model_id} --region "
            f"{model.region}, then aws bedrock create-foundation-model-agreement --model-id {model_id} "
            f"--offer-token <offerToken> --region {model.region}"
        )
    if model_id.startswith(ANTHROPIC_PREFIX) and anthropic_form_on_record is False:
        missing.append("Anthropic's one-time use-case form is not on record for this account: submit it in the "
                       "Bedrock console (Model catalog, any Anthropic model) or with "
                       "aws bedrock put-use-case-for-model-access")
    return ModelAccess(model, not missing, "; ".join(missing) or "ready")


def anthropic_form_on_record(session, region: str) -> bool | None:
    """True, False, or None when it cannot be told (no permission, or Bedrock unreachable)."""
    try:
        session.client("bedrock", region_name=region).get_use_case_for_model_access()
    except botocore.exceptions.ClientError as error:
        return False if error.response["Error"]["Code"] == "ResourceNotFoundException" else None
    except botocore.exceptions.BotoCoreError:
        return None
    return True


def check_all(session, models: Iterable[Model]) -> list[ModelAccess]:
    models = list(models)
    anthropic = [m for m in models if m.foundation_model_id.startswith(ANTHROPIC_PREFIX)]
    form = anthropic_form_on_record(session, anthropic[0].region) if anthropic else None
    return [check(session, model, form) for model in models]


def report(session, models: Iterable[Model], say: Callable[[str], None]) -> list[ModelAccess]:
    """One line per model; never stops a deploy (the box boots either way)."""
    results = check_all(session, models)
    for result in results:
        say(f"bedrock: {result.model.name} ({result.model.model_id}): {result.detail}")
    return results
