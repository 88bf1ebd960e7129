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
# --logs SERVICE [LINES]; --rerun-user-data (cloud-init's per-boot hook, see install_per_boot_hook);
# --firewall (workbench-firewall.service, early on every boot, see apply_metadata_firewall).
# The idle stop is the bundle's boot/idle-stop.sh (workbench-idle.timer). Most phases live in the
# bundle too (boot/os-release.sh, data-volume.sh, coding-user.sh, litellm-keys.sh,
# llm-connection.sh; a light workbench's boot/light.sh), sourced once preflight has fetched it and
# checked its hash: this file travels in the user data, which EC2 caps at 16 KiB.
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
CURL_ANY_STATUS=(curl --silent --show-error --connect-timeout 10)
CURL=("${CURL_ANY_STATUS[@]}" --fail)
AWS=(aws --cli-connect-timeout 10 --cli-read-timeout 60)
MIN_ROOT_GIB=10
# The data volume (stacks/data_volume.py, boot/data-volume.sh): Docker's data, /home and the
# seed's copy live here.
DATA_MOUNT=$ROOT/var/lib/workbench-data
# code-server, its terminals and Cline run as this user: no sudo, no docker group, no
# instance metadata (so no instance-role credentials). See README, "Threat model".
CODING_USER=${WORKBENCH_CODING_USER:-coder}
FIREWALL_UNIT=workbench-firewall.service
METADATA_V4=169.254.169.254
METADATA_V6=fd00:ec2::254
# No container reaches the instance metadata service. The ones that use AWS, LiteLLM (Bedrock)
# and Langfuse web and worker (S3), get the services role's short-lived credentials from root's
# endpoint (boot/service_credentials.py) on this host address, at the fixed addresses their
# compose files give them on every network they join; no other container reaches it.
SERVICE_CREDENTIALS_HOST=169.254.170.2
SERVICE_CREDENTIALS_UNIT=workbench-service-credentials.service
SERVICE_CREDENTIAL_CLIENTS=(172.29.0.10 172.29.0.11 172.29.0.12 172.29.1.10 172.29.1.11 172.29.2.10)
# What the coding user's traffic never reaches: the link-local range (the instance metadata
# service, container credential endpoints) and the Docker networks (Postgres, ClickHouse,
# Redis, the services' own addresses). LiteLLM stays reachable at its published port on
# localhost, through Docker's proxy.
CODING_USER_REFUSED_V4=(169.254.0.0/16 172.16.0.0/12)
# Docker's bridges: its default one and every compose network's (br-<network id>).
DOCKER_BRIDGES=(docker0 br-+)
# The services at their fixed addresses (the compose files): the boot's API calls and health
# checks carry the keys there, where no process the coding user starts can listen.
LANGFUSE_WEB=http://172.29.1.10:3000
LANGFUSE_WORKER=http://172.29.1.11:3030
LITELLM=http://172.29.2.10:4000
# Ports below this are root's: the SSM tunnels' targets (Langfuse 3000, its worker's 3030,
# LiteLLM 4000) can never be bound by the coding user, even while their containers are down.
# code-server (8080) and the coding user's own servers (5173, 8000, ...) stay above it.
UNPRIVILEGED_PORT_START=4001
PROJECTS=(langfuse litellm)
IDLE_UNITS=(workbench-idle.service workbench-idle.timer)

# A light workbench (GATEWAY=team): code-server and Cline on the team gateway, its phases in boot/light.sh.
light() { [[ ${GATEWAY:-} == team ]]; }

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
  # The URL from a root-only file: on curl's command line any local user could read it in /proc.
  install_content "$STATE_DIR/wait-handle.curl" 0600 "url = \"$WAIT_HANDLE_URL\""
  retry "${CURL[@]}" --max-time 30 -X PUT -H 'Content-Type:' --data-binary "@$STATE_DIR/signal.json" \
    -K "$STATE_DIR/wait-handle.curl" >/dev/null || log "could not deliver the $status signal"
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

# Writes a root-owned file only when its content changes, so a re-run leaves everything
# untouched. For root's own directories only: in the coding user's home, install_as_coding_user.
# install_content TARGET MODE CONTENT
install_content() {
  local target=$1 mode=$2 content=$3
  if [[ -f $target ]] && [[ $(<"$target") == "$content" ]]; then
    return 0
  fi
  mkdir -p "$(dirname "$target")"
  (umask 077 && printf '%s\n' "$content" >"$target.tmp")
  chmod "$mode" "$target.tmp"
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
  install_content "$PER_BOOT_HOOK" 0755 "#!/bin/bash
# Installed by workbench-boot: re-applies this instance's current user data on every boot.
exec $INSTALLED_SCRIPT --rerun-user-data"
}

# Through IMDSv2; falls back to the installed boot script if the metadata service does not answer.
rerun_user_data() {
  local user_data=$STATE_DIR/user-data header=$STATE_DIR/imds-token-header token
  if token=$(retry "${CURL[@]}" --max-time 10 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
    "$IMDS/latest/api/token") &&
    install_content "$header" 0600 "X-aws-ec2-metadata-token: $token" &&
    retry "${CURL[@]}" --max-time 30 -H "@$header" -o "$user_data" "$IMDS/latest/user-data"; then
    log "running this instance's current user data"
    exec bash "$user_data"
  fi
  log "could not read the user data from the instance metadata service; booting with the installed settings"
  exec "$0"
}

gib_of() {
  df -BG --output=size "$1" | tail -n 1 | tr -dc '0-9'
}

phase_preflight() {
  start_phase preflight
  install_per_boot_hook
  local root_gib download=$STATE_DIR/bundle.zip
  root_gib=$(gib_of /)
  ((root_gib >= MIN_ROOT_GIB)) ||
    fail "disk too small: / has ${root_gib} GiB, the workbench needs at least ${MIN_ROOT_GIB} GiB (root_volume_gib)"
  retry "${AWS[@]}" s3 cp --only-show-errors "$BUNDLE_URL" "$download" || fail "could not fetch the bundle $BUNDLE_URL"
  # The bundle runs as root: only the very one this deploy's template names.
  echo "$BUNDLE_SHA256  $download" | sha256sum --check --status ||
    fail "the bundle $BUNDLE_URL is not the one the template names (sha256 $BUNDLE_SHA256)"
  mkdir -p "$INSTALL_DIR"
  python3 -m zipfile -e "$download" "$INSTALL_DIR" >"$STATE_DIR/last-output" 2>&1 || fail "could not unpack the bundle"
  # The bundle's phases: they share this script's helpers and settings.
  # shellcheck source=assets/boot/os-release.sh
  source "$INSTALL_DIR/boot/os-release.sh"
  # shellcheck source=assets/boot/data-volume.sh
  source "$INSTALL_DIR/boot/data-volume.sh"
  if ! light; then
    # shellcheck source=assets/boot/litellm-keys.sh
    source "$INSTALL_DIR/boot/litellm-keys.sh"
    # shellcheck source=assets/boot/llm-connection.sh
    source "$INSTALL_DIR/boot/llm-connection.sh"
  fi
  # shellcheck source=assets/boot/coding-user.sh
  source "$INSTALL_DIR/boot/coding-user.sh"
  # shellcheck source=assets/boot/light.sh
  if light; then source "$INSTALL_DIR/boot/light.sh"; fi
  end_phase
}

phase_docker() {
  start_phase docker
  retry dnf install -y docker || fail "dnf could not install docker"
  # Images, containers and volumes on the data volume; Docker never starts without it.
  install_content "$ROOT/etc/docker/daemon.json" 0644 "{\"data-root\": \"$DATA_MOUNT/docker\"}"
  install_content "$SYSTEMD_DIR/docker.service.d/workbench-data.conf" 0644 "[Unit]
RequiresMountsFor=$DATA_MOUNT"
  retry systemctl daemon-reload || fail "systemd could not reload its units"
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
  local secret_string derived name value
  # One seed; each password and key is derived from it by the bundle's copy of
  # workbench/secrets.py. On stdin, never as an argument: any local user can read a
  # process's arguments in /proc.
  secret_string=$(retry "${AWS[@]}" secretsmanager get-secret-value --secret-id "$SECRET_ARN" \
    --query SecretString --output text) || fail "cannot read the workbench's secret $SECRET_ARN"
  use_the_datas_seed
  derived=$(python3 "$INSTALL_DIR/boot/workbench_secrets.py" <<<"$secret_string" 2>"$STATE_DIR/last-output") ||
    fail "cannot derive the passwords and keys from $SECRET_ARN"
  while read -r name value; do
    printf -v "$name" '%s' "$value"
  done <<<"$derived"

  retry bash "$INSTALL_DIR/boot/blob-mirror.sh" restore || fail "could not restore Langfuse's media into $BLOB_BUCKET"
  local template
  for template in "$INSTALL_DIR"/env/*.env; do
    install_content "$ENV_DIR/$(basename "$template")" 0600 "$(render "$template")"
  done
  end_phase
}

# The metadata service hands out the instance role's credentials to anyone who asks it. The
# coding user (and so Cline, its terminals and any extension) never reaches it, nor the Docker
# networks, nor binds a port the SSM tunnels lead to; no container reaches the metadata service,
# and only SERVICE_CREDENTIAL_CLIENTS reach the credentials endpoint. Our chains are rebuilt in one atomic
# iptables-restore, so a re-run never leaves a moment without them; the jumps into them
# are added once and stay first. DOCKER-USER is Docker's chain for rules like these: Docker
# keeps its content and jumps to it before its own forwarding rules.
apply_metadata_firewall() {
  local source refused bridge
  sysctl -q -w "net.ipv4.ip_unprivileged_port_start=$UNPRIVILEGED_PORT_START" >/dev/null
  iptables -w -L DOCKER-USER -n >/dev/null 2>&1 || iptables -w -N DOCKER-USER
  iptables -w -C FORWARD -j DOCKER-USER 2>/dev/null || iptables -w -I FORWARD 1 -j DOCKER-USER
  {
    echo '*filter'
    echo ':WORKBENCH-CODING-USER - [0:0]'
    echo ':WORKBENCH-METADATA - [0:0]'
    echo ':WORKBENCH-CREDENTIALS - [0:0]'
    for refused in "${CODING_USER_REFUSED_V4[@]}"; do
      echo "-A WORKBENCH-CODING-USER -d $refused -m owner --uid-owner $CODING_USER -j REJECT"
    done
    for bridge in "${DOCKER_BRIDGES[@]}"; do
      echo "-A WORKBENCH-CODING-USER -o $bridge -m owner --uid-owner $CODING_USER -j REJECT"
    done
    echo "-A WORKBENCH-METADATA -d $METADATA_V4/32 -j REJECT"
    for source in "${SERVICE_CREDENTIAL_CLIENTS[@]}"; do
      echo "-A WORKBENCH-CREDENTIALS -s $source/32 -d $SERVICE_CREDENTIALS_HOST/32 -p tcp --dport 80 -j RETURN"
    done
    # root's own requests on the host (the coding user's never leave OUTPUT, see above).
    echo "-A WORKBENCH-CREDENTIALS -i lo -j RETURN"
    echo "-A WORKBENCH-CREDENTIALS -d $SERVICE_CREDENTIALS_HOST/32 -j REJECT"
    echo 'COMMIT'
  } | iptables-restore -w --noflush
  # IPv6: the metadata endpoint answers there only where it is enabled; closed all the same. The
  # Docker bridges by interface, in both families: newer Docker gives containers IPv6
  # link-local addresses even on IPv4-only networks.
  {
    echo '*filter'
    echo ':WORKBENCH-CODING-USER - [0:0]'
    echo "-A WORKBENCH-CODING-USER -d $METADATA_V6/128 -m owner --uid-owner $CODING_USER -j REJECT"
    for bridge in "${DOCKER_BRIDGES[@]}"; do
      echo "-A WORKBENCH-CODING-USER -o $bridge -m owner --uid-owner $CODING_USER -j REJECT"
    done
    echo 'COMMIT'
  } | ip6tables-restore -w --noflush
  iptables -w -C OUTPUT -j WORKBENCH-CODING-USER 2>/dev/null || iptables -w -I OUTPUT 1 -j WORKBENCH-CODING-USER
  ip6tables -w -C OUTPUT -j WORKBENCH-CODING-USER 2>/dev/null || ip6tables -w -I OUTPUT 1 -j WORKBENCH-CODING-USER
  iptables -w -C DOCKER-USER -j WORKBENCH-METADATA 2>/dev/null || iptables -w -I DOCKER-USER 1 -j WORKBENCH-METADATA
  iptables -w -C INPUT -j WORKBENCH-CREDENTIALS 2>/dev/null ||
    iptables -w -I INPUT 1 -j WORKBENCH-CREDENTIALS
}

phase_services() {
  start_phase services
  local project unit
  for project in "${PROJECTS[@]}"; do
    unit=workbench-$project.service
    install_content "$SYSTEMD_DIR/$unit" 0644 "$(<"$INSTALL_DIR/systemd/$unit")"
  done
  for unit in "${IDLE_UNITS[@]}" "$SERVICE_CREDENTIALS_UNIT"; do
    install_content "$SYSTEMD_DIR/$unit" 0644 "$(<"$INSTALL_DIR/systemd/$unit")"
  done
  retry systemctl daemon-reload || fail "systemd could not reload its units"
  # Before the containers that use it. Restarted only when a redeploy changed the server, its
  # unit or the role; the containers keep their unexpired credentials and read the new token
  # on their next request.
  local credentials_version credentials_running
  credentials_version=$(cat "$INSTALL_DIR/systemd/$SERVICE_CREDENTIALS_UNIT" "$INSTALL_DIR/boot/service_credentials.py" \
    <(echo "$SERVICES_ROLE_ARN") | sha256sum)
  credentials_running=$(cat "$STATE_DIR/service-credentials-version" 2>/dev/null || true)
  retry systemctl enable "$SERVICE_CREDENTIALS_UNIT" || fail "systemd could not enable $SERVICE_CREDENTIALS_UNIT"
  if [[ -n $credentials_running && $credentials_running != "$credentials_version" ]]; then
    retry systemctl restart "$SERVICE_CREDENTIALS_UNIT" || fail "$SERVICE_CREDENTIALS_UNIT did not start"
  else
    retry systemctl start "$SERVICE_CREDENTIALS_UNIT" || fail "$SERVICE_CREDENTIALS_UNIT did not start"
  fi
  install_content "$STATE_DIR/service-credentials-version" 0600 "$credentials_version"
  enable_idle_stop
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

enable_idle_stop() {
  if ((${IDLE_STOP_MINUTES:-0} > 0)); then
    retry systemctl enable --now workbench-idle.timer || fail "systemd could not start workbench-idle.timer"
  else
    retry systemctl disable --now workbench-idle.timer || fail "systemd could not stop workbench-idle.timer"
  fi
}

# name|URL|what a healthy answer contains|the header file it needs (under STATE_DIR)
# code-server's /healthz says "alive" only within a minute of a browser's heartbeat and
# "expired" otherwise (src/node/routes/health.ts, heart.ts); either answer means it serves.
# code-server is asked on localhost: it is the coding user's own server and gets no key.
HEALTH_CHECKS=(
  "langfuse-web|$LANGFUSE_WEB/api/public/health|OK|"
  "langfuse-worker|$LANGFUSE_WORKER/api/health||"
  "litellm|$LITELLM/health/readiness/details|\"db\":\"connected\"|litellm-auth-header"
  "litellm-langfuse-callback|$LITELLM/health/readiness/details|LangfuseOtelLogger|litellm-auth-header"
  "code-server|http://127.0.0.1:8080/healthz|\"lastHeartbeat\"|"
)
# What the boot configures once the services are up; `workbench status` shows these too.
CONFIGURATION_CHECKS=(
  "langfuse-llm-connection|$LANGFUSE_WEB/api/public/llm-connections|\"provider\":\"litellm\"|langfuse-auth-header"
)

# The tail of one service's log; also what `workbench logs` shows (via `workbench-boot --logs`).
service_logs() {
  local lines=${2:-15}
  case $1 in
    boot) tail -n "$lines" "$LOG_FILE" ;;
    code-server) journalctl -u "code-server@$CODING_USER" -n "$lines" --no-pager ;;
    litellm*) docker compose --project-directory "$INSTALL_DIR/litellm" logs --no-color --tail "$lines" "${1%-langfuse-callback}" ;;
    *) docker compose --project-directory "$INSTALL_DIR/langfuse" logs --no-color --tail "$lines" "$1" ;;
  esac
}

# One "<name> healthy|unhealthy" line per check given; `workbench-boot --health` reports all of
# them for `workbench status`. The header files were written by the boot's health phase.
health_report() {
  local check name url expect header answer
  for check in "$@"; do
    IFS='|' read -r name url expect header <<<"$check"
    local curl_args=(--max-time 5)
    [[ -n $header ]] && curl_args+=(-H "@$STATE_DIR/$header")
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
  # In 0600 files rather than on curl's command line, where any local user could read them.
  if ! light; then
    install_content "$STATE_DIR/litellm-auth-header" 0600 "Authorization: Bearer $LITELLM_MASTER_KEY"
    install_content "$STATE_DIR/langfuse-auth-header" 0600 \
      "Authorization: Basic $(printf '%s:%s' "$LANGFUSE_PUBLIC_KEY" "$LANGFUSE_SECRET_KEY" | base64 -w0)"
  fi
  while :; do
    mapfile -t pending < <(health_report "${HEALTH_CHECKS[@]}" | awk '$2 != "healthy" {print $1}')
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

# One call to a service's API with the credentials in a root-only header file (never on a
# command line): api_call HEADER_FILE METHOD URL ANSWER_FILE [JSON_REQUEST_FILE]. The answer's
# body goes to ANSWER_FILE; prints the HTTP status.
api_call() {
  local header=$1 method=$2 url=$3 answer=$4 request=${5:-}
  local args=(--max-time 30 -X "$method" -o "$answer" -w '%{http_code}' -H "@$STATE_DIR/$header")
  [[ -n $request ]] && args+=(-H 'Content-Type: application/json' --data-binary "@$request")
  "${CURL_ANY_STATUS[@]}" "${args[@]}" "$url"
}

# LiteLLM's management API as the operator (the master key).
litellm_api() {
  api_call litellm-auth-header "$1" "$LITELLM$2" "${@:3}"
}

run_phases() {
  PHASE_SECONDS=()
  phase_preflight
  phase_os_release
  phase_data_volume
  if light; then
    phase_light_config
    phase_coding_user
    phase_code_server
    phase_light_services
    phase_health
  else
    phase_config
    phase_docker
    phase_coding_user
    phase_code_server
    phase_services
    phase_health
    phase_litellm_keys
    phase_llm_connection
  fi
  # A box just booted has the whole idle window ahead of it (boot/idle-stop.sh reads this).
  install_content "$STATE_DIR/last-use" 0600 "$EPOCHSECONDS the boot"
  local phases
  phases=$(IFS=,; printf '%s' "${PHASE_SECONDS[*]}")
  signal SUCCESS "workbench ready in ${SECONDS}s ({$phases})" "{\"time_to_ready_seconds\": $SECONDS, \"phases\": {$phases}}"
}

main() {
  mkdir -p "$STATE_DIR" "$(dirname "$LOG_FILE")"
  chmod 0700 "$STATE_DIR"
  # Every step's output passes through last-output (retry): root's alone, whoever holds it open.
  touch "$STATE_DIR/last-output"
  chmod 0600 "$STATE_DIR/last-output"
  # Root's alone: the wait handle's URL (deployment.env) answers for the deploy; the log holds
  # what the services and the coding user's steps printed.
  touch "$LOG_FILE"
  chmod 0600 "$DEPLOYMENT_ENV" "$LOG_FILE"
  set -a
  # shellcheck source=/dev/null
  source "$DEPLOYMENT_ENV"
  set +a
  case ${1:-} in
    --health)
      # shellcheck source=assets/boot/light.sh
      if light; then source "$INSTALL_DIR/boot/light.sh"; fi
      health_report "${HEALTH_CHECKS[@]}" "${CONFIGURATION_CHECKS[@]}"
      # What the boot could not set up in the coding user's home (boot/coding-user.sh empties the
      # file when its phase starts): none yet if that phase never ran.
      if [[ ! -e $STATE_DIR/coding-user-warnings ]]; then echo "coding-user-setup unknown"
      elif [[ -s $STATE_DIR/coding-user-warnings ]]; then echo "coding-user-setup unhealthy"
      else echo "coding-user-setup healthy"; fi
      bash "$INSTALL_DIR/boot/idle-stop.sh" report 2>/dev/null || echo "idle-stop unknown"
      # From the bundle, as the boot's phases are (none before the first boot fetched it).
      # shellcheck source=assets/boot/litellm-keys.sh
      if source "$INSTALL_DIR/boot/litellm-keys.sh" 2>/dev/null; then cline_spend_report
      else echo "cline-spend unknown"; fi
      return ;;
    --logs) service_logs "${2:?--logs needs a service name}" "${3:-100}"; return ;;
    --rerun-user-data) rerun_user_data ;;
    --firewall) apply_metadata_firewall; return ;;
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
