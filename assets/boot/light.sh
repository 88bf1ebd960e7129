# shellcheck shell=bash disable=SC2034,SC2154
# Sourced by userdata/boot.sh on a light workbench (GATEWAY=team; only its bundle has this file), after
# the box's own phase files; uses its helpers (start_phase, end_phase, log, fail, retry, install_content,
# enable_idle_stop) and settings. No Docker, no Langfuse, no LiteLLM of its own: Cline calls the team
# gateway's LiteLLM (GATEWAY_URL) with the person's own key, which `workbench team add-user NAME` keeps in
# the Secrets Manager secret USER_SECRET_ID as {"key": "sk-...", "base_url": GATEWAY_URL}.

# The data volume holds /home only (settings.LIGHT_MIN_DATA_VOLUME_GIB, 10 GiB), less XFS's own share.
MIN_DATA_GIB=8
# Cline on the team's LiteLLM; its base URL and key are the team's, set again on every boot.
CLINE_LITELLM_URL=$GATEWAY_URL
CLINE_SEED_MODE=managed
# The metadata firewall (apply_metadata_firewall) needs iptables, which Amazon Linux 2023's image lacks:
# the box gets iptables-nft with Docker, which a light box does not install.
CODING_TOOLS+=(iptables-nft)
# What this box serves: code-server. The gateway is reported (`workbench status`), never waited for.
light_checks=()
for light_check in "${HEALTH_CHECKS[@]}"; do
  if [[ $light_check == code-server\|* ]]; then light_checks+=("$light_check"); fi
done
HEALTH_CHECKS=("${light_checks[@]}")
# LiteLLM's unauthenticated liveness probe answers "I'm alive!" (proxy/health_endpoints/_health_endpoints.py).
CONFIGURATION_CHECKS=("team-gateway|$GATEWAY_URL/health/liveliness|alive|")

# The seed gives code-server's password (and nothing else is used of it here); the person's key on the
# team gateway gives Cline its key. Both on stdin, never as an argument; the key never reaches the log,
# a signal or a file of root's: only Cline's own secrets.json, written by the coding user (seed_cline.py).
phase_light_config() {
  start_phase config
  local secret_string derived user_secret
  secret_string=$(retry "${AWS[@]}" secretsmanager get-secret-value --secret-id "$SECRET_ARN" \
    --query SecretString --output text) || fail "cannot read the workbench's secret $SECRET_ARN"
  derived=$(python3 "$INSTALL_DIR/boot/workbench_secrets.py" <<<"$secret_string" 2>"$STATE_DIR/last-output") ||
    fail "cannot derive the passwords and keys from $SECRET_ARN"
  CODE_SERVER_PASSWORD=$(awk '$1 == "CODE_SERVER_PASSWORD" {print $2}' <<<"$derived")
  if ! user_secret=$(retry "${AWS[@]}" secretsmanager get-secret-value --secret-id "$USER_SECRET_ID" \
    --query SecretString --output text); then
    grep -q ResourceNotFoundException "$STATE_DIR/last-output" &&
      fail "the team gateway $TEAM_NAME has no key for $WORKBENCH_NAME yet: run \`workbench team add-user $WORKBENCH_NAME\`, then deploy again"
    fail "cannot read $WORKBENCH_NAME's key on the team gateway ($USER_SECRET_ID)"
  fi
  # What the add-user command stored; a key for another gateway (or a stale one) is refused by name,
  # and no message carries the key.
  LITELLM_CLINE_KEY=$(python3 -I -c 'import json, re, sys
try:
    value = json.loads(sys.stdin.read())
except ValueError:
    sys.exit("it is not JSON")
key, url = (value.get(name) if isinstance(value, dict) else None for name in ("key", "base_url"))
if not isinstance(key, str) or not re.fullmatch(r"sk-[A-Za-z0-9_-]{8,200}", key):
    sys.exit("its \"key\" is not a LiteLLM key (sk-...)")
if not isinstance(url, str) or url.rstrip("/") != sys.argv[1]:
    sys.exit(f"its base_url {str(url)[:200]!r} is not this team gateway, {sys.argv[1]}")
print(key)' "$GATEWAY_URL" <<<"$user_secret" 2>"$STATE_DIR/last-output") ||
    fail "$USER_SECRET_ID is not a key on this team gateway (run \`workbench team add-user $WORKBENCH_NAME\` again)"
  end_phase
}

# The idle stop only: nothing else runs as a service here but code-server (the code-server phase).
phase_light_services() {
  start_phase services
  local unit
  for unit in "${IDLE_UNITS[@]}"; do
    install_content "$SYSTEMD_DIR/$unit" 0644 "$(<"$INSTALL_DIR/systemd/$unit")"
  done
  retry systemctl daemon-reload || fail "systemd could not reload its units"
  enable_idle_stop
  end_phase
}
