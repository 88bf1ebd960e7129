#!/usr/bin/env bash
# Boot script of the team gateway's ClickHouse host (Amazon Linux 2023, arm64 or x86_64).
#
# Mounts the data volume, installs Docker with Docker's data on that volume, writes ClickHouse's
# env file from its own secret, starts ClickHouse with Docker Compose, waits until it is
# healthy, then signals the stack's wait condition: success with timings, or failure naming the
# phase and the tail of its output. The user data writes /etc/workbench/deployment.env, the
# compose file (/etc/workbench/clickhouse/) and the env template (/etc/workbench/env-templates/),
# installs this file as /usr/local/sbin/workbench-clickhouse-boot and runs it. Running it again
# changes nothing that is already in place and signals a wait handle only once.
#
# Modes: (none) boot and signal; --rerun-user-data (cloud-init's per-boot hook, see
# install_per_boot_hook). Self-contained: this host has no bundle, no coding user, no /home.
set -Eeuo pipefail

ROOT=${WORKBENCH_ROOT:-}  # tests run the script inside a sandbox directory
DEPLOYMENT_ENV=$ROOT/etc/workbench/deployment.env
COMPOSE_FILE=$ROOT/etc/workbench/clickhouse/compose.yaml
SYSTEM_LOGS_XML=$ROOT/etc/workbench/clickhouse/clickhouse-system-logs.xml
ENV_TEMPLATE=$ROOT/etc/workbench/env-templates/clickhouse.env
ENV_FILE=$ROOT/etc/workbench/env/clickhouse.env
STATE_DIR=$ROOT/var/lib/workbench
SYSTEMD_DIR=$ROOT/etc/systemd/system
COMPOSE_PLUGIN=$ROOT/usr/local/lib/docker/cli-plugins/docker-compose
LOG_FILE=$ROOT/var/log/workbench-clickhouse-boot.log
PER_BOOT_HOOK=$ROOT/var/lib/cloud/scripts/per-boot/workbench-clickhouse-boot
INSTALLED_SCRIPT=/usr/local/sbin/workbench-clickhouse-boot
IMDS=http://169.254.169.254
FSTAB=$ROOT/etc/fstab
# The data volume (stacks/data_volume.py): Docker's data-root, so ClickHouse's named volumes.
DATA_MOUNT=$ROOT/var/lib/workbench-data
DATA_LABEL=clickhouse  # an XFS label holds at most 12 characters
PROJECT=clickhouse
SERVICE=clickhouse
REQUIRED_SETTINGS=(DATA_VOLUME_ID AWS_REGION CLICKHOUSE_SECRET_ARN COMPOSE_VERSION COMPOSE_SHA256_X86_64
  COMPOSE_SHA256_AARCH64 AMAZON_LINUX_RELEASE WAIT_HANDLE_URL)
BOOT_DEADLINE_SECONDS=${WORKBENCH_BOOT_DEADLINE_SECONDS:-1680}  # signal before the stack's 30 min
DATA_WAIT_SECONDS=${WORKBENCH_DATA_WAIT_SECONDS:-300}
HEALTH_TIMEOUT_SECONDS=${WORKBENCH_HEALTH_TIMEOUT_SECONDS:-300}
RETRY_ATTEMPTS=${WORKBENCH_RETRY_ATTEMPTS:-3}
RETRY_DELAY_SECONDS=${WORKBENCH_RETRY_DELAY_SECONDS:-10}
# Every attempt of a retried step ends within this; `compose up` waits at most COMPOSE_WAIT_SECONDS
# for the container's healthcheck, inside its own attempt.
ATTEMPT_TIMEOUT_SECONDS=${WORKBENCH_ATTEMPT_TIMEOUT_SECONDS:-300}
COMPOSE_WAIT_SECONDS=$((ATTEMPT_TIMEOUT_SECONDS * 2 / 3))
# Every network call is bounded: no connect may hang, no transfer may outlive an attempt.
CURL=(curl --silent --show-error --connect-timeout 10 --fail)
COMPOSE=(docker compose --project-name "$PROJECT" --file "$COMPOSE_FILE")

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
      : >"$STATE_DIR/last-output"
      return 0
    fi
    ((status == 124)) && echo "(attempt timed out after ${ATTEMPT_TIMEOUT_SECONDS}s)" >>"$STATE_DIR/last-output"
    log "attempt $attempt/$RETRY_ATTEMPTS failed: $*"
    ((attempt < RETRY_ATTEMPTS)) && sleep "$RETRY_DELAY_SECONDS"
  done
  return 1
}

# retry for a command whose output is a secret: its output never touches a file (only its errors
# go to last-output, for the failure reason), it is printed only to the caller's substitution.
retry_secret() {
  local attempt status output
  for ((attempt = 1; attempt <= RETRY_ATTEMPTS; attempt++)); do
    status=0
    output=$(timeout "$ATTEMPT_TIMEOUT_SECONDS" "$@" 2>"$STATE_DIR/last-output") || status=$?
    if ((status == 0)); then
      printf '%s' "$output"
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

# Each deploy that changes what the host runs may give it a new wait handle, so the marker is per
# handle: a reboot with the same handle stays quiet, a redeploy signals.
signal_marker() {
  printf '%s/signalled-%s' "$STATE_DIR" "$(printf '%s' "$WAIT_HANDLE_URL" | sha256sum | cut -c1-16)"
}

# PUT to the wait handle's presigned URL; CloudFormation shows the reason in the stack events.
signal() {
  local status=$1 reason=$2 data=$3 marker
  if [[ -z ${WAIT_HANDLE_URL:-} ]]; then
    log "no WAIT_HANDLE_URL in $DEPLOYMENT_ENV: cannot signal $status: $reason"
    return 0
  fi
  marker=$(signal_marker)
  if [[ -e $marker ]]; then
    log "this deployment's wait handle already has its signal; not signalling $status again"
    return 0
  fi
  python3 -c 'import json, sys; print(json.dumps({"Status": sys.argv[1], "Reason": sys.argv[2], "UniqueId": "clickhouse", "Data": sys.argv[3]}))' \
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

# Writes a root-owned file only when its content changes, so a re-run leaves everything untouched.
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

# cloud-init runs user data on an instance's first boot only. A redeploy that changes the user
# data restarts the instance, so on every later boot this hook (cloud-init's scripts-per-boot)
# fetches the current user data and runs it again.
install_per_boot_hook() {
  install_content "$PER_BOOT_HOOK" 0755 "#!/bin/bash
# Installed by workbench-clickhouse-boot: re-applies this instance's current user data on every boot.
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

phase_preflight() {
  start_phase preflight
  local name missing=() file
  for name in "${REQUIRED_SETTINGS[@]}"; do
    [[ -n ${!name:-} ]] || missing+=("$name")
  done
  ((${#missing[@]} == 0)) || fail "$DEPLOYMENT_ENV does not set ${missing[*]}"
  [[ $DATA_VOLUME_ID =~ ^vol-[0-9a-f]+$ ]] || fail "DATA_VOLUME_ID $DATA_VOLUME_ID is not an EBS volume id"
  for name in COMPOSE_SHA256_X86_64 COMPOSE_SHA256_AARCH64; do
    [[ ${!name} =~ ^[0-9a-f]{64}$ ]] || fail "$name is not a sha256 (64 lower-case hex characters)"
  done
  for file in "$COMPOSE_FILE" "$SYSTEM_LOGS_XML" "$ENV_TEMPLATE"; do
    [[ -s $file ]] || fail "$file is missing or empty (the user data writes it)"
  done
  install_per_boot_hook
  end_phase
}

# CloudFormation attaches the volume once the instance runs, so it may appear after the boot has
# started. On Nitro instances it is an NVMe device whose serial is the volume id (Amazon EBS user
# guide, "Amazon EBS and NVMe"); elsewhere it keeps the attachment's device name.
data_device() {
  local candidate
  for candidate in "$ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${DATA_VOLUME_ID/-/}" \
    "$ROOT/dev/sdf" "$ROOT/dev/xvdf"; do
    [[ -e $candidate ]] && { printf '%s' "$candidate"; return 0; }
  done
  return 1
}

# Formats the volume only when blkid finds no file system on it (a new, blank volume; mkfs.xfs
# without -f still refuses to overwrite one blkid missed). One with data is mounted as it is.
# Before Docker starts: Docker's data-root is on it.
phase_data_volume() {
  start_phase data-volume
  local device fs_type uuid others="" status=0 deadline=$((SECONDS + DATA_WAIT_SECONDS))
  until device=$(data_device); do
    ((SECONDS < deadline)) || fail "the data volume $DATA_VOLUME_ID was not attached within ${DATA_WAIT_SECONDS}s"
    sleep 5
  done
  fs_type=$(blkid -o value -s TYPE "$device") || status=$?
  if ((status == 2)); then  # blkid(8): nothing identified on the device
    mkfs.xfs -L "$DATA_LABEL" "$device" >"$STATE_DIR/last-output" 2>&1 || fail "could not format the data volume $device"
    log "formatted the blank data volume $DATA_VOLUME_ID"
  elif ((status != 0)); then
    fail "blkid could not read the data volume $device (exit status $status)"
  elif [[ $fs_type != xfs ]]; then
    fail "the data volume $DATA_VOLUME_ID holds a file system of type $fs_type, not xfs; leaving it untouched"
  fi
  uuid=$(blkid -o value -s UUID "$device") || fail "blkid found no UUID on the data volume $device"
  mkdir -p "$DATA_MOUNT"
  # One fstab line for the mount point, replaced in place, so a re-run never adds a second.
  [[ -f $FSTAB ]] && others=$(awk -v mp="$DATA_MOUNT" '$2 != mp' "$FSTAB")
  install_content "$FSTAB" 0644 "${others:+$others$'\n'}UUID=$uuid $DATA_MOUNT xfs defaults,nofail 0 2"
  if ! findmnt --mountpoint "$DATA_MOUNT" >/dev/null; then
    mount "$DATA_MOUNT" >"$STATE_DIR/last-output" 2>&1 || fail "could not mount the data volume at $DATA_MOUNT"
  fi
  # A redeploy may have grown the volume; the file system follows.
  xfs_growfs "$DATA_MOUNT" >"$STATE_DIR/last-output" 2>&1 || fail "could not grow the data volume's file system"
  mkdir -p "$DATA_MOUNT/docker"
  log "data volume $DATA_VOLUME_ID ($device) mounted at $DATA_MOUNT"
  end_phase
}

# dnf on the pinned release, as the workbench box does (boot/os-release.sh): /etc/dnf/vars/releasever
# keeps every dnf call on the newer of the image's release and AMAZON_LINUX_RELEASE (dnf never
# downgrades). The host itself is not upgraded (that needs a reboot the box's os-release phase manages).
phase_docker() {
  start_phase docker
  local installed newest arch sha
  installed=$(rpm -q --queryformat '%{VERSION}' system-release) || fail "rpm cannot tell the Amazon Linux release"
  newest=$(printf '%s\n' "$installed" "$AMAZON_LINUX_RELEASE" | sort -V | tail -n 1)
  install_content "$ROOT/etc/dnf/vars/releasever" 0644 "$newest"
  retry dnf install -y docker || fail "dnf could not install docker"
  # Images, containers and volumes on the data volume; Docker never starts without it.
  install_content "$ROOT/etc/docker/daemon.json" 0644 "{\"data-root\": \"$DATA_MOUNT/docker\"}"
  install_content "$SYSTEMD_DIR/docker.service.d/workbench-data.conf" 0644 "[Unit]
RequiresMountsFor=$DATA_MOUNT"
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
    if ! echo "$sha  $COMPOSE_PLUGIN.download" | sha256sum --check --status; then
      rm -f "$COMPOSE_PLUGIN.download"
      fail "Docker Compose $COMPOSE_VERSION download does not match its pinned sha256 $sha"
    fi
    chmod 0755 "$COMPOSE_PLUGIN.download"
    mv "$COMPOSE_PLUGIN.download" "$COMPOSE_PLUGIN"
  fi
  retry systemctl daemon-reload || fail "systemd could not reload its units"
  retry systemctl enable --now docker || fail "docker did not start"
  end_phase
}

phase_config() {
  start_phase config
  local secret_string content name
  # ClickHouse's secret (assets/team/functions/derive_secrets.py): {"CLICKHOUSE_PASSWORD": value}. It goes
  # through variables and pipes only: never an argument (any local user reads those in /proc), a
  # log line or a file other than the env file.
  secret_string=$(retry_secret aws --cli-connect-timeout 10 --cli-read-timeout 60 --region "$AWS_REGION" \
    secretsmanager get-secret-value --secret-id "$CLICKHOUSE_SECRET_ARN" --query SecretString --output text) ||
    fail "cannot read ClickHouse's secret $CLICKHOUSE_SECRET_ARN"
  CLICKHOUSE_PASSWORD=$(printf '%s' "$secret_string" | python3 -c '
import json, sys
try:
    value = json.load(sys.stdin).get("CLICKHOUSE_PASSWORD")
except ValueError:
    sys.exit("the secret string is not JSON")
if not isinstance(value, str) or not value or "\n" in value:
    sys.exit("the secret has no CLICKHOUSE_PASSWORD field")
print(value)' 2>"$STATE_DIR/last-output") || fail "cannot take CLICKHOUSE_PASSWORD from $CLICKHOUSE_SECRET_ARN"
  unset secret_string
  content=$(<"$ENV_TEMPLATE")
  content=${content//"{{CLICKHOUSE_PASSWORD}}"/"$CLICKHOUSE_PASSWORD"}
  if [[ $content =~ \{\{([A-Za-z0-9_]+)\}\} ]]; then
    name=${BASH_REMATCH[1]}
    fail "the template $ENV_TEMPLATE needs $name, which this host does not provide"
  fi
  [[ -d $(dirname "$ENV_FILE") ]] || install -d -m 0700 "$(dirname "$ENV_FILE")"
  install_content "$ENV_FILE" 0600 "$content"
  end_phase
}

phase_service() {
  start_phase service
  retry "${COMPOSE[@]}" pull --quiet || fail "image pull failed for $COMPOSE_FILE"
  # Once, not retried: `up` is all-or-nothing; it recreates the container only when its
  # configuration changed, which is how a redeploy's new settings reach it.
  if ! timeout "$ATTEMPT_TIMEOUT_SECONDS" "${COMPOSE[@]}" up --detach --wait --wait-timeout "$COMPOSE_WAIT_SECONDS" \
    >"$STATE_DIR/last-output" 2>&1; then
    timeout 30 "${COMPOSE[@]}" logs --no-color --tail 10 "$SERVICE" >>"$STATE_DIR/last-output" 2>&1 || true
    fail "docker compose up failed for $COMPOSE_FILE"
  fi
  end_phase
}

# Docker's view of the container's healthcheck: starting, healthy or unhealthy (Docker Engine
# API, ContainerState.Health.Status); empty when no container runs.
container_health() {
  local id
  id=$(timeout 30 "${COMPOSE[@]}" ps --quiet "$SERVICE") && [[ -n $id ]] &&
    timeout 30 docker inspect --format '{{.State.Health.Status}}' "$id"
}

phase_health() {
  start_phase health
  local health="" deadline=$((SECONDS + HEALTH_TIMEOUT_SECONDS))
  until health=$(container_health 2>/dev/null) && [[ $health == healthy ]]; do
    if ((SECONDS >= deadline)); then
      timeout 30 "${COMPOSE[@]}" logs --no-color --tail 15 "$SERVICE" >"$STATE_DIR/last-output" 2>&1 || true
      fail "$SERVICE never became healthy within ${HEALTH_TIMEOUT_SECONDS}s (health: ${health:-no container})"
    fi
    sleep 5
  done
  log "$SERVICE healthy"
  end_phase
}

run_phases() {
  PHASE_SECONDS=()
  phase_preflight
  phase_data_volume
  phase_docker
  phase_config
  phase_service
  phase_health
  local phases
  phases=$(IFS=,; printf '%s' "${PHASE_SECONDS[*]}")
  signal SUCCESS "clickhouse ready in ${SECONDS}s ({$phases})" "{\"time_to_ready_seconds\": $SECONDS, \"phases\": {$phases}}"
}

main() {
  mkdir -p "$STATE_DIR" "$(dirname "$LOG_FILE")"
  chmod 0700 "$STATE_DIR"
  touch "$STATE_DIR/last-output" "$LOG_FILE"
  chmod 0600 "$STATE_DIR/last-output" "$LOG_FILE"
  PHASE=preflight
  if [[ ! -f $DEPLOYMENT_ENV ]]; then
    log "FAILED: phase preflight: $DEPLOYMENT_ENV is missing (the user data writes it); cannot signal without it"
    exit 1
  fi
  chmod 0600 "$DEPLOYMENT_ENV"
  set -a
  # shellcheck source=/dev/null
  source "$DEPLOYMENT_ENV"
  set +a
  case ${1:-} in
    --rerun-user-data) rerun_user_data ;;
    --phases)
      trap 'fail "unexpected error at line $LINENO"' ERR
      run_phases
      return ;;
  esac
  exec > >(tee -a "$LOG_FILE") 2>&1
  log "boot of the team gateway's ClickHouse host started"
  # The phases run under a deadline, so a hung step still ends in a failure signal with its
  # phase rather than in CloudFormation's silent wait-condition timeout.
  local status=0
  timeout "$BOOT_DEADLINE_SECONDS" bash "$0" --phases || status=$?
  if ((status != 0)) && [[ -n ${WAIT_HANDLE_URL:-} ]] && [[ ! -e $(signal_marker) ]]; then
    PHASE=$(cat "$STATE_DIR/phase" 2>/dev/null || echo unknown)
    ((status == 124)) && fail "boot timed out after ${BOOT_DEADLINE_SECONDS}s"
    fail "boot stopped with exit status $status"
  fi
  return "$status"
}

main "$@"
