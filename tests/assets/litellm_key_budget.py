"""LiteLLM custom auth: the stored keys of litellm_stored_key.py, with their spend and daily budget.

With Postgres, LiteLLM reads a key's spend from its row and, before any LLM API call, refuses a
key whose spend has reached its max_budget: virtual_key_max_budget_check, "Check 5" of its
database path (proxy/auth/user_api_key_auth.py, 1.108.7). The custom-auth path does not run that
check, so here it is called on the stored key, whose request may carry the row's "spend". The
refusal Cline sees is LiteLLM's own BudgetExceededError.

The spend of each call is booked as on the box: LiteLLM installs its cost-tracking callback
(ProxyDBLogger) only when it has a database (cost_tracking() in proxy/proxy_server.py), so this
module installs it the same way. The callback books the call's cost into the key's spend counter
(increment_spend_counters) and settles the budget reservation taken at admission; the budget
check reads that counter, or the stored spend where it is higher (get_current_spend). Only the
database rows are not written. Loaded by the proxy from its config's directory, next to litellm_stored_key.py
(general_settings.custom_auth).
"""

import json
import os
from pathlib import Path

import litellm
from litellm.proxy.auth.auth_checks import virtual_key_max_budget_check
from litellm.proxy.auth.route_checks import RouteChecks
from litellm.proxy.hooks.proxy_track_cost_callback import ProxyDBLogger
from litellm_stored_key import user_api_key_auth as stored_key_auth

# The two calls of cost_tracking(), without the collector (off unless LITELLM_COLLECTOR_ENABLED).
litellm.logging_callback_manager.add_litellm_callback(ProxyDBLogger())
litellm.logging_callback_manager.add_litellm_async_success_callback(ProxyDBLogger())


async def user_api_key_auth(request, api_key: str):
    from litellm.proxy.proxy_server import proxy_logging_obj

    token = await stored_key_auth(request, api_key)
    for stored in json.loads(Path(os.environ["WORKBENCH_STORED_KEYS"]).read_text()):
        if stored["key"] == api_key:
            token.spend = stored.get("spend", 0.0)
    if RouteChecks.is_llm_api_route(route=request.url.path):
        await virtual_key_max_budget_check(valid_token=token, proxy_logging_obj=proxy_logging_obj)
    return token
