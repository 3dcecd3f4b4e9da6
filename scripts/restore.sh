#!/usr/bin/env bash
# The ops path in one command: stop beacon, restore a backup, start beacon,
# wait until it is ready, and say what was restored.
#
# Usage: scripts/restore.sh [--config FILE] BACKUP [beacon restore options]
#   BACKUP        a backup id from `beacon backup list`, or "latest"
#   options       passed to `beacon restore`: --at TIME, --to PATH|URL,
#                 --force (replace an existing database), --dry-run (only
#                 download and verify: beacon is not stopped)
#
# Environment:
#   BEACON_STOP_CMD / BEACON_START_CMD  how to stop / start beacon
#                     (default: systemctl stop / start beacon)
#   BEACON_READYZ_URL where beacon answers when ready
#                     (default: http://127.0.0.1:8080/readyz)
#   BEACON_READY_TIMEOUT seconds to wait for it (default 60)
#   BEACON_BIN        the beacon binary (default: beacon on PATH)
#   BEACON_CONFIG, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY as for beacon
#
# Exit codes: those of `beacon restore` (1 refused, 2 backup failed
# verification, 3 backup target unreachable: beacon is started again on
# its untouched database), 4 beacon did not become ready after the restore.
set -euo pipefail

BEACON="${BEACON_BIN:-beacon}"
STOP="${BEACON_STOP_CMD:-systemctl stop beacon}"
START="${BEACON_START_CMD:-systemctl start beacon}"
READYZ="${BEACON_READYZ_URL:-http://127.0.0.1:8080/readyz}"
TIMEOUT="${BEACON_READY_TIMEOUT:-60}"

log() { printf '%s restore.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

# Global options (before the subcommand) and restore's own arguments.
global=()
args=()
backup=""
dry_run=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config|-c) global+=("$1" "$2"); shift 2 ;;
    --config=*) global+=("$1"); shift ;;
    --at|--to) args+=("$1" "$2"); shift 2 ;;
    --dry-run) dry_run=1; args+=("$1"); shift ;;
    -*) args+=("$1"); shift ;;
    *)
      if [ -z "$backup" ]; then backup="$1"; fi
      args+=("$1"); shift ;;
  esac
done
if [ -z "$backup" ]; then
  log "refused: name the backup to restore (an id from 'beacon backup list', or latest)"
  log "Try: scripts/restore.sh latest"
  exit 1
fi

if [ -n "$dry_run" ]; then
  log "dry run: beacon keeps running; downloading and verifying $backup"
  exec "$BEACON" "${global[@]}" restore "${args[@]}"
fi

log "stopping beacon: $STOP"
sh -c "$STOP"

log "restoring $backup"
set +e
report=$("$BEACON" "${global[@]}" restore --json "${args[@]}")
code=$?
set -e
if [ "$code" -ne 0 ]; then
  log "restore FAILED (exit $code); the database is untouched; starting beacon again"
  sh -c "$START"
  exit "$code"
fi

log "starting beacon: $START"
sh -c "$START"
log "waiting for $READYZ (up to $TIMEOUT s)"
deadline=$(( $(date +%s) + TIMEOUT ))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$READYZ" || true)" = 200 ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "beacon did not answer 200 on $READYZ within $TIMEOUT s after the restore"
    exit 4
  fi
  sleep 0.5
done

id=$(printf '%s' "$report" | sed -n 's/.*"backup":"\([^"]*\)".*/\1/p')
age=$(printf '%s' "$report" | sed -n 's/.*"backup_age_seconds":\([0-9-]*\).*/\1/p')
outcome=$(printf '%s' "$report" | sed -n 's/.*"outcome":"\([^"]*\)".*/\1/p')
if [ "$outcome" = skipped ]; then
  log "nothing restored: $(printf '%s' "$report" | sed -n 's/.*"reason":"\([^"]*\)".*/\1/p'); beacon is ready"
else
  log "restored backup $id (taken $(( ${age:-0} / 3600 )) h $(( ${age:-0} % 3600 / 60 )) min before the restore); beacon is ready"
fi
