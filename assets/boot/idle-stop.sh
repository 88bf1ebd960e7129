#!/usr/bin/env bash
# Idle stop of an AI Coding Workbench box: `idle-stop.sh report` prints when the box stops itself
# if nobody uses it (`workbench status` shows it, through `workbench-boot --health`);
# `idle-stop.sh check` (workbench-idle.timer, every 5 minutes) records the last use and stops the
# box once idle_stop_minutes have passed without any. The instance's shutdown behaviour is stop,
# so its volume and data stay; `workbench connect` starts it again.
set -euo pipefail

ROOT=${WORKBENCH_ROOT:-}  # tests run the script inside a sandbox directory
STATE_DIR=$ROOT/var/lib/workbench
INSTALL_DIR=$ROOT/opt/workbench
LOG_FILE=$ROOT/var/log/workbench-boot.log
LAST_USE=$STATE_DIR/last-use  # "<epoch seconds> <what>", also written at the end of every boot
# shellcheck source=/dev/null
source "$ROOT/etc/workbench/deployment.env"
MINUTES=${IDLE_STOP_MINUTES:-0}

log() { printf '%s [idle-stop] %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOG_FILE"; }

# The box's signs of use, for boot/idle_rule.py, which decides (and says which counts how).
# SSM sessions: every tunnel of `workbench connect` is one ssm-session-worker. VS Code: the last
# browser heartbeat, /healthz "lastHeartbeat" in ms (code-server's src/node/heart.ts). LiteLLM:
# its spend log's latest "startTime" (litellm-proxy-extras' schema.prisma). A sign that cannot
# be read counts as none (0).
signs_of_use() {
  local sessions=0 booting=0 recorded=0 what="nothing since the boot" heartbeat request
  pgrep -x ssm-session-worker >/dev/null && sessions=1
  pgrep -f -- "workbench-boot --phases" >/dev/null && booting=1
  [[ -s $LAST_USE ]] && read -r recorded what <"$LAST_USE"
  heartbeat=$(curl --fail --silent --connect-timeout 10 --max-time 5 http://127.0.0.1:8080/healthz 2>/dev/null |
    python3 -c 'import json, sys; print(int(json.load(sys.stdin)["lastHeartbeat"]))' 2>/dev/null) || heartbeat=0
  request=$(timeout 30 docker compose --project-directory "$INSTALL_DIR/litellm" exec -T litellm-postgres \
    psql -U litellm -d litellm -tAc 'SELECT coalesce(extract(epoch FROM max("startTime"))::bigint, 0) FROM "LiteLLM_SpendLogs"' \
    2>/dev/null | tr -dc '0-9') || request=0
  echo "$sessions $booting $recorded ${heartbeat:-0} ${request:-0} $what"
}

main() {
  local act=${1:?usage: idle-stop.sh report|check} now=$EPOCHSECONDS last what left
  if ((MINUTES == 0)); then
    echo "idle-stop off"
    return
  fi
  read -r last left what < <(
    # shellcheck disable=SC2046  # the signs are whole numbers, then the words of what was recorded
    python3 "$INSTALL_DIR/boot/idle_rule.py" "$now" "$MINUTES" $(signs_of_use))
  if [[ $act == check ]]; then
    (umask 077 && printf '%s %s\n' "$last" "$what" >"$LAST_USE")
  fi
  if ((left > 0)); then
    echo "idle-stop in $(((left + 59) / 60)) min (last use: $what at $(date -u -d "@$last" +%FT%TZ))"
    return
  fi
  echo "idle-stop now (unused for $(((now - last) / 60)) min; last use: $what)"
  if [[ $act == check ]]; then
    log "nobody has used the box for $(((now - last) / 60)) min (idle_stop_minutes $MINUTES): stopping it"
    # So a snapshot taken while it is stopped holds Langfuse's latest media too; bounded, and
    # never a reason to keep a forgotten box running.
    timeout 600 bash "$INSTALL_DIR/boot/blob-mirror.sh" save >>"$LOG_FILE" 2>&1 ||
      log "could not copy Langfuse's media to the data volume; stopping anyway"
    systemctl poweroff
  fi
}

main "$@"
