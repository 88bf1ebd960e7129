"""The body of LiteLLM's /key/generate and /key/update for one of the workbench's virtual keys.

Run by the boot script on the box (python3 of Amazon Linux 2023, standard library only):
`litellm_key_request.py ALIAS USER_ID PURPOSE`, the key on stdin, the models and the budget from
deployment.env in the environment; prints the JSON body. Each key is limited to the configured
models, to a budget that resets daily, and to the routes its client calls (ROUTES_BY_ALIAS), so
it cannot manage keys or users (and so cannot mint itself a key without those limits) and cannot
reach LiteLLM's pass-through routes. user_id is who Langfuse shows as the user of the key's traces
(litellm's langfuse_otel: the key's user_id).
"""

import json
import os
import sys

# The routes each key's client calls, and no others. Not LiteLLM's "llm_api_routes" group: in
# 1.108.7 it also holds the pass-through routes (proxy/_types.py, passthrough_routes_wildcard),
# and /langfuse/* forwards with the server's own Langfuse key pair, so any holder of the key could
# read, delete and re-point the whole Langfuse project; /bedrock/* signs with the server's AWS credentials.
# LiteLLM matches each entry exactly or as a prefix up to a "/" (proxy/auth/route_checks.py,
# _route_matches_allowed_route); no LiteLLM route lies below these paths.
ROUTES_BY_ALIAS = {
    # Cline 3.89.2 / CLI 2.18.0 (src/core/api/providers/litellm.ts): GET <base>/v1/model/info
    # (it adds /v1 unless the base URL ends with it) and POST <base>/chat/completions through the
    # OpenAI client. The boot's base URL has no /v1; a user who types one in Cline's settings
    # makes it /v1/chat/completions, the same handler.
    "cline": ["/v1/model/info", "/chat/completions", "/v1/chat/completions"],
    # Langfuse's LLM connection (adapter openai, baseURL http://litellm:4000/v1): the playground,
    # the evaluators and the connection test all POST <baseURL>/chat/completions
    # (v4.16.0, packages/shared/src/server/llm/ai-sdk/providers/openai.ts; the Responses API only if the
    # connection's config opts in, which the boot's does not). It lists no models: the boot gives it
    # customModels.
    "langfuse": ["/v1/chat/completions"],
}

# Cline's per-model limits per minute (settings' cline_limits_per_minute, a workshop room's fair share
# of Bedrock's quotas), as JSON {model: limit}. LiteLLM 1.108.7 folds these fields into the key's
# metadata (key_management_endpoints.py, metadata_json_with_limits), where its rate limiter reads
# them on every request (proxy/auth/auth_utils.py, get_key_model_rpm_limit / get_key_model_tpm_limit).
LIMITS_BY_ALIAS = {"cline": {"model_tpm_limit": "CLINE_MODEL_TPM_LIMIT", "model_rpm_limit": "CLINE_MODEL_RPM_LIMIT"}}

alias, user_id, purpose = sys.argv[1:]
if alias not in ROUTES_BY_ALIAS:
    sys.exit(f"litellm_key_request.py: no route list for a key named {alias!r} (known: {', '.join(ROUTES_BY_ALIAS)})")
# On /key/update an empty mapping removes a limit a previous deploy set (LiteLLM: "IF null or {}
# then no model specific rpm limit"), so a setting taken away reaches the key too.
limits = {field: json.loads(os.environ.get(variable) or "{}")
          for field, variable in LIMITS_BY_ALIAS.get(alias, {}).items()}
print(json.dumps({
    "key": sys.stdin.read().strip(),
    "key_alias": alias,
    "user_id": user_id,
    "models": os.environ["LITELLM_MODEL_NAMES"].split(","),
    "max_budget": float(os.environ["CLINE_BUDGET_USD_PER_DAY"]),
    "budget_duration": "1d",
    "allowed_routes": ROUTES_BY_ALIAS[alias],
    **limits,
    "metadata": {"managed_by": "workbench-boot", "purpose": purpose},
}))
