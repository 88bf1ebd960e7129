# shellcheck shell=bash disable=SC2154
# Sourced by userdata/boot.sh (from the bundle, once preflight has fetched it); uses its helpers
# (start_phase, log, fail, retry, install_content, gib_of) and settings.

MIN_DATA_GIB=25
DATA_LABEL=workbench  # an XFS label holds at most 12 characters
FSTAB=$ROOT/etc/fstab
DATA_WAIT_SECONDS=${WORKBENCH_DATA_WAIT_SECONDS:-300}
SEED_DIR=$DATA_MOUNT/workbench
SEED_COPY=$SEED_DIR/secret.json

# CloudFormation attaches the volume once the instance runs, so it may appear after the boot
# has started. On Nitro instances it is an NVMe device whose serial is the volume id (Amazon
# EBS user guide, "Amazon EBS and NVMe"); elsewhere it keeps the attachment's device name.
data_device() {
  local candidate
  for candidate in "$ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${DATA_VOLUME_ID/-/}" \
    "$ROOT/dev/sdf" "$ROOT/dev/xvdf"; do
    [[ -e $candidate ]] && { printf '%s' "$candidate"; return 0; }
  done
  return 1
}

# One fstab line per mount point, replaced in place, so a re-run never adds a second.
fstab_entry() {
  local mount_point=$1 line=$2 others=""
  [[ -f $FSTAB ]] && others=$(awk -v mp="$mount_point" '$2 != mp' "$FSTAB")
  install_content "$FSTAB" 0644 "${others:+$others$'\n'}$line"
}

# Formats the volume only when blkid finds no file system on it: a new, blank volume. One
# restored from a snapshot, or used before, is mounted as it is.
phase_data_volume() {
  start_phase data-volume
  local device fs_type uuid data_gib deadline=$((SECONDS + DATA_WAIT_SECONDS))
  until device=$(data_device); do
    ((SECONDS < deadline)) || fail "the data volume $DATA_VOLUME_ID was not attached within ${DATA_WAIT_SECONDS}s"
    sleep 5
  done
  fs_type=$(blkid -o value -s TYPE "$device") || fs_type=""
  if [[ -z $fs_type ]]; then
    mkfs.xfs -L "$DATA_LABEL" "$device" >"$STATE_DIR/last-output" 2>&1 || fail "could not format the data volume $device"
    log "formatted the blank data volume $DATA_VOLUME_ID"
  elif [[ $fs_type != xfs ]]; then
    fail "the data volume $DATA_VOLUME_ID holds a file system of type $fs_type, not the workbench's xfs; leaving it untouched"
  fi
  uuid=$(blkid -o value -s UUID "$device") || fail "blkid found no UUID on the data volume $device"
  mkdir -p "$DATA_MOUNT"
  fstab_entry "$DATA_MOUNT" "UUID=$uuid $DATA_MOUNT xfs defaults,nofail 0 2"
  if ! findmnt --mountpoint "$DATA_MOUNT" >/dev/null; then
    mount "$DATA_MOUNT" >"$STATE_DIR/last-output" 2>&1 || fail "could not mount the data volume at $DATA_MOUNT"
  fi
  # A redeploy may have grown the volume (data_volume_gib); the file system follows.
  xfs_growfs "$DATA_MOUNT" >"$STATE_DIR/last-output" 2>&1 || fail "could not grow the data volume's file system"
  data_gib=$(gib_of "$DATA_MOUNT")
  ((data_gib >= MIN_DATA_GIB)) ||
    fail "disk too small: the data volume has ${data_gib} GiB, the workbench needs at least ${MIN_DATA_GIB} GiB (data_volume_gib)"
  mkdir -p "$DATA_MOUNT/docker" "$DATA_MOUNT/home"
  # Created root-only; an existing one is checked, never changed (use_the_datas_seed).
  [[ -e $SEED_DIR || -L $SEED_DIR ]] || mkdir -m 0700 "$SEED_DIR"
  # /home (the coding user's workspace, the SSM user's home) lives on the data volume too.
  fstab_entry "$ROOT/home" "$DATA_MOUNT/home $ROOT/home none bind,x-systemd.requires-mounts-for=$DATA_MOUNT 0 0"
  if ! findmnt --mountpoint "$ROOT/home" >/dev/null; then
    # The image's homes (ec2-user's, ssm-user's) carry over; a restored volume's own win.
    cp -a --no-clobber "$ROOT/home/." "$DATA_MOUNT/home/" >"$STATE_DIR/last-output" 2>&1 ||
      fail "could not copy /home onto the data volume"
    mount "$ROOT/home" >"$STATE_DIR/last-output" 2>&1 || fail "could not bind /home onto the data volume"
  fi
  log "data volume $DATA_VOLUME_ID mounted at $DATA_MOUNT (${data_gib} GiB)"
  end_phase
}

# The seed's copy decides every key the box derives, so whoever could write it would hold them
# all: its directory and file must be root's own, not links, and readable by root alone. A copy
# that is not is refused, never repaired: it may be someone else's seed.
# require_root_only PATH MODE
require_root_only() {
  local path=$1 mode=$2 owner_and_mode
  [[ ! -L $path ]] || fail "$path is a symbolic link; the seed's copy must sit in root's own files (mode $mode)"
  owner_and_mode=$(stat -c '%u %a' "$path") || fail "cannot inspect $path"
  [[ $owner_and_mode == "$EUID ${mode#0}" ]] ||
    fail "$path has owner uid ${owner_and_mode% *} and mode ${owner_and_mode#* }; the seed's copy must be root's with mode $mode"
}

# The data was encrypted with values derived from the seed it was made with. A volume restored
# from a snapshot brings that seed along: it goes back into Secrets Manager, which then reports
# the values the data needs (workbench credentials). A blank volume keeps a copy of the current
# one. Sets phase_config's secret_string to the one the services must use.
use_the_datas_seed() {
  require_root_only "$SEED_DIR" 0700
  [[ -e $SEED_COPY || -L $SEED_COPY ]] && require_root_only "$SEED_COPY" 0600
  if [[ ! -s $SEED_COPY ]]; then
    install_content "$SEED_COPY" 0600 "$secret_string"
  elif [[ $(<"$SEED_COPY") != "$secret_string" ]]; then
    retry "${AWS[@]}" secretsmanager put-secret-value --secret-id "$SECRET_ARN" \
      --secret-string "file://$SEED_COPY" >/dev/null || fail "could not put the restored data's seed back into $SECRET_ARN"
    log "the data volume came with its own seed (a restore); $SECRET_ARN holds it again"
    secret_string=$(<"$SEED_COPY")
  fi
}
