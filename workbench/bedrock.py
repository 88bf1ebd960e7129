"""Which Bedrock resources a model entry needs permission to invoke.

A cross-region inference profile routes each request to a foundation model in one of its
geography's regions, and IAM checks both the profile and the model in the region that
serves the call. The region lists are the geographies' destination regions; a profile of a
given model uses a subset of them.
"""

from workbench.settings import Model

GEOGRAPHY_REGIONS: dict[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-1", "us-west-2"),
    "us-gov": ("us-gov-east-1", "us-gov-west-1"),
    "ca": ("ca-central-1", "ca-west-1"),
    "eu": ("eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
           "eu-west-1", "eu-west-2", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2",
             "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4"),
    "jp": ("ap-northeast-1", "ap-northeast-3"),
    "au": ("ap-southeast-2", "ap-southeast-4"),
}


def foundation_model_arns(model: Model, partition: str = "aws") -> list[str]:
    geo = model.inference_profile_geo
    fm = model.foundation_model_id
    if geo is None:
        return [f"arn:{partition}:bedrock:{model.region}::foundation-model/{fm}"]
    if geo == "global":
        # Global profiles may serve from any commercial region; IAM names that model without a region.
        return [
            f"arn:{partition}:bedrock:{model.region}::foundation-model/{fm}",
            f"arn:{partition}:bedrock:::foundation-model/{fm}",
        ]
    regions = sorted(set(GEOGRAPHY_REGIONS[geo]) | {model.region})
    return [f"arn:{partition}:bedrock:{region}::foundation-model/{fm}" for region in regions]


def inference_profile_arn(model: Model, account: str, partition: str = "aws") -> str | None:
    if model.inference_profile_geo is None:
        return None
    return f"arn:{partition}:bedrock:{model.region}:{account}:inference-profile/{model.model_id}"
