"""Render the file tree the instance needs from the settings (no secret values in it).

The stack ships this tree zipped (pack) as an S3 asset, and the box checks the download against
the zip's sha256 before it unpacks it as root; `make render OUT=dir` writes the same tree for
review. Files under assets/ are copied, with @{key} placeholders filled from the settings;
{{NAME}} placeholders stay for the boot script to fill on the box with secrets.
"""

from __future__ import annotations

import hashlib
import shutil
import string
import zipfile
from pathlib import Path

import yaml

from workbench import secrets
from workbench.settings import Model, ModelInfo, Settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TEMPLATED_SUFFIXES = {".yaml"}
BOX_SECRETS_MODULE = "boot/workbench_secrets.py"  # where boot.sh runs workbench/secrets.py
# Python's byte-code caches, which the tests that import a box script leave under assets/: no
# part of the bundle, or its hash (and with it the template) would change with every test run.
BYTE_CODE_CACHE = "__pycache__"
# What every zip entry carries in place of the file's own metadata, so the same tree packs to the
# same bytes on any machine: a synth whose files are unchanged leaves the template (and the box)
# alone even when a checkout touched them or gave them its umask's modes.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can carry
ZIP_FILE_MODE = 0o100644  # a regular file, rw-r--r--
ZIP_UNIX = 3  # "made by" Unix: external_attr holds a Unix mode, on whatever system packs it


class SynthTemplate(string.Template):
    """@{key}: distinct from compose's ${VAR} and the boot script's {{NAME}}."""

    delimiter = "@"


LAPTOP_ONLY = "local"
TEAM_ONLY = "team"  # the team gateway's overlay and functions (workbench/services.py, stacks/team)
# What only the box runs (Langfuse and LiteLLM, their environment, the services role's credentials,
# the blob mirror), left out of a light workbench's bundle (gateway: team); and the light workbench's
# own phases (GATEWAY=team in userdata/boot.sh), left out of the box's.
BOX_ONLY = ("langfuse", "litellm", "env", "boot/blob-mirror.sh", "boot/litellm-keys.sh", "boot/llm-connection.sh",
            "boot/litellm_key_request.py", "boot/service_credentials.py", "systemd/workbench-langfuse.service",
            "systemd/workbench-litellm.service", "systemd/workbench-service-credentials.service")
LIGHT_ONLY = ("boot/light.sh",)


def _left_out(relative: Path, settings: Settings) -> bool:
    """Whether this file under assets/ is no part of the bundle of this kind of workbench."""
    if relative.parts[0] in (LAPTOP_ONLY, TEAM_ONLY):
        return True
    other_kinds = BOX_ONLY if settings.is_light else LIGHT_ONLY
    return any(relative.as_posix() == entry or relative.as_posix().startswith(entry + "/") for entry in other_kinds)


def render(settings: Settings, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    values = vars(settings.versions)
    for source in sorted(ASSETS.rglob("*")):
        relative = source.relative_to(ASSETS)
        # assets/local is the laptop's overlay (workbench/local.py), assets/team the team gateway's;
        # neither is the box's.
        if source.is_dir() or BYTE_CODE_CACHE in relative.parts or _left_out(relative, settings):
            continue
        target = out_dir / source.relative_to(ASSETS)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix in TEMPLATED_SUFFIXES:
            target.write_text(SynthTemplate(source.read_text()).substitute(values))
        else:
            shutil.copyfile(source, target)
    if not settings.is_light:
        (out_dir / "litellm" / "config.yaml").write_text(litellm_config(settings))
    # The boot derives the secret values with the same code as the stack and the CLI.
    shutil.copyfile(secrets.__file__, out_dir / BOX_SECRETS_MODULE)
    return out_dir


def pack(tree: Path, archive: Path) -> str:
    """Zips the rendered tree into archive, the same tree always to the same bytes, and returns
    the archive's sha256.

    Stored, not deflated: the bytes of a deflate stream depend on the zlib build (zlib-ng, which
    some distributions ship as their zlib, compresses differently), and the bundle is small.
    """
    tree = Path(tree)
    names = sorted(path.relative_to(tree).as_posix() for path in tree.rglob("*") if path.is_file())
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as out:
        for name in names:
            entry = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            entry.create_system = ZIP_UNIX
            entry.external_attr = ZIP_FILE_MODE << 16
            out.writestr(entry, (tree / name).read_bytes())
    return hashlib.sha256(Path(archive).read_bytes()).hexdigest()


def model_entry(model: Model) -> dict:
    if model.info is None:  # settings always give it; only a stack output's Model lacks it
        raise ValueError(f"model {model.name} has no context window, limits or prices")
    return {
        "model_name": model.name,
        "litellm_params": {"model": f"bedrock/{model.model_id}", "aws_region_name": model.region,
                           **model_prices(model.info)},
        "model_info": model_limits(model.info),
    }


def model_prices(info: ModelInfo) -> dict:
    """LiteLLM's custom pricing (per token), which its spend tracking and budgets count with."""
    per_token = {key: round(usd / 1_000_000, 12) for key, usd in info.usd_per_million_tokens.items()}
    return {
        "input_cost_per_token": per_token["input"],
        "output_cost_per_token": per_token["output"],
        "cache_creation_input_token_cost": per_token["cache_write"],
        "cache_read_input_token_cost": per_token["cache_read"],
    }


def model_limits(info: ModelInfo) -> dict:
    """What /v1/model/info reports besides prices: Cline's context window and prompt caching."""
    return {
        "mode": "chat",
        "max_input_tokens": info.context_window,
        "max_tokens": info.max_output_tokens,
        "max_output_tokens": info.max_output_tokens,
        "supports_prompt_caching": info.prompt_caching,
    }


def litellm_config(settings: Settings) -> str:
    """The box's LiteLLM config: one proxy, its limits, spend and key cache in its own memory."""
    return LITELLM_CONFIG_HEADER + yaml.safe_dump(litellm_config_dict(settings), sort_keys=False)


def team_litellm_config(settings: Settings) -> str:
    """The team gateway's LiteLLM config: the box's, plus one Redis that every task (process) of the
    gateway shares, so that a key's rpm/tpm limits, its budget's spend counter and the eviction of a
    revoked key hold across all of them. Where the Redis is and its password come from the task's
    environment (LITELLM_REDIS_HOST, LITELLM_REDIS_PORT, LITELLM_REDIS_PASSWORD, and LITELLM_REDIS_SSL
    "true" for ElastiCache's in-transit encryption), never from this file. Not REDIS_*: LiteLLM also
    reads those by itself, to build a Redis the config did not ask for (litellm/_redis.py
    _redis_kwargs_from_environment). tests/assets/test_litellm_shared_limits.py runs two proxies
    with it against a real Redis.

    What LiteLLM 1.108.7 reads (paths under litellm/ in the installed package):
    - general_settings.coordination_redis: built into the proxy's "coordination" Redis before any
      cache (proxy/proxy_server.py:5974 _init_coordination_redis; fields proxy/_types.py:2347
      CoordinationRedisParams; `os.environ/` values resolved at proxy_server.py:4966). It is
      attached to the key's spend counters (proxy_server.py:5031 _attach_redis_usage_cache:
      spend_counter_cache, which increment_spend_counter_cache, proxy_server.py:4028, INCRBYFLOATs
      in Redis and the budget check reads back), published as redis_usage_cache
      (proxy_server.py:6395), which the rate limiter counts in (proxy/utils.py:1760
      ProxyLogging.startup_event -> internal_usage_cache; proxy/hooks/parallel_request_limiter_v3.py
      runs its window counters as Lua scripts in that Redis) and over which a key's eviction is
      broadcast to every process (proxy/common_utils/auth_cache_invalidation_pubsub.py,
      publish_auth_cache_invalidation, called by /key/block and /key/update through
      proxy/auth/auth_checks.py:3327 delete_cache_key_object; each process subscribes at
      proxy_server.py:10996, in the background jobs that start only with a database, line 1661).
      Not litellm_settings.cache: that also turns on response caching (proxy_server.py:6421 ->
      init_cache, Cache(**cache_params)): a stored answer for a repeated request instead of a
      call to Bedrock is not the box's behaviour. LiteLLM only borrows the response cache's Redis
      for coordination when no coordination_redis is given (proxy_server.py:6089).
    - general_settings.user_api_key_cache_ttl (proxy_server.py:6846): how long a process serves a
      key's row from its own memory (default 60 s, proxy_server.py:2081). /key/delete in 1.108.7
      evicts the key in the process that served it and in Redis but broadcasts nothing for the key
      itself (proxy/management_endpoints/key_management_endpoints.py:5372), so on the other tasks
      a deleted key works until this TTL ends: it is the bound on revocation by delete.
    Left out: litellm_settings.enable_redis_auth_cache (proxy_server.py:5055) only shares the
    cached key rows to save database reads; eviction across processes works without it.
    general_settings.use_redis_transaction_buffer batches the database's spend writes through
    Redis (proxy/db/db_transaction_queue/redis_update_buffer.py:170); it needs the database, which
    no test here can run.
    """
    config = litellm_config_dict(settings)
    config["general_settings"]["coordination_redis"] = {
        "host": "os.environ/LITELLM_REDIS_HOST", "port": "os.environ/LITELLM_REDIS_PORT",
        "password": "os.environ/LITELLM_REDIS_PASSWORD", "ssl": "os.environ/LITELLM_REDIS_SSL",
    }
    config["general_settings"]["user_api_key_cache_ttl"] = TEAM_KEY_CACHE_SECONDS
    return LITELLM_CONFIG_HEADER + yaml.safe_dump(config, sort_keys=False)


# How long a team gateway task may keep admitting a key deleted through another task (see above).
TEAM_KEY_CACHE_SECONDS = 10
LITELLM_CONFIG_HEADER = "# Generated from workbench.yaml by workbench/bundle.py; edit the settings, not this file.\n"


def litellm_config_dict(settings: Settings) -> dict:
    config = {
        "model_list": [model_entry(model) for model in settings.models],
        "litellm_settings": {
            # OTLP to Langfuse v4's /api/public/otel endpoint; host and keys come from the env file.
            "callbacks": ["langfuse_otel"],
            "drop_params": True,
        },
        "general_settings": {
            "master_key": "os.environ/LITELLM_MASTER_KEY",
            # Cline sends its task id as `litellm_session_id`; "omit" copies it into the request's
            # metadata.session_id, which langfuse_otel exports as session.id (Langfuse's session),
            # and invents none for a request without it (litellm_pre_call_utils.py).
            "missing_session_id": "omit",
        },
    }
    return config


if __name__ == "__main__":
    import sys

    from workbench import settings

    if len(sys.argv) != 2:
        sys.exit("usage: python -m workbench.bundle OUT_DIR")
    print(render(settings.load(), Path(sys.argv[1])))
