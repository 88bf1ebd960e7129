# shellcheck shell=bash disable=SC2154
# Sourced by userdata/boot.sh (from the bundle, once preflight has fetched it); uses its helpers
# (start_phase, log, fail, litellm_api) and settings.

# One of the workbench's LiteLLM virtual keys (what it may do: boot/litellm_key_request.py).
# Its value is derived from the workbench's secret; created once, then updated on every boot
# so changed settings reach it. LiteLLM stores only the key's sha256, which is how it is
# looked up here. ensure_litellm_key ENV_NAME ALIAS USER_ID PURPOSE
ensure_litellm_key() {
  local key=${!1} alias=$2 user=$3 purpose=$4 status endpoint
  local request=$STATE_DIR/litellm-key-request.json answer=$STATE_DIR/litellm-key-answer.json
  status=$(litellm_api GET "/key/info?key=$(printf '%s' "$key" | sha256sum | cut -c1-64)" "$answer") ||
    fail "LiteLLM's key API did not answer"
  case $status in
    200) endpoint=/key/update
      # A key deleted in LiteLLM's UI still answers, from its archive; it needs creating again.
      python3 -c 'import json, sys; sys.exit(json.load(sys.stdin)["info"].get("status") != "deleted")' <"$answer" &&
        endpoint=/key/generate ;;
    404) endpoint=/key/generate ;;
    *) cp "$answer" "$STATE_DIR/last-output"; fail "LiteLLM answered HTTP $status to /key/info for the $alias key" ;;
  esac
  (umask 077 && python3 "$INSTALL_DIR/boot/litellm_key_request.py" "$alias" "$user" "$purpose" <<<"$key" >"$request")
  status=$(litellm_api POST "$endpoint" "$answer" "$request") || status="no answer"
  rm -f "$request"
  if [[ $status != 200 ]]; then
    cp "$answer" "$STATE_DIR/last-output" 2>/dev/null || true
    fail "LiteLLM refused the $alias key at $endpoint (HTTP $status)"
  fi
  rm -f "$answer"  # a created key's answer holds the key itself
  log "the $alias key: $endpoint done (models $LITELLM_MODEL_NAMES, USD $CLINE_BUDGET_USD_PER_DAY a day)"
}

# Cline's spend since its budget last reset (daily), for `workbench status` and `workbench workshop
# status`: "cline-spend SPEND MAX_BUDGET RESET_AT", or "cline-spend unknown". The key is looked up
# by its sha256, which the keys phase keeps (a hash, not the key).
cline_spend_report() {
  local answer=$STATE_DIR/cline-spend.json status=none
  if [[ -s $STATE_DIR/cline-key-sha256 ]]; then
    status=$(litellm_api GET "/key/info?key=$(<"$STATE_DIR/cline-key-sha256")" "$answer" 2>/dev/null) || status=none
  fi
  if [[ $status == 200 ]]; then
    # info_key_fn (1.108.7) answers the key's row: spend, max_budget, budget_reset_at (ISO 8601 or null).
    python3 -c 'import json, sys; info = json.load(sys.stdin)["info"]
print("cline-spend", float(info["spend"]), info["max_budget"], info.get("budget_reset_at") or "-")' \
      <"$answer" 2>/dev/null || echo "cline-spend unknown"
  else
    echo "cline-spend unknown"
  fi
  rm -f "$answer"
}

phase_litellm_keys() {
  start_phase litellm-keys
  install_content "$STATE_DIR/cline-key-sha256" 0600 "$(printf '%s' "$LITELLM_CLINE_KEY" | sha256sum | cut -c1-64)"
  ensure_litellm_key LITELLM_CLINE_KEY cline "$WORKBENCH_NAME" "Cline in VS Code Server"
  ensure_litellm_key LITELLM_LANGFUSE_KEY langfuse langfuse "Langfuse's playground and evaluators"
  end_phase
}
