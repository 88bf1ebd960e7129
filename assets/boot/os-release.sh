# shellcheck shell=bash disable=SC2154
# Sourced by userdata/boot.sh (from the bundle, once preflight has fetched it); uses its helpers
# (start_phase, log, fail, retry, install_content, gib_of) and settings.

# AL2023's deterministic upgrade to the pinned release. /etc/dnf/vars/releasever keeps every later
# dnf call on that release's repositories; an image newer than the pin keeps its own (dnf does
# not downgrade), never an older one's. A redeploy with a new release patches the box in place;
# a kernel that needs it gets one reboot (per release).
phase_os_release() {
  start_phase os-release
  local installed newest reboot_marker=$STATE_DIR/rebooted-for-$AMAZON_LINUX_RELEASE status=0
  installed=$(rpm -q --queryformat '%{VERSION}' system-release)
  newest=$(printf '%s\n' "$installed" "$AMAZON_LINUX_RELEASE" | sort -V | tail -n 1)
  install_content "$ROOT/etc/dnf/vars/releasever" 0644 "$newest"
  if [[ $installed == "$AMAZON_LINUX_RELEASE" ]]; then
    log "Amazon Linux $installed, the pinned release"
  elif [[ $newest == "$installed" ]]; then
    log "Amazon Linux $installed is newer than the pinned $AMAZON_LINUX_RELEASE; dnf does not downgrade, keeping it"
  else
    retry dnf upgrade -y --releasever="$AMAZON_LINUX_RELEASE" ||
      fail "dnf could not upgrade Amazon Linux $installed to $AMAZON_LINUX_RELEASE"
    log "upgraded Amazon Linux $installed to $AMAZON_LINUX_RELEASE"
    dnf needs-restarting --reboothint >"$STATE_DIR/last-output" 2>&1 || status=$?
    if ((status == 1)) && [[ ! -e $reboot_marker ]]; then
      touch "$reboot_marker"
      log "rebooting into the upgraded kernel; the boot continues after it: $(tr '\n' ' ' <"$STATE_DIR/last-output")"
      systemctl reboot
      exit 0
    fi
  fi
  end_phase
}
