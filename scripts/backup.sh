#!/usr/bin/env bash
# One verified, rotated backup of beacon's database: for cron and Kubernetes
# CronJobs. Runs `beacon backup run` (snapshot → upload → verify by test
# restore → prune) with the environment's config and credentials, logs one
# timestamped line per step, exits non-zero on any failure, and never runs
# twice at once.
#
# Usage: scripts/backup.sh [--config FILE]
# Environment: BEACON_CONFIG (or --config), AWS_ACCESS_KEY_ID and
#   AWS_SECRET_ACCESS_KEY for S3 targets, BEACON_BIN (default: beacon on
#   PATH), BEACON_BACKUP_LOCK (default: /tmp/beacon-backup.sh.lock).
set -euo pipefail

BEACON="${BEACON_BIN:-beacon}"
LOCK="${BEACON_BACKUP_LOCK:-${TMPDIR:-/tmp}/beacon-backup.sh.lock}"

log() { printf '%s backup.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

exec 9>>"$LOCK"
if ! flock --nonblock 9; then
  log "another backup.sh is running (it holds $LOCK); not starting a second one"
  exit 1
fi

log "starting: $BEACON $* backup run"
# beacon logs each step (uploaded, verified, deleted by rotation) on stderr,
# each line with its own timestamp; its summary goes to stdout.
set +e
summary=$(RUST_LOG="${RUST_LOG:-info}" "$BEACON" "$@" backup run)
code=$?
set -e
if [ "$code" -ne 0 ]; then
  log "FAILED (exit $code): see the lines above for the step and its cause"
  exit "$code"
fi
log "done: $summary"
