"""The secrets a workbench generates: one source of truth for the stack, the box and the CLI.

CloudFormation generates every value inside Secrets Manager, so no value is ever in the
template, the user data or the outputs. Each secret holds JSON {"prefix": ..., "random": ...}
(CloudFormation can only generate one random field per secret); the usable value is
prefix + random, e.g. "pk-lf-" + 32 random characters for a Langfuse public key.
"""

from dataclasses import dataclass

HEX_EXCLUDED = "ghijklmnopqrstuvwxyz"  # with upper case and punctuation off, leaves 0-9a-f


@dataclass(frozen=True)
class SecretSpec:
    key: str  # stable id: also the shell/env name on the box, upper-cased
    description: str
    length: int
    hex_only: bool = False
    prefix: str = ""

    @property
    def env_name(self) -> str:
        return self.key.upper().replace("-", "_")

    @property
    def construct_id(self) -> str:
        return "".join(part.capitalize() for part in self.key.split("-"))


SECRETS: tuple[SecretSpec, ...] = (
    SecretSpec("langfuse-salt", "Langfuse SALT for hashing API keys", 32),
    SecretSpec("langfuse-nextauth-secret", "Langfuse NEXTAUTH_SECRET for session cookies", 32),
    # Langfuse decodes ENCRYPTION_KEY as hex: 64 hex characters = 256 bits.
    SecretSpec("langfuse-encryption-key", "Langfuse ENCRYPTION_KEY (64 hex characters)", 64, hex_only=True),
    SecretSpec("langfuse-db-password", "Password of Langfuse's Postgres", 32),
    SecretSpec("clickhouse-password", "Password of Langfuse's ClickHouse", 32),
    SecretSpec("redis-password", "Password of Langfuse's Redis", 32),
    SecretSpec("langfuse-admin-password", "Password of the Langfuse admin user", 24),
    SecretSpec("langfuse-public-key", "Langfuse project public API key", 32, prefix="pk-lf-"),
    SecretSpec("langfuse-secret-key", "Langfuse project secret API key", 32, prefix="sk-lf-"),
    SecretSpec("litellm-master-key", "LiteLLM proxy master key (clients use it as API key)", 32, prefix="sk-"),
    SecretSpec("litellm-salt-key", "LiteLLM salt key encrypting stored credentials", 32),
    SecretSpec("litellm-db-password", "Password of LiteLLM's Postgres", 32),
    SecretSpec("code-server-password", "Password of VS Code Server", 24),
)

BY_KEY = {spec.key: spec for spec in SECRETS}


def secret_value(secret_json: dict) -> str:
    """The usable value of a secret as stored by CloudFormation."""
    return secret_json["prefix"] + secret_json["random"]
