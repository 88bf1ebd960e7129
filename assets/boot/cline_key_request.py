"""The body of LiteLLM's /key/generate and /key/update for Cline's virtual key.

Run by the boot script on the box (python3 of Amazon Linux 2023, standard library only): the
key on stdin, the rest from deployment.env in the environment; prints the JSON body. The key
is limited to the configured models, to a budget that resets daily, and to model calls
(LiteLLM's "llm_api_routes": chat completions, model info, ...), so it cannot manage keys or
users and so cannot mint itself a key without those limits. user_id is the workbench's name:
Langfuse shows it as the user of every trace (litellm's langfuse_otel: the key's user_id).
"""

import json
import os
import sys

print(json.dumps({
    "key": sys.stdin.read().strip(),
    "key_alias": "cline",
    "user_id": os.environ["WORKBENCH_NAME"],
    "models": os.environ["LITELLM_MODEL_NAMES"].split(","),
    "max_budget": float(os.environ["CLINE_BUDGET_USD_PER_DAY"]),
    "budget_duration": "1d",
    "allowed_routes": ["llm_api_routes"],
    "metadata": {"managed_by": "workbench-boot", "purpose": "Cline in VS Code Server"},
}))
