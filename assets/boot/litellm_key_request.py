"""The body of LiteLLM's /key/generate and /key/update for one of the workbench's virtual keys.

Run by the boot script on the box (python3 of Amazon Linux 2023, standard library only):
`litellm_key_request.py ALIAS USER_ID PURPOSE`, the key on stdin, the models and the budget from
deployment.env in the environment; prints the JSON body. Each key is limited to the configured
models, to a budget that resets daily, and to model calls (LiteLLM's "llm_api_routes": chat
completions, model info, ...), so it cannot manage keys or users and so cannot mint itself a
key without those limits. user_id is who Langfuse shows as the user of the key's traces
(litellm's langfuse_otel: the key's user_id).
"""

import json
import os
import sys

alias, user_id, purpose = sys.argv[1:]
print(json.dumps({
    "key": sys.stdin.read().strip(),
    "key_alias": alias,
    "user_id": user_id,
    "models": os.environ["LITELLM_MODEL_NAMES"].split(","),
    "max_budget": float(os.environ["CLINE_BUDGET_USD_PER_DAY"]),
    "budget_duration": "1d",
    "allowed_routes": ["llm_api_routes"],
    "metadata": {"managed_by": "workbench-boot", "purpose": purpose},
}))
