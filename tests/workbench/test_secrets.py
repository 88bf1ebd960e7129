"""workbench/secrets.py: every password and key derived from one seed, the same on the box and in the CLI."""

import json
import string
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import secrets
from workbench.secrets import SECRETS, derive, seed_of

SEED = "S33d" * 16
MODULE = Path(secrets.__file__)


@pytest.mark.parametrize("spec", SECRETS, ids=lambda spec: spec.key)
def test_each_value_has_its_prefix_length_and_alphabet(spec):
    value = derive(SEED, spec)
    assert value.startswith(spec.prefix)
    body = value[len(spec.prefix):]
    assert len(body) == spec.length
    assert set(body) <= set("0123456789abcdef" if spec.hex_only else string.ascii_letters + string.digits)
    assert derive(SEED, spec) == value  # the same seed gives the same value, on every call and machine


def test_values_differ_by_name_and_by_seed():
    values = {derive(SEED, spec) for spec in SECRETS}
    assert len(values) == len(SECRETS)
    other = {derive("x" * 64, spec) for spec in SECRETS}
    assert not values & other


def test_langfuse_encryption_key_is_256_bits_of_hex():
    key = derive(SEED, secrets.BY_KEY["langfuse-encryption-key"])
    assert len(bytes.fromhex(key)) == 32


def test_the_box_gets_the_same_values_from_the_bundled_module():
    """The boot runs this file with the secret string on stdin (userdata/boot.sh, phase config)."""
    result = subprocess.run([sys.executable, str(MODULE)], input=json.dumps({"seed": SEED}),
                            capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.splitlines() == [f"{spec.env_name} {derive(SEED, spec)}" for spec in SECRETS]


@pytest.mark.parametrize("secret_string", [
    json.dumps({"seed": "short"}), json.dumps({"random": SEED}), json.dumps({"seed": SEED[:-1] + "!"}),
])
def test_a_secret_that_is_not_a_seed_is_refused(secret_string):
    with pytest.raises(ValueError, match="holds no 64-character 'seed'"):
        seed_of(secret_string)
