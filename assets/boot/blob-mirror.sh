#!/usr/bin/env bash
# Langfuse's media and batch exports live in the stack's S3 bucket (media/, exports/), which a
# destroy deletes. This keeps a copy on the data volume, so the volume's snapshots hold them and a
# workbench restored from one puts them into its own new bucket. (events/ holds Langfuse's raw
# copies of ingested events, already in ClickHouse; it is not kept.)
#
#   save     bucket -> data volume: before an idle stop, and by `make destroy` before it stops the box
#   restore  data volume -> bucket, once per bucket: at every boot, a no-op unless the volume was restored
set -euo pipefail

ROOT=${WORKBENCH_ROOT:-}  # tests run the script inside a sandbox directory
# shellcheck source=/dev/null
source "$ROOT/etc/workbench/deployment.env"
MIRROR=$ROOT/var/lib/workbench-data/blob
PREFIXES=(media exports)
AWS=(aws --cli-connect-timeout 10 --cli-read-timeout 60)

# Marks the bucket whose objects the mirror holds, so a restore uploads only into a new one.
mark_in_sync_with_bucket() {
  rm -f "$MIRROR"/.bucket-*
  touch "$MIRROR/.bucket-$BLOB_BUCKET"
}

case ${1:-} in
  save)
    mkdir -p "$MIRROR"
    chmod 0700 "$MIRROR"
    for prefix in "${PREFIXES[@]}"; do
      "${AWS[@]}" s3 sync --only-show-errors "s3://$BLOB_BUCKET/$prefix/" "$MIRROR/$prefix/"
    done
    mark_in_sync_with_bucket
    echo "blob-mirror: saved s3://$BLOB_BUCKET/{${PREFIXES[*]// /,}} to the data volume"
    ;;
  restore)
    if [[ ! -d $MIRROR || -e $MIRROR/.bucket-$BLOB_BUCKET ]]; then
      exit 0
    fi
    for prefix in "${PREFIXES[@]}"; do
      if [[ -d $MIRROR/$prefix ]]; then
        "${AWS[@]}" s3 sync --only-show-errors "$MIRROR/$prefix/" "s3://$BLOB_BUCKET/$prefix/"
      fi
    done
    mark_in_sync_with_bucket
    echo "blob-mirror: restored Langfuse's media and exports into s3://$BLOB_BUCKET"
    ;;
  *)
    echo "usage: blob-mirror.sh save|restore" >&2
    exit 2
    ;;
esac
