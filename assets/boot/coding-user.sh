# shellcheck shell=bash disable=SC2154
# Sourced by userdata/boot.sh (from the bundle, once preflight has fetched it); uses its helpers
# (start_phase, end_phase, log, fail, retry, install_content, render, apply_metadata_firewall)
# and settings (CODING_USER, UNPRIVILEGED_PORT_START, FIREWALL_UNIT, ...). The coding user's
# account, home, tools and containment, and code-server with Cline.

# Fixed, so its files on a data volume restored onto a new instance still belong to it.
CODING_USER_UID=2000
CODING_HOME=$ROOT/home/$CODING_USER
# Every step the boot takes as the coding user runs in a transient systemd unit: its user and
# group only, a clean environment (nothing of deployment.env, such as the wait handle's URL),
# no way to gain privileges, ended by systemd after an attempt's time even if the client is
# gone, and every process it leaves behind killed when the step ends, so nothing the coding
# user planted (a .pth, an npm script) outlives the step.
AS_CODING_USER=(systemd-run --quiet --wait --pipe --collect --uid="$CODING_USER"
  --property=NoNewPrivileges=yes --property=RuntimeMaxSec="$ATTEMPT_TIMEOUT_SECONDS"
  --setenv=HOME="$CODING_HOME" --setenv=PATH=/usr/local/bin:/usr/bin:/bin --working-directory="$CODING_HOME" --)
# What a step as the coding user prints: a new file each step, never the boot's last-output,
# which carries root's own commands' output (the secret's among them). Not in a failure signal:
# the text is the coding user's.
CODING_USER_OUTPUT=$STATE_DIR/coding-user-output
# What the boot could not do in the coding user's home; `workbench status` reports it.
CODING_USER_WARNINGS=$STATE_DIR/coding-user-warnings
# Where Cline (in code-server's extension host, on the box) reaches LiteLLM; a light workbench's
# boot/light.sh points it at the team gateway and sets CLINE_SEED_MODE=managed (seed_cline.py).
CLINE_LITELLM_URL=http://localhost:4000
CLINE_SEED_MODE=
# What the coding user builds with; they install more for themselves (pip --user, npm -g
# into ~/.local), never as root.
CODING_TOOLS=(git python3-pip nodejs22 nodejs22-npm)
# Groups that would hand the coding user root: sudo rights, the Docker socket, system logs.
PRIVILEGED_GROUPS=(wheel docker adm sudo systemd-journal)

SYSCTL_CONF=$ROOT/etc/sysctl.d/60-workbench-coding-user.conf

# as_coding_user COMMAND...: COMMAND as the coding user (AS_CODING_USER), its output in
# CODING_USER_OUTPUT; the caller gives it its stdin (never the operator's terminal).
as_coding_user() {
  rm -f "$CODING_USER_OUTPUT"
  (umask 077 && : >"$CODING_USER_OUTPUT")
  "${AS_CODING_USER[@]}" "$@" >>"$CODING_USER_OUTPUT" 2>&1
}

# The coding user can break anything in its own home (a file where a directory goes, mode 000),
# and so anything the boot does there: such a step is reported, not fatal, so the coding user
# cannot veto a deploy of the box. coding_user_warning WHAT
coding_user_warning() {
  local said
  said=$(tail -n 5 "$CODING_USER_OUTPUT" 2>/dev/null | tr '\n' ' ' | tr -d '\000-\010\013-\037\177')
  log "WARNING: $1 | the coding user's output: $said"
  printf '%s\n' "$1" >>"$CODING_USER_WARNINGS"
}

# Root never follows a path the coding user controls: a file in its home is written by the
# coding user itself, through a temporary name of its own choosing, and only when its content
# changes. The content travels on stdin, never in an argument.
# install_as_coding_user TARGET MODE CONTENT
install_as_coding_user() {
  # shellcheck disable=SC2016  # expanded by the coding user's sh, not here
  as_coding_user sh -euc 'umask 077; mkdir -p "$(dirname "$1")"; tmp=$(mktemp "$1.XXXXXX"); cat >"$tmp"
    if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else chmod "$2" "$tmp"; mv -f "$tmp" "$1"; fi' \
    sh "$1" "$2" <<<"$3"
}

# Fails unless the coding user is an ordinary user: no privileged group, no sudo rule.
verify_coding_user_contained() {
  local groups group sudo_rights
  groups=" $(id -nG "$CODING_USER") "
  for group in "${PRIVILEGED_GROUPS[@]}"; do
    [[ $groups == *" $group "* ]] && fail "the coding user $CODING_USER is in the $group group, which amounts to root"
  done
  sudo_rights=$(sudo -n -l -U "$CODING_USER" 2>&1) || fail "could not list the sudo rights of $CODING_USER: $sudo_rights"
  [[ $sudo_rights == *"is not allowed to run sudo"* ]] ||
    fail "the coding user $CODING_USER may use sudo: ${sudo_rights//$'\n'/ }"
}

phase_coding_user() {
  start_phase coding-user
  retry dnf install -y "${CODING_TOOLS[@]}" || fail "dnf could not install ${CODING_TOOLS[*]}"
  if ! id "$CODING_USER" >/dev/null 2>&1; then
    # No password (so no su or sudo login) and only its own group. A restored data volume
    # already holds its home.
    local home_flag=--create-home
    [[ -d $ROOT/home/$CODING_USER ]] && home_flag=--no-create-home
    useradd "$home_flag" --uid "$CODING_USER_UID" --user-group --shell /bin/bash \
      --comment "AI Coding Workbench: code-server and Cline" "$CODING_USER" >"$STATE_DIR/last-output" 2>&1 ||
      fail "could not create the coding user $CODING_USER"
  fi
  verify_coding_user_contained
  : >"$CODING_USER_WARNINGS"
  # The home is the coding user's: what goes into it, it puts there itself.
  as_coding_user mkdir -p "$CODING_HOME/workspace" </dev/null ||
    coding_user_warning "could not create $CODING_HOME/workspace as $CODING_USER"
  install_as_coding_user "$CODING_HOME/.npmrc" 0644 "$(<"$INSTALL_DIR/coding-user/npmrc")" ||
    coding_user_warning "could not write $CODING_HOME/.npmrc as $CODING_USER"
  install_content "$ROOT/etc/profile.d/workbench-user-tools.sh" 0644 \
    "$(<"$INSTALL_DIR/coding-user/workbench-user-tools.sh")"
  # Unprivileged user namespaces off: nothing the coding user needs uses them, and they are
  # the usual way from a local user to a kernel bug. The tunnels' ports are root's from early
  # boot on (systemd-sysctl), and again from the firewall unit.
  install_content "$SYSCTL_CONF" 0644 "user.max_user_namespaces = 0
net.ipv4.ip_unprivileged_port_start = $UNPRIVILEGED_PORT_START"
  sysctl -q -p "$SYSCTL_CONF" >"$STATE_DIR/last-output" 2>&1 || fail "could not apply $SYSCTL_CONF"
  # Before code-server and Docker on every boot, and now. Applied directly rather than by
  # restarting the unit, which would restart Docker and code-server (they require it).
  install_content "$SYSTEMD_DIR/$FIREWALL_UNIT" 0644 "$(<"$INSTALL_DIR/systemd/$FIREWALL_UNIT")"
  retry systemctl daemon-reload || fail "systemd could not reload its units"
  retry systemctl enable "$FIREWALL_UNIT" || fail "systemd could not enable $FIREWALL_UNIT"
  apply_metadata_firewall >"$STATE_DIR/last-output" 2>&1 || fail "could not install the metadata firewall"
  iptables -w -C WORKBENCH-CODING-USER -d "${CODING_USER_REFUSED_V4[0]}" -m owner --uid-owner "$CODING_USER" -j REJECT \
    >"$STATE_DIR/last-output" 2>&1 || fail "the metadata firewall is not in place for $CODING_USER"
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
  install_as_coding_user "$CODING_HOME/.config/code-server/config.yaml" 0600 \
    "$(render "$INSTALL_DIR/code-server/config.yaml")" ||
    coding_user_warning "could not write code-server's config as $CODING_USER"
  # Cline's provider, model, key and first-run answers, merged into what the user has. -I: none
  # of the coding user's site-packages, .pth files or PYTHON* variables take part.
  if as_coding_user python3 -I "$INSTALL_DIR/boot/seed_cline.py" "$CLINE_VERSION" "$CLINE_MODEL" \
    "$CLINE_LITELLM_URL" ${CLINE_SEED_MODE:+"$CLINE_SEED_MODE"} <<<"$LITELLM_CLINE_KEY"; then
    # What the coding user's process printed, without the control characters it could hide in it.
    log "$(tr '\n' ' ' <"$CODING_USER_OUTPUT" | tr -d '\000-\010\013-\037\177')"
  else
    coding_user_warning "could not pre-fill Cline's settings"
  fi
  local extension=saoudrizwan.claude-dev attempt
  if ! as_coding_user code-server --list-extensions --show-versions </dev/null ||
    ! grep -qx "$extension@$CLINE_VERSION" "$CODING_USER_OUTPUT"; then
    for ((attempt = 1; attempt <= RETRY_ATTEMPTS; attempt++)); do
      as_coding_user code-server --install-extension "$extension@$CLINE_VERSION" </dev/null && break
      ((attempt < RETRY_ATTEMPTS)) && sleep "$RETRY_DELAY_SECONDS"
    done
    ((attempt <= RETRY_ATTEMPTS)) || coding_user_warning "could not install Cline $CLINE_VERSION from Open VSX"
  fi
  retry systemctl enable --now "code-server@$CODING_USER" || fail "code-server did not start"
  end_phase
}

