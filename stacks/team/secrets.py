"""The team gateway's secrets: a seed like a workbench's, the values derived from it, and the caches' tokens.

ECS hands a task its secrets from Secrets Manager JSON fields at start, so the derived values
(workbench/secrets.py) are written into one secret by a custom resource that runs the same
derivation (assets/team/functions/derive_secrets.py); none is ever in the template.
"""

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from aws_cdk import CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_checkov
from stacks.team.logs import log_group
from workbench import secrets as derivation
from workbench.services import ASSETS

FUNCTIONS = ASSETS / "team" / "functions"
DERIVATION_MODULE = "workbench_secrets.py"  # what derive_secrets.py imports
CACHE_TOKEN_KEY = "password"
# ElastiCache AUTH tokens: 16-128 printable characters without @, " or / (ElastiCache user guide,
# "AUTH token"); letters and digits only here.
CACHE_TOKEN_LENGTH = 64


def custom_resource_function(scope: Construct, construct_id: str, *, handler: str, description: str,
                             timeout: Duration) -> lambda_.Function:
    """A function of assets/team/functions, with the derivation module next to them as on a box
    (workbench/bundle.py)."""
    with tempfile.TemporaryDirectory(prefix="workbench-team-functions-") as scratch:
        tree = Path(scratch) / "functions"
        shutil.copytree(FUNCTIONS, tree, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copyfile(derivation.__file__, tree / DERIVATION_MODULE)
        # The code is staged into the cloud assembly as the function binds it, so the scratch copy can go.
        function = lambda_.Function(
            scope, construct_id,
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(str(tree)),
            handler=handler,
            description=description,
            timeout=timeout,
            log_group=log_group(scope, f"{construct_id}Logs"),
        )
    acknowledge(function, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "AWS's own policy for a function's logs (CreateLogStream, PutLogEvents), which CDK attaches to "
                "every function; its log group is this function's own, kept a month.")
    acknowledge_checkov(function, "CKV_AWS_115", "Runs only when CloudFormation calls it, a few times per deploy; "
                        "a concurrency reservation would only take from the account's pool.")
    acknowledge_checkov(function, "CKV_AWS_116", "Invoked synchronously by CloudFormation, which reports its "
                        "failure in the stack's events; there is no asynchronous event to dead-letter.")
    acknowledge_checkov(function, "CKV_AWS_117", "Calls only AWS APIs (Secrets Manager, ECS); inside the VPC it "
                        "would need a NAT gateway or endpoints, which the team gateway avoids for cost.")
    acknowledge_checkov(function, "CKV_AWS_173", "Its environment holds nothing: the secrets' ARNs arrive as "
                        "the custom resource's properties.")
    return function


class TeamSecrets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, team_name: str) -> None:
        super().__init__(scope, construct_id)
        what = f"AI Coding Workbench team gateway {team_name}"
        self.seed = secretsmanager.Secret(
            self, "Seed",
            description=f"{what}: the seed of its passwords and keys",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({}), generate_string_key=derivation.SEED_KEY,
                password_length=derivation.SEED_LENGTH, exclude_punctuation=True, include_space=False),
            # Langfuse encrypts what it stores with values derived from the seed: a destroy keeps it
            # with the database's final snapshot, which is unreadable without it.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.derived = secretsmanager.Secret(
            self, "Derived",
            description=f"{what}: the values derived from its seed (workbench/secrets.py), one JSON field each",
        )
        # The one value ClickHouse's host needs, apart from the others (derive_secrets.py).
        self.clickhouse = secretsmanager.Secret(
            self, "ClickHouse", description=f"{what}: ClickHouse's password, derived from its seed")
        function = custom_resource_function(
            self, "DeriveFunction", handler="derive_secrets.handler", timeout=Duration.minutes(1),
            description=f"{what}: derives its passwords and keys from the seed into the derived secret")
        self.seed.grant_read(function)
        self.derived.grant_write(function)
        self.clickhouse.grant_write(function)
        derivation_source = Path(derivation.__file__).read_bytes()
        self.derivation = CustomResource(
            self, "Derivation", service_token=function.function_arn,
            properties={"SeedArn": self.seed.secret_arn, "DerivedArn": self.derived.secret_arn,
                        "ClickHouseArn": self.clickhouse.secret_arn,
                        # Derived again when the list of values changes.
                        "DerivationSha256": hashlib.sha256(derivation_source).hexdigest()},
        )
        self.caches = {name: self._cache_token(name, what) for name in ("langfuse-cache", "litellm-cache")}
        for secret in (self.seed, self.derived, self.clickhouse, *self.caches.values()):
            acknowledge(secret, "AwsSolutions-SMG4",
                        "Langfuse and LiteLLM encrypt stored data with values derived from the seed, and the "
                        "caches' tokens are read at task start: a rotation would break decryption and running "
                        "tasks. Rotate by deploying a new team gateway.")
            acknowledge_checkov(secret, "CKV_AWS_149",
                                "Encrypted with Secrets Manager's AWS-managed key; only the gateway's task "
                                "execution role and its functions may read it.")

    def _cache_token(self, name: str, what: str) -> secretsmanager.Secret:
        return secretsmanager.Secret(
            self, f"{name.title().replace('-', '')}Token",
            description=f"{what}: the AUTH token of {name}",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({}), generate_string_key=CACHE_TOKEN_KEY,
                password_length=CACHE_TOKEN_LENGTH, exclude_punctuation=True, include_space=False),
        )
