#!/usr/bin/env bash
# Boot script of an AI Coding Workbench instance (Amazon Linux 2023).
#
# Brings up Langfuse, LiteLLM and VS Code Server, waits until all of them answer, then
# signals the stack's wait condition: success with timings, or failure naming the phase or
# service and the tail of its output. User data installs this file as
# /usr/local/sbin/workbench-boot next to /etc/workbench/deployment.env; running it again
# on a booted box is safe and changes nothing that is already in place.
#
# Modes: (none) boot and signal; --health one "<service> healthy|unhealthy" line per service;
# --logs SERVICE [LINES]; --rerun-user-data (cloud-init's per-boot hook, see install_per_boot_hook).
set -Eeuo pipefail

ROOT=${WORKBENCH_ROOT:-}  # tests run the script inside a sandbox directory
DEPLOYMENT_ENV=$ROOT/etc/workbench/deployment.env
ENV_DIR=$ROOT/etc/workbench/env
INSTALL_DIR=$ROOT/opt/workbench
STATE_DIR=$ROOT/var/lib/workbench
SYSTEMD_DIR=$ROOT/etc/systemd/system
COMPOSE_PLUGIN=$ROOT/usr/local/lib/docker/cli-plugins/docker-compose
LOG_FILE=$ROOT/var/log/workbench-boot.log
PER_BOOT_HOOK=$ROOT/var/lib/cloud/scripts/per-boot/workbench-boot
INSTALLED_SCRIPT=/usr/local/sbin/workbench-boot
IMDS=http://169.254.169.254
BOOT_DEADLINE_SECONDS=${WORKBENCH_BOOT_DEADLINE_SECONDS:-1680}  # signal before the stack's 30 min
HEALTH_TIMEOUT_SECONDS=${WORKBENCH_HEALTH_TIMEOUT_SECONDS:-900}
RETRY_ATTEMPTS=${WORKBENCH_RETRY_ATTEMPTS:-3}
RETRY_DELAY_SECONDS=${WORKBENCH_RETRY_DELAY_SECONDS:-10}
# Every attempt of a retried step ends within this, so three attempts of the slowest step
# still leave the boot's deadline for the health phase and a failure signal that names them.
ATTEMPT_TIMEOUT_SECONDS=${WORKBENCH_ATTEMPT_TIMEOUT_SECONDS:-300}
# Every network call is bounded: no connect may hang, no transfer may outlive an attempt.
CURL=(curl --fail --silent --show-error --connect-timeout 10)
AWS=(aws --cli-connect-timeout 10 --cli-read-timeout 60)
MIN_ROOT_GIB=45
CODE_SERVER_USER=ec2-user
AS_CODE_SERVER_USER=(runuser -u "$CODE_SERVER_USER" -- env HOME="/home/$CODE_SERVER_USER")
PROJECTS=(langfuse litellm)

# Logs go to stderr, so command substitutions capture only the command's own output.
log() { printf '%s [%s] %s\n' "$(date -u +%FT%TZ)" "${PHASE:-boot}" "$*" >&2; }

# Runs a command under ATTEMPT_TIMEOUT_SECONDS, keeping its output for the failure reason;
# retries with a fixed delay.
retry() {
  local attempt status
  for ((attempt = 1; attempt <= RETRY_ATTEMPTS; attempt++)); do
    status=0
    timeout "$ATTEMPT_TIMEOUT_SECONDS" "$@" >"$STATE_DIR/last-output" 2>&1 || status=$?
    if ((status == 0)); then
      cat "$STATE_DIR/last-output"
      # Only a failure's output may go into a signal: a success's may hold a secret.
      : >"$STATE_DIR/last-output"
      return 0
    fi
    ((status == 124)) && echo "(attempt timed out after ${ATTEMPT_TIMEOUT_SECONDS}s)" >>"$STATE_DIR/last-output"
    log "attempt $attempt/$RETRY_ATTEMPTS failed: $*"
    ((attempt < RETRY_ATTEMPTS)) && sleep "$RETRY_DELAY_SECONDS"
  done
  return 1
}

fail() {
  local reason="phase $PHASE: $1"
  if [[ -s $STATE_DIR/last-output ]]; then
    reason+=" | output: $(tail -n 15 "$STATE_DIR/last-output" | tr '\n' ' ')"
  fi
  log "FAILED: $reason"
  signal FAILURE "${reason:0:1000}" "{}"
  exit 1
}

# Each deploy that changes what the box runs gives it a new wait handle (stacks/boot_signal.py),
# so the marker is per handle: a reboot with the same handle stays quiet, a redeploy signals.
signal_marker() {
  printf '%s/signalled-%s' "$STATE_DIR" "$(printf '%s' "$WAIT_HANDLE_URL" | sha256sum | cut -c1-16)"
}

# PUT to the wait handle's presigned URL; CloudFormation shows the reason in the stack events.
signal() {
  local status=$1 reason=$2 data=$3 marker
  marker=$(signal_marker)
  if [[ -e $marker ]]; then
    log "this deployment's wait handle already has its signal; not signalling $status again"
    return 0
  fi
  python3 -c 'import json, sys; print(json.dumps({"Status": sys.argv[1], "Reason": sys.argv[2], "UniqueId": "boot", "Data": sys.argv[3]}))' \
    "$status" "$reason" "$data" >"$STATE_DIR/signal.json"
  retry "${CURL[@]}" --max-time 30 -X PUT -H 'Content-Type:' --data-binary "@$STATE_DIR/signal.json" \
    "$WAIT_HANDLE_URL" >/dev/null || log "could not deliver the $status signal"
  touch "$marker"
  log "signalled $status: $reason"
}

start_phase() {
  PHASE=$1
  PHASE_STARTED=$SECONDS
  printf '%s\n' "$PHASE" >"$STATE_DIR/phase"
  : >"$STATE_DIR/last-output"
  log "started"
}

end_phase() {
  PHASE_SECONDS+=("\"$PHASE\": $((SECONDS - PHASE_STARTED))")
  log "done in $((SECONDS - PHASE_STARTED))s"
}

# Writes a file only when its content changes, so a re-run leaves everything untouched.
install_content() {
  local target=$1 mode=$2 owner=$3 content=$4
  if [[ -f $target ]] && [[ $(<"$target") == "$content" ]]; then
    return 0
  fi
  mkdir -p "$(dirname "$target")"
  (umask 077 && printf '%s\n' "$content" >"$target.tmp")
  chmod "$mode" "$target.tmp"
  chown "$owner" "$target.tmp"
  mv "$target.tmp" "$target"
}

# Fills {{NAME}} placeholders from shell variables; an unknown name is an error.
render() {
  local content name
  content=$(<"$1")
  while [[ $content =~ \{\{([A-Z0-9_]+)\}\} ]]; do
    name=${BASH_REMATCH[1]}
    [[ -n ${!name:-} ]] || fail "template $1 needs $name, which is not set"
    content=${content//"{{$name}}"/"${!name}"}
  done
  printf '%s' "$content"
}

# cloud-init runs user data on an instance's first boot only (scripts-user, per instance). A
# redeploy changes the user data and restarts the box, so on every later boot this hook (run by
# cloud-init's scripts-per-boot) fetches the current user data and runs it again.
install_per_boot_hook() {
  install_content "$PER_BOOT_HOOK" 0755 root:root "#!/bin/bash
# Installed by workbench-boot: re-applies this instance's current user data on every boot.
exec $INSTALLED_SCRIPT --rerun-user-data"
}

# Through IMDSv2; falls back to the installed boot script if the metadata service does not answer.
rerun_user_data() {
  local user_data=$STATE_DIR/user-data header=$STATE_DIR/imds-token-header token
  if token=$(retry "${CURL[@]}" --max-time 10 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
    "$IMDS/latest/api/token") &&
    install_content "$header" 0600 root:root "X-aws-ec2-metadata-token: $token" &&
    retry "${CURL[@]}" --max-time 30 -H "@$header" -o "$user_data" "$IMDS/latest/user-data"; then
    log "running this instance's current user data"
    exec bash "$user_data"
  fi
  log "could not read the user data from the instance metadata service; booting with the installed settings"
  exec "$0"
}

phase_preflight() {
  start_phase preflight
  install_per_boot_hook
  local root_gib
  root_gib=$(df -BG --output=size / | tail -n 1 | tr -dc '0-9')
  ((root_gib >= MIN_ROOT_GIB)) ||
    fail "disk too small: / has ${root_gib} GiB, the workbench needs at least ${MIN_ROOT_GIB} GiB (root_volume_gib)"
  end_phase
}

phase_docker() {
  start_phase docker
  retry dnf install -y docker || fail "dnf could not install docker"
  retry systemctl enable --now docker || fail "docker did not start"
  local arch sha
  arch=$(uname -m)
  case $arch in
    x86_64) sha=$COMPOSE_SHA256_X86_64 ;;
    aarch64) sha=$COMPOSE_SHA256_AARCH64 ;;
    *) fail "unsupported CPU architecture $arch" ;;
  esac
  if ! echo "$sha  $COMPOSE_PLUGIN" | sha256sum --check --status 2>/dev/null; then
    mkdir -p "$(dirname "$COMPOSE_PLUGIN")"
    retry "${CURL[@]}" --location --max-time "$ATTEMPT_TIMEOUT_SECONDS" -o "$COMPOSE_PLUGIN.download" \
      "https://github.com/docker/compose/releases/download/v$COMPOSE_VERSION/docker-compose-linux-$arch" ||
      fail "could not download Docker Compose $COMPOSE_VERSION"
    echo "$sha  $COMPOSE_PLUGIN.download" | sha256sum --check --status ||
      fail "Docker Compose $COMPOSE_VERSION download does not match its pinned sha256 $sha"
    chmod 0755 "$COMPOSE_PLUGIN.download"
    mv "$COMPOSE_PLUGIN.download" "$COMPOSE_PLUGIN"
  fi
  end_phase
}

phase_config() {
  start_phase config
  local download=$STATE_DIR/bundle.zip var key json
  retry "${AWS[@]}" s3 cp --only-show-errors "$BUNDLE_URL" "$download" || fail "could not fetch the bundle $BUNDLE_URL"
  mkdir -p "$INSTALL_DIR"
  python3 -m zipfile -e "$download" "$INSTALL_DIR" >"$STATE_DIR/last-output" 2>&1 || fail "could not unpack the bundle"

  for var in "${!SECRET_ARN_@}"; do
    key=${var#SECRET_ARN_}
    json=$(retry "${AWS[@]}" secretsmanager get-secret-value --secret-id "${!var}" --query SecretString --output text) ||
      fail "cannot read secret $(tr '[:upper:]_' '[:lower:]-' <<<"$key") (${!var})"
    # On stdin, never as an argument: any local user can read a process's arguments in /proc.
    printf -v "$key" '%s' "$(python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["prefix"] + s["random"])' <<<"$json")"
  done

  local template rendered home=$ROOT/home/$CODE_SERVER_USER
  for template in "$INSTALL_DIR"/env/*.env; do
    rendered=$(render "$template")
    install_content "$ENV_DIR/$(basename "$template")" 0600 root:root "$rendered"
  done
  mkdir -p "$home/.config/code-server"
  chown "$CODE_SERVER_USER:$CODE_SERVER_USER" "$home/.config" "$home/.config/code-server"
  rendered=$(render "$INSTALL_DIR/code-server/config.yaml")
  install_content "$home/.config/code-server/config.yaml" 0600 "$CODE_SERVER_USER:$CODE_SERVER_USER" "$rendered"
  end_phase
}

phase_code_server() {
  start_phase code-server
  local arch=amd64
  [[ $(uname -m) == aarch64 ]] && arch=arm64
  if ! rpm -q "code-server-$CODE_SERVER_VERSION" >/dev/null 2>&1; then
    retry "${CURL[@]}" --location --max-time "$ATTEMPT_TIMEOUT_SECONDS" -o "$STATE_DIR/code-server.rpm" \
      "https://github.com/coder/code-server/releases/download/v$CODE_SERVER_VERSION/code-server-$CODE_SERVER_VERSION-$arch.rpm" ||
      fail "could not download code-server $CODE_SERVER_VERSION"
    retry rpm -U --replacepkgs "$STATE_DIR/code-server.rpm" || fail "could not install code-server $CODE_SERVER_VERSION"
  fi
  local extension=saoudrizwan.claude-dev
  if ! timeout 60 "${AS_CODE_SERVER_USER[@]}" code-server --list-extensions --show-versions 2>/dev/null |
    grep -qx "$extension@$CLINE_VERSION"; then
    retry "${AS_CODE_SERVER_USER[@]}" code-server --install-extension "$extension@$CLINE_VERSION" ||
      fail "could not install Cline $CLINE_VERSION from Open VSX"
  fi
  retry systemctl enable --now "code-server@$CODE_SERVER_USER" || fail "code-server did not start"
  end_phase
}

phase_services() {
  start_phase services
  local project unit
  for unit in "$INSTALL_DIR"/systemd/*.service; do
    install_content "$SYSTEMD_DIR/$(basename "$unit")" 0644 root:root "$(<"$unit")"
  done
  retry systemctl daemon-reload || fail "systemd could not reload its units"
  for project in "${PROJECTS[@]}"; do
    retry docker compose --project-directory "$INSTALL_DIR/$project" pull --quiet ||
      fail "image pull failed for the $project project"
  done
  # Reload when already running: `compose up` then recreates only the containers whose
  # configuration changed, which is how a redeploy with new settings reaches the box.
  for project in "${PROJECTS[@]}"; do
    unit=workbench-$project.service
    retry systemctl enable "$unit" || fail "systemd could not enable $unit"
    # Once, not retried: `compose up` is all-or-nothing and systemd bounds it (TimeoutStartSec).
    # systemctl only says that the unit failed; compose's own error is in the unit's journal.
    if ! systemctl reload-or-restart "$unit" >"$STATE_DIR/last-output" 2>&1; then
      journalctl --unit "$unit" --lines 15 --output cat --no-pager >"$STATE_DIR/last-output" 2>&1 || true
      fail "$unit did not start (docker compose up failed)"
    fi
  done
  end_phase
}

# name|URL|what a healthy answer contains|whether it needs the LiteLLM master key
# code-server's /healthz says "alive" only within a minute of a browser's heartbeat and
# "expired" otherwise (src/node/routes/health.ts, heart.ts); either answer means it serves.
HEALTH_CHECKS=(
  "langfuse-web|http://127.0.0.1:3000/api/public/health|OK|"
  "langfuse-worker|http://127.0.0.1:3030/api/health||"
  "litellm|http://127.0.0.1:4000/health/readiness/details|\"db\":\"connected\"|key"
  "litellm-langfuse-callback|http://127.0.0.1:4000/health/readiness/details|LangfuseOtelLogger|key"
  "code-server|http://127.0.0.1:8080/healthz|\"lastHeartbeat\"|"
)

# The tail of one service's log; also what `workbench logs` shows (via `workbench-boot --logs`).
service_logs() {
  local lines=${2:-15}
  case $1 in
    boot) tail -n "$lines" "$LOG_FILE" ;;
    code-server) journalctl -u "code-server@$CODE_SERVER_USER" -n "$lines" --no-pager ;;
    litellm*) docker compose --project-directory "$INSTALL_DIR/litellm" logs --no-color --tail "$lines" "${1%-langfuse-callback}" ;;
    *) docker compose --project-directory "$INSTALL_DIR/langfuse" logs --no-color --tail "$lines" "$1" ;;
  esac
}

# One "<name> healthy|unhealthy" line per check; also what `workbench status` shows (via
# `workbench-boot --health`). The LiteLLM key header was written by the boot's health phase.
health_report() {
  local check name url expect auth answer
  for check in "${HEALTH_CHECKS[@]}"; do
    IFS='|' read -r name url expect auth <<<"$check"
    local curl_args=(--max-time 5)
    [[ $auth == key ]] && curl_args+=(-H "@$STATE_DIR/litellm-auth-header")
    if answer=$("${CURL[@]}" "${curl_args[@]}" "$url" 2>&1) && [[ $answer == *"$expect"* ]]; then
      echo "$name healthy"
    else
      echo "$name unhealthy"
    fi
  done
}

phase_health() {
  start_phase health
  local pending deadline=$((SECONDS + HEALTH_TIMEOUT_SECONDS))
  # In a 0600 file rather than on curl's command line, where any local user could read it.
  install_content "$STATE_DIR/litellm-auth-header" 0600 root:root "Authorization: Bearer $LITELLM_MASTER_KEY"
  while :; do
    mapfile -t pending < <(health_report | awk '$2 != "healthy" {print $1}')
    ((${#pending[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      service_logs "${pending[0]}" >"$STATE_DIR/last-output" 2>&1 || true
      fail "service ${pending[0]} never became healthy within ${HEALTH_TIMEOUT_SECONDS}s (still waiting: ${pending[*]})"
    fi
    sleep 5
  done
  log "all services healthy: ${HEALTH_CHECKS[*]%%|*}"
  end_phase
}

run_phases() {
  PHASE_SECONDS=()
  phase_preflight
  phase_docker
  phase_config
  phase_code_server
  phase_services
  phase_health
  local phases
  phases=$(IFS=,; printf '%s' "${PHASE_SECONDS[*]}")
  signal SUCCESS "workbench ready in ${SECONDS}s ({$phases})" "{\"time_to_ready_seconds\": $SECONDS, \"phases\": {$phases}}"
}

main() {
  mkdir -p "$STATE_DIR" "$(dirname "$LOG_FILE")"
  chmod 0700 "$STATE_DIR"
  set -a
  # shellcheck source=/dev/null
  source "$DEPLOYMENT_ENV"
  set +a
  case ${1:-} in
    --health) health_report; return ;;
    --logs) service_logs "${2:?--logs needs a service name}" "${3:-100}"; return ;;
    --rerun-user-data) rerun_user_data ;;
  esac
  if [[ ${1:-} == --phases ]]; then
    trap 'fail "unexpected error at line $LINENO"' ERR
    run_phases
    return
  fi
  exec > >(tee -a "$LOG_FILE") 2>&1
  log "boot of workbench $WORKBENCH_NAME started"
  # The phases run under a deadline, so a hung step still ends in a failure signal with its
  # phase rather than in CloudFormation's silent wait-condition timeout.
  local status=0
  timeout "$BOOT_DEADLINE_SECONDS" bash "$0" --phases || status=$?
  if ((status != 0)) && [[ ! -e $(signal_marker) ]]; then
    PHASE=$(cat "$STATE_DIR/phase" 2>/dev/null || echo unknown)
    ((status == 124)) && fail "boot timed out after ${BOOT_DEADLINE_SECONDS}s"
    fail "boot stopped with exit status $status"
  fi
  return "$status"
}

main "$@"
