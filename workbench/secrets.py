"""The secrets a workbench uses: one source of truth for the stack, the box and the CLI.

CloudFormation generates one random seed inside Secrets Manager, so no value is ever in the
template, the user data or the outputs, and a parked workbench pays for one secret, not one
per value. Every value is derived from the seed under its own name (HMAC-SHA512), so knowing
one value (the coding user knows the VS Code password and Cline's key) reveals no other.

This file also runs on the box, shipped in the bundle: the boot script pipes the secret
string in and reads one "ENV_NAME value" line per secret. It therefore uses only the
standard library of Amazon Linux 2023's python3 (3.9).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import string
import sys
from dataclasses import dataclass

SEED_KEY = "seed"  # the secret string is {"seed": ...}, as CloudFormation generates it
SEED_LENGTH = 64  # letters and digits: about 380 bits
ALPHANUMERIC = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
DOMAIN = "ai-coding-workbench"  # keeps these derivations apart from any other use of the seed


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
    SecretSpec("litellm-master-key", "LiteLLM proxy master key (the operator's; admin API and UI)", 32, prefix="sk-"),
    # Created in LiteLLM by the boot as a virtual key (models and daily budget limited); derived
    # here, so the same key comes back after a reboot or a rebuilt database.
    SecretSpec("litellm-cline-key", "LiteLLM virtual key of Cline (configured models, daily budget)", 32, prefix="sk-"),
    SecretSpec("litellm-langfuse-key", "LiteLLM virtual key of Langfuse's playground and evaluators", 32, prefix="sk-"),
    SecretSpec("litellm-salt-key", "LiteLLM salt key encrypting stored credentials", 32),
    SecretSpec("litellm-db-password", "Password of LiteLLM's Postgres", 32),
    SecretSpec("code-server-password", "Password of VS Code Server", 24),
)

BY_KEY = {spec.key: spec for spec in SECRETS}


def seed_of(secret_string: str) -> str:
    """The seed out of the secret string as Secrets Manager returns it."""
    seed = json.loads(secret_string).get(SEED_KEY)
    if not isinstance(seed, str) or len(seed) != SEED_LENGTH or not set(seed) <= set(ALPHANUMERIC):
        raise ValueError(f"the workbench secret holds no {SEED_LENGTH}-character {SEED_KEY!r}")
    return seed


def derive(seed: str, spec: SecretSpec) -> str:
    """prefix + `length` characters of the spec's alphabet, read off HMAC-SHA512(seed, name)."""
    digest = hmac.new(seed.encode(), f"{DOMAIN}:{spec.key}".encode(), hashlib.sha512).digest()
    number = int.from_bytes(digest, "big")  # 512 bits; the longest value uses 256
    alphabet = HEX if spec.hex_only else ALPHANUMERIC
    characters = []
    for _ in range(spec.length):
        number, index = divmod(number, len(alphabet))
        characters.append(alphabet[index])
    return spec.prefix + "".join(characters)


if __name__ == "__main__":
    secret_seed = seed_of(sys.stdin.read())
    for secret_spec in SECRETS:
        print(secret_spec.env_name, derive(secret_seed, secret_spec))
