"""LiteLLM custom auth that stands in for LiteLLM's key table, which needs Postgres (offline: no).

With a database, LiteLLM looks a virtual key up by its sha256 and builds UserAPIKeyAuth from the
stored row; here the rows are what /key/generate stores from the boot's requests (the file named
by WORKBENCH_STORED_KEYS holds a JSON list of bodies made by assets/boot/litellm_key_request.py).
Every check after the lookup is LiteLLM's own: with `custom_auth_run_common_checks` and
`enable_post_custom_auth_checks` the proxy runs enforce_key_and_fallback_model_access (the
function its database path calls) and RouteChecks.should_call_route, the key's route check.
Loaded by the proxy from its config's directory (general_settings.custom_auth).
"""

import json
import os
from pathlib import Path

from litellm.proxy._types import UserAPIKeyAuth, hash_token

# The request's fields that LiteLLM keeps in the key's row and reads back on every request.
STORED_FIELDS = ("key_alias", "user_id", "models", "max_budget", "budget_duration", "allowed_routes")
# Request fields that /key/generate folds into the row's metadata, where the rate limiter reads them
# (1.108.7: management_endpoints/key_management_endpoints.py, metadata_json_with_limits).
METADATA_FIELDS = ("model_rpm_limit", "model_tpm_limit")


async def user_api_key_auth(request, api_key: str) -> UserAPIKeyAuth:
    for stored in json.loads(Path(os.environ["WORKBENCH_STORED_KEYS"]).read_text()):
        if api_key == stored["key"]:
            token = hash_token(stored["key"])
            metadata = {**stored["metadata"], **{field: stored[field] for field in METADATA_FIELDS if field in stored}}
            return UserAPIKeyAuth(api_key=token, token=token, spend=0.0, metadata=metadata,
                                  **{field: stored[field] for field in STORED_FIELDS})
    raise Exception("Authentication Error, Invalid proxy server token passed")
