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
CODING_USER=${WORKBENCH_CODING_USER:-coder}
GATEWAY_LITELLM_PORT=4000

log() { printf '%s [idle-stop] %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOG_FILE"; }

# Whether root runs EXE (a path without glob characters: find -lname takes it as a pattern) in the
# box's own mount namespace, with ARG... as the first of its arguments after argv[0]. Each test is
# one the coding user cannot pass: the real uid (a setuid-root program coder starts, `exec -a
# /usr/bin/ssm-session-worker su` waiting for a password, has uid 0 as its effective uid only), the
# program the kernel runs, /proc/PID/exe (argv and the 15-character comm name are the process's
# own to pick), and the mount namespace (a container's root is uid 0 too, and its /usr/bin is its
# own; so workbench-idle.service must not get one of its own, e.g. PrivateTmp=). " (deleted)": the
# program was replaced on disk while running, as a package update does.
root_runs() {
  local exe=$1 own_namespace link process key real_uid argv index
  shift
  own_namespace=$(readlink /proc/$$/ns/mnt)
  while read -r link; do
    process=${link%/exe}
    [[ $(readlink "$process/ns/mnt" 2>/dev/null) == "$own_namespace" ]] || continue
    { while read -r key real_uid _; do [[ $key == Uid: ]] && break; done <"$process/status"; } 2>/dev/null ||
      continue
    [[ $real_uid == 0 ]] || continue
    mapfile -d '' -t argv 2>/dev/null <"$process/cmdline" || continue
    for ((index = 1; index <= $#; index++)); do
      [[ ${argv[index]-} == "${!index}" ]] || continue 2
    done
    return 0
  done < <(find /proc/[0-9]*/exe -maxdepth 0 \( -lname "$exe" -o -lname "$exe (deleted)" \) 2>/dev/null)
  return 1
}

# A light workbench (GATEWAY=team) has no LiteLLM of its own to ask: Cline calls the team gateway's, at
# its load balancer in GATEWAY_NETWORK (the team's VPC), port 4000. A connection the coding user's
# processes hold there at check time is Cline calling the model (a request streams its answer over it,
# and keeps it open while the model writes); ss shows the socket owner's uid for every user but root
# (iproute2 misc/ss.c), so the boot's own calls, root's, never count.
gateway_connection() {
  local uid
  uid=$(id -u "$CODING_USER" 2>/dev/null) || return 1
  ss -Htne state established dst "$GATEWAY_NETWORK" dport = ":$GATEWAY_LITELLM_PORT" 2>/dev/null |
    grep -qw "uid:$uid"
}

# The box's signs of use, for boot/idle_rule.py, which decides (and says which counts how). Only
# signs root controls: the coding user must not be able to keep the box up forever.
# SSM sessions: the SSM agent (root) runs one /usr/bin/ssm-session-worker SESSION_ID per open
# session (amazon-ssm-agent: appconfig/constants_unix.go, outofproc/master.go), and every tunnel
# of `workbench connect` is one; VS Code, Langfuse and LiteLLM's UI are reached only through such
# a tunnel, so code-server's browser heartbeat (which coder's processes can send) would add
# nothing. A boot: `bash /usr/local/sbin/workbench-boot --phases` (userdata/boot.sh's main) as
# root. LiteLLM: its spend log's latest "startTime" (litellm-proxy-extras' schema.prisma); coder
# adds to it only by spending Cline's budget, which is use; on a light workbench, a connection to the
# team gateway's LiteLLM now (gateway_connection). A sign that cannot be read counts as none (0).
signs_of_use() {
  local sessions=0 booting=0 recorded=0 what="nothing since the boot" request
  root_runs "$ROOT/usr/bin/ssm-session-worker" && sessions=1
  root_runs /usr/bin/bash "$ROOT/usr/local/sbin/workbench-boot" --phases && booting=1
  [[ -s $LAST_USE ]] && read -r recorded what <"$LAST_USE"
  if [[ ${GATEWAY:-} == team ]]; then
    request=0
    gateway_connection && request=$now
  else
    request=$(timeout 30 docker compose --project-directory "$INSTALL_DIR/litellm" exec -T litellm-postgres \
      psql -U litellm -d litellm -tAc 'SELECT coalesce(extract(epoch FROM max("startTime"))::bigint, 0) FROM "LiteLLM_SpendLogs"' \
      2>/dev/null | tr -dc '0-9') || request=0
  fi
  echo "$sessions $booting $recorded ${request:-0} $what"
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
    # So a snapshot taken while it is stopped holds Langfuse's latest media too (a light workbench has
    # none); bounded, and never a reason to keep a forgotten box running.
    if [[ ${GATEWAY:-} != team ]]; then
      timeout 600 bash "$INSTALL_DIR/boot/blob-mirror.sh" save >>"$LOG_FILE" 2>&1 ||
        log "could not copy Langfuse's media to the data volume; stopping anyway"
    fi
    systemctl poweroff
  fi
}

main "$@"
