#!/usr/bin/env bash
# Builds beacon's OCI image (Containerfile) without pulling a base image:
# builds the release binary, stages a build context holding it, the exact
# shared libraries it loads, CA certificates, time-zone data and a minimal
# /etc, then runs `podman build` (or `buildah bud`) on it. Tags the image
# $BEACON_IMAGE:<version> and $BEACON_IMAGE:latest and prints its size.
#
# Usage: scripts/image.sh
#   BEACON_IMAGE         image name (default localhost/beacon)
#   BEACON_IMAGE_BINARY  use this beacon binary instead of building one
#   BEACON_IMAGE_SOURCE  the org.opencontainers.image.source label (default:
#                        the git remote "origin", as an https URL)
# Needs podman or buildah, ldd, and the host's ca-certificates and tzdata
# (Debian: apt-get install podman ca-certificates tzdata). Runs as root or
# as a user podman is set up for (rootless).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

log() { printf '%s image.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

image="${BEACON_IMAGE:-localhost/beacon}"
target_dir="${CARGO_TARGET_DIR:-target}"

binary="${BEACON_IMAGE_BINARY:-}"
if [ -z "$binary" ]; then
  log "building the release binary (cargo build --release --locked)"
  cargo build --release --locked --bin beacon
  binary="$target_dir/release/beacon"
fi
[ -x "$binary" ] || die "no beacon binary at $binary"

if command -v podman >/dev/null 2>&1; then
  builder=(podman build)
elif command -v buildah >/dev/null 2>&1; then
  builder=(buildah bud)
else
  die "neither podman nor buildah is installed (Debian: apt-get install podman)"
fi
bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$bundle" ] || die "no CA bundle at $bundle (Debian: apt-get install ca-certificates)"
zoneinfo=/usr/share/zoneinfo
[ -f "$zoneinfo/Europe/Berlin" ] || die "no time-zone data in $zoneinfo (Debian: apt-get install tzdata)"

version="$("$binary" --version | awk '{print $2}')"
[ -n "$version" ] || die "$binary --version printed no version"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  log "note: the work tree has uncommitted changes; revision label is $revision"
fi
source_url="${BEACON_IMAGE_SOURCE:-}"
if [ -z "$source_url" ]; then
  origin="$(git remote get-url origin 2>/dev/null || true)"
  # git@host:owner/repo.git -> https://host/owner/repo
  origin="$(printf '%s' "$origin" | sed -E 's#^git@([^:]+):#https://\1/#; s#\.git$##')"
  source_url="${origin:-unknown}"
fi

ctx="$target_dir/image-context"
rm -rf "$ctx"
mkdir -p "$ctx/system/etc" "$ctx/certs/etc/ssl/certs" "$ctx/zoneinfo/usr/share" "$ctx/data/data"

# The loader and every library ldd resolves, at the paths ldd gives (the
# loader's is the one written in the binary). cp -L: the files, not links.
libs="$(ldd "$binary" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }')"
[ -n "$libs" ] || die "ldd found no shared libraries: is $binary static? (Containerfile expects glibc)"
libc=""
for lib in $libs; do
  mkdir -p "$ctx/system$(dirname "$lib")"
  cp -L "$lib" "$ctx/system$lib"
  case "$lib" in */libc.so.6) libc="$lib" ;; esac
done
[ -n "$libc" ] || die "ldd lists no libc.so.6"
# glibc's NSS sources for /etc/hosts and DNS. Since glibc 2.34 both live
# in libc.so.6 and these are stubs; an older glibc dlopens them, so they
# are copied where they exist and the image resolves names with either.
for nss in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
  if [ -e "$(dirname "$libc")/$nss" ]; then
    cp -L "$(dirname "$libc")/$nss" "$ctx/system$(dirname "$libc")/$nss"
  fi
done

# pg_dump and pg_restore, for backups of a PostgreSQL store (beacon runs
# them by name, from PATH): Debian's real binaries (not its pg_wrapper
# script, which needs perl), with their libraries. They must be at least as
# new as the server: set PG_BIN to another version's bin folder to change.
pg_bin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
[ -x "$pg_bin/pg_dump" ] && [ -x "$pg_bin/pg_restore" ] ||
  die "pg_dump and pg_restore not found in ${pg_bin:-/usr/lib/postgresql/*/bin} (apt-get install postgresql-client)"
mkdir -p "$ctx/system/usr/local/bin"
for tool in pg_dump pg_restore; do
  cp -L "$pg_bin/$tool" "$ctx/system/usr/local/bin/$tool"
  for lib in $(ldd "$pg_bin/$tool" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'); do
    mkdir -p "$ctx/system$(dirname "$lib")"
    cp -L "$lib" "$ctx/system$lib"
  done
done

cat >"$ctx/system/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
beacon:x:65532:65532:beacon:/data:/sbin/nologin
EOF
cat >"$ctx/system/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
beacon:x:65532:
EOF
# /etc/hosts (which the runtime writes) first, then DNS from the
# runtime's resolv.conf: as on the host, as the services beacon watches.
cat >"$ctx/system/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
mkdir -p "$ctx/system/tmp"
chmod 1777 "$ctx/system/tmp"

cp -L "$bundle" "$ctx/certs/etc/ssl/certs/ca-certificates.crt"
cp -a "$zoneinfo" "$ctx/zoneinfo/usr/share/"
chmod 0700 "$ctx/data/data"
install -m 0755 "$binary" "$ctx/beacon"
# The release profile keeps line tables (debug = "line-tables-only"): 200
# MB of them. The image drops them and keeps the symbols, so a backtrace
# still names its functions.
if command -v strip >/dev/null 2>&1; then
  strip --strip-debug "$ctx/beacon"
else
  log "note: no strip (binutils): the image carries the binary's line tables"
fi

log "building $image:$version (revision $revision) with ${builder[*]}"
"${builder[@]}" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --build-arg "SOURCE=$source_url" \
  -f Containerfile -t "$image:$version" -t "$image:latest" "$ctx"

if command -v podman >/dev/null 2>&1; then
  podman images "$image"
fi
echo "$image:$version"
