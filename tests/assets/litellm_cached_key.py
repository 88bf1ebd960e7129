"""LiteLLM custom auth: the stored keys of litellm_key_budget.py, looked up through LiteLLM's own key cache.

With Postgres, LiteLLM serves a key's row from user_api_key_cache, and reads the database only on a
miss, then caches the row for user_api_key_cache_ttl (get_key_object and cache_key_object in
proxy/auth/auth_checks.py, 1.108.7). litellm_stored_key.py reads its file on every request, so a
row changed there would take effect at once in every process: a revocation that LiteLLM with a
database does not make. Here the file is read only where LiteLLM reads its database, on a miss of
the same cache, so a process keeps a revoked key as long as LiteLLM would.

Revoking, as LiteLLM's endpoints do after their database write (the file is the test's write):
- POST /workbench-test/key/block: /key/block's cache step, delete_cache_key_object (this
  process's memory and Redis, then a broadcast over Redis to every process);
- POST /workbench-test/key/delete: /key/delete's cache step in delete_verification_tokens,
  user_api_key_cache.delete_cache (this process's memory and Redis only).
A blocked row is refused as LiteLLM's database path refuses it ("base case", user_api_key_auth.py).

LiteLLM starts the process's subscriber to those broadcasts only when it has a database
(start_auth_cache_invalidation_subscriber, in initialize_scheduled_background_jobs); this module
starts it the same way, on the first request, when the proxy has a coordination Redis.
Loaded by the proxy from its config's directory, next to litellm_key_budget.py.
"""

import json
import os
from pathlib import Path

from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth, hash_token
from litellm.proxy.auth.auth_checks import (
    cache_key_object,
    copy_user_api_key_auth_for_cache,
    delete_cache_key_object,
    virtual_key_max_budget_check,
)
from litellm.proxy.auth.route_checks import RouteChecks
from litellm.proxy.proxy_server import app
from litellm_key_budget import stored_key_auth  # importing it installs LiteLLM's cost callback, as on the box


async def user_api_key_auth(request, api_key: str) -> UserAPIKeyAuth:
    from litellm.proxy.proxy_server import proxy_config, proxy_logging_obj, redis_usage_cache, user_api_key_cache

    proxy_config.start_auth_cache_invalidation_subscriber(redis_cache=redis_usage_cache,
                                                          user_api_key_cache=user_api_key_cache)
    hashed = hash_token(api_key)
    cached = await user_api_key_cache.async_get_cache(key=hashed, model_type=UserAPIKeyAuth)
    if cached is not None:
        token = copy_user_api_key_auth_for_cache(user_api_key_obj=cached)
    else:  # the database read
        token = await stored_key_auth(request, api_key)
        row = next(row for row in json.loads(Path(os.environ["WORKBENCH_STORED_KEYS"]).read_text())
                   if row["key"] == api_key)
        token.spend, token.blocked = row.get("spend", 0.0), row.get("blocked")
        await cache_key_object(hashed_token=hashed, user_api_key_obj=token, user_api_key_cache=user_api_key_cache,
                               proxy_logging_obj=proxy_logging_obj)
    if token.blocked is True:
        raise Exception("Key is blocked. Update via `/key/unblock` if you're an admin.")
    if RouteChecks.is_llm_api_route(route=request.url.path):
        await virtual_key_max_budget_check(valid_token=token, proxy_logging_obj=proxy_logging_obj)
    return token


async def block(request: Request) -> dict:
    from litellm.proxy.proxy_server import proxy_logging_obj, user_api_key_cache

    hashed = hash_token((await request.json())["key"])
    await delete_cache_key_object(hashed_token=hashed, user_api_key_cache=user_api_key_cache,
                                  proxy_logging_obj=proxy_logging_obj)
    return {"evicted": hashed}


async def delete(request: Request) -> dict:
    from litellm.proxy.proxy_server import user_api_key_cache

    hashed = hash_token((await request.json())["key"])
    user_api_key_cache.delete_cache(hashed)
    return {"evicted": hashed}


app.add_api_route("/workbench-test/key/block", block, methods=["POST"])
app.add_api_route("/workbench-test/key/delete", delete, methods=["POST"])
