# shellcheck shell=bash disable=SC2154
# Sourced by userdata/boot.sh (from the bundle, once preflight has fetched it); uses its helpers
# (start_phase, log, fail, api_call, health_report, CONFIGURATION_CHECKS) and settings.

# Langfuse's playground and LLM-as-a-judge evaluators call the models through LiteLLM, with a
# key of their own. PUT /api/public/llm-connections upserts by provider (Langfuse's
# web/src/pages/api/public/llm-connections/index.ts): 201 created, 200 updated.
phase_llm_connection() {
  start_phase llm-connection
  local request=$STATE_DIR/llm-connection-request.json answer=$STATE_DIR/llm-connection-answer.json status
  (umask 077 && python3 -c '
import json, os, sys
print(json.dumps({
    "provider": "litellm",
    "adapter": "openai",
    "secretKey": sys.stdin.read().strip(),
    "baseURL": "http://litellm:4000/v1",
    "customModels": os.environ["LITELLM_MODEL_NAMES"].split(","),
    "withDefaultModels": False,
}))' <<<"$LITELLM_LANGFUSE_KEY" >"$request")
  status=$(api_call langfuse-auth-header PUT "$LANGFUSE_WEB/api/public/llm-connections" \
    "$answer" "$request") || status="no answer"
  rm -f "$request"
  if [[ $status != 200 && $status != 201 ]]; then
    cp "$answer" "$STATE_DIR/last-output" 2>/dev/null || true
    fail "Langfuse refused the LiteLLM connection (HTTP $status)"
  fi
  rm -f "$answer"
  [[ $(health_report "${CONFIGURATION_CHECKS[@]}") == "langfuse-llm-connection healthy" ]] ||
    fail "Langfuse does not list the LiteLLM connection it accepted"
  log "Langfuse's LLM connection to LiteLLM is in place (models $LITELLM_MODEL_NAMES)"
  end_phase
}
