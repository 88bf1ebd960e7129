"""Custom resource: the team gateway's passwords and keys, derived from its seed into one secret.

The same derivation as a workbench's (workbench/secrets.py, shipped next to this file as
workbench_secrets.py), so `workbench credentials` and `workbench team` read the same values. ECS
reads each task's secrets from the derived secret's JSON fields at task start; nothing derived
ever reaches the template or a task definition.
"""

import json
from typing import Any

import boto3
import workbench_secrets as derivation
from custom_resource import answer

CLICKHOUSE_VALUES = ("CLICKHOUSE_PASSWORD",)


def derive(event: dict[str, Any]) -> dict[str, str]:
    if event["RequestType"] == "Delete":  # the derived secret goes with the stack; the seed stays
        return {}
    properties = event["ResourceProperties"]
    client = boto3.client("secretsmanager")
    seed = derivation.seed_of(client.get_secret_value(SecretId=properties["SeedArn"])["SecretString"])
    values = {spec.env_name: derivation.derive(seed, spec) for spec in derivation.SECRETS}
    client.put_secret_value(SecretId=properties["DerivedArn"], SecretString=json.dumps(values))
    # ClickHouse's host reads its password from a secret of its own: the derived one also holds LiteLLM's
    # master key and Langfuse's, which a host running a third-party image has no use for.
    client.put_secret_value(SecretId=properties["ClickHouseArn"], SecretString=json.dumps(
        {name: values[name] for name in CLICKHOUSE_VALUES}))
    return {"Names": ",".join(sorted(values))}


def handler(event: dict[str, Any], context: Any) -> None:
    answer(event, context, derive)
