#!/usr/bin/env bash
# Runs beacon's whole test suite on this machine, starting (or installing)
# what the tests need first: PostgreSQL on 127.0.0.1:5432 with trust auth,
# Redis on 127.0.0.1:6379.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '%s test.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# True when something accepts TCP connections on 127.0.0.1:5432 (bash only,
# so it works before any PostgreSQL client is installed).
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

# Logs in the way the tests do (user postgres, no password, over TCP).
pg_login() {
  command -v psql >/dev/null 2>&1 &&
    psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1
}

ensure_postgres() {
  if pg_up && pg_login; then return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Tests connect as postgres over TCP without a password, like CI's servers.
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    log "allowing trust auth on 127.0.0.1 in $hba"
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  # Already running (apt starts it on install): make it read pg_hba.conf again.
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  for _ in $(seq 1 50); do
    pg_up && pg_login && return
    sleep 0.2
  done
  log "PostgreSQL did not start"; exit 1
}

# Redis on 127.0.0.1:6379 for the Redis probe's tests.
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }

ensure_redis() {
  if redis_up; then return; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing Redis"
    apt_install redis-server
  fi
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do
    redis_up && return
    sleep 0.2
  done
  log "Redis did not start"; exit 1
}

ensure_postgres
ensure_redis
export BEACON_TEST_POSTGRES_URL="${BEACON_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
log "running cargo test (PostgreSQL at $BEACON_TEST_POSTGRES_URL)"
# Not --all-targets: that would run the full-size benchmarks too.
exec cargo test --lib --bins --tests "$@"
