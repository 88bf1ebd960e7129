"""Langfuse's PUT and GET /api/public/llm-connections, for the curl stub.

`langfuse_llm_connections.py PUT|GET STATE_FILE ENV_FILE`: ENV_FILE is the langfuse-common.env the boot
wrote, whose LANGFUSE_LLM_CONNECTION_WHITELISTED_HOST the web container would read.

PUT validates the body as Langfuse does and answers 400 with zod's message for anything else:
PutLlmConnectionV1Body in web/src/features/public-api/types/llm-connections.ts (read in langfuse/langfuse at
4.16.0, the newest tag this project could read; the image runs 4.52.0): provider and secretKey non-empty strings,
adapter one of LLMAdapter (packages/shared/src/server/llm/types.ts), baseURL a URL or null, customModels non-empty
strings, withDefaultModels a boolean, extraHeaders strings, config only as the adapter allows (openai:
{useResponsesApi: boolean}); unknown keys are stripped by zod's default object, so they are refused here to keep
the boot's body exact. A private host must be in LANGFUSE_LLM_CONNECTION_WHITELISTED_HOST (baseUrlValidation.ts).
Upsert by provider: 201 when created, 200 when updated, with LlmConnectionResponse. GET answers the list.
"""

import json
import sys
from pathlib import Path
from urllib.parse import urlparse

COMPACT = (",", ":")  # Next.js res.json() writes JSON.stringify's compact form
ADAPTERS = {"anthropic", "openai", "azure", "bedrock", "google-vertex-ai", "google-ai-studio"}
FIELDS = {"provider", "adapter", "secretKey", "baseURL", "customModels", "withDefaultModels", "extraHeaders", "config"}
def whitelisted_hosts(env_file: Path) -> set[str]:
    """As packages/shared/src/env.ts reads it: comma-separated, lower-cased, trimmed."""
    for line in env_file.read_text().splitlines():
        if line.startswith("LANGFUSE_LLM_CONNECTION_WHITELISTED_HOST="):
            return {host.strip().lower() for host in line.split("=", 1)[1].split(",") if host.strip()}
    return set()


def problems(body: dict, allowed_hosts: set[str]) -> list[str]:
    found = [f"unknown field {key}" for key in set(body) - FIELDS]
    for key in ("provider", "secretKey"):
        if not isinstance(body.get(key), str) or not body[key]:
            found.append(f"{key}: expected a non-empty string")
    if body.get("adapter") not in ADAPTERS:
        found.append(f"adapter: Invalid enum value, expected one of {sorted(ADAPTERS)}")
    url = body.get("baseURL")
    if url is not None:
        parsed = urlparse(url) if isinstance(url, str) else None
        if not parsed or parsed.scheme not in ("http", "https") or not parsed.hostname:
            found.append("baseURL: Invalid URL")
        elif parsed.hostname not in allowed_hosts:
            found.append(f"Invalid baseURL: host {parsed.hostname} is not allowed")
    models = body.get("customModels", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        found.append("customModels: expected an array of non-empty strings")
    if not isinstance(body.get("withDefaultModels", True), bool):
        found.append("withDefaultModels: expected a boolean")
    config = body.get("config")
    if config and not (body.get("adapter") == "openai" and set(config) <= {"useResponsesApi"}):
        found.append(f"Config is not supported for {body.get('adapter')} adapter")
    return found


def main(method: str, state: Path, env_file: Path) -> None:
    connections = json.loads(state.read_text()) if state.exists() else {}
    if method == "GET":
        print(json.dumps({"data": list(connections.values()),
                          "meta": {"page": 1, "limit": 50, "totalItems": len(connections), "totalPages": 1}},
                         separators=COMPACT))
        return
    body = json.load(sys.stdin)
    found = problems(body, whitelisted_hosts(env_file))
    if found:
        print(json.dumps({"message": "Invalid request data", "error": found}, separators=COMPACT))
        print(400, file=sys.stderr)
        return
    created = body["provider"] not in connections
    connections[body["provider"]] = {
        "id": f"conn-{body['provider']}", "provider": body["provider"], "adapter": body["adapter"],
        "displaySecretKey": "..." + body["secretKey"][-4:], "baseURL": body.get("baseURL"),
        "customModels": body.get("customModels", []), "withDefaultModels": body.get("withDefaultModels", True),
        "extraHeaderKeys": sorted(body.get("extraHeaders", {})), "config": body.get("config"),
        "createdAt": "2026-11-30T00:00:00.000Z", "updatedAt": "2026-11-30T00:00:00.000Z",
    }
    state.write_text(json.dumps(connections))
    print(json.dumps(connections[body["provider"]], separators=COMPACT))
    print(201 if created else 200, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
