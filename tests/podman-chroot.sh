#!/usr/bin/env bash
# A stand-in for `podman` in the tests (tests/integration/image.rs puts it
# on PATH as `podman`): on the CI machines podman builds images and
# creates containers, but cannot start one (crun fails to set rlimits and
# cgroups). So `run`, `exec`, `stop` and `rm` of a started container are
# done here, the rest by the real podman:
#   run   podman creates the container (so its flags, image, volumes, env
#         files and ports are podman's own), then its filesystem is
#         exported and started under chroot with the container's config:
#         entrypoint + command, env, user, working directory; volumes and
#         bind mounts are bind-mounted (in a private mount namespace), an
#         empty named volume gets the image's folder's owner and mode (as
#         podman's copy-up does); /etc/hosts gets --add-host entries.
#         Networking is the host's: a -p HOST:CONTAINER must be one port.
#   exec  runs a command in a started container's root, user and env.
#   stop  SIGTERM, then waits (SIGKILL after 30 s).
#   rm    stops it if started, then the real `podman rm`.
# $PODMAN_CHROOT_STATE: a scratch folder for the containers' files.
# $PODMAN_CHROOT_HOOK: if set, run with the exported root before start
# (a test's changes, e.g. its CA in the bundle). Needs root.
set -euo pipefail

real="${PODMAN_REAL:-/usr/bin/podman}"
state="${PODMAN_CHROOT_STATE:?set PODMAN_CHROOT_STATE to a scratch folder}"

log() { printf 'podman-chroot: %s\n' "$*" >&2; }

# The pid of a started container, if it still runs.
running_pid() {
  local pidfile="$state/$1/pid"
  [ -f "$pidfile" ] || return 1
  local pid
  pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop() {
  local name="$1" pid
  pid="$(running_pid "$name")" || return 0
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$state/$name/pid"; return 0; }
    sleep 0.1
  done
  log "$name did not stop within 30 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$state/$name/pid"
}

run() {
  local detach="" remove="" name="" args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -d|--detach) detach=1; shift ;;
      --rm) remove=1; shift ;;
      --name) name="$2"; args+=("$1" "$2"); shift 2 ;;
      --name=*) name="${1#--name=}"; args+=("$1"); shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  local id
  id="$("$real" create "${args[@]}")"
  [ -n "$name" ] || name="$id"
  local dir="$state/$name"
  rm -rf "$dir"
  mkdir -p "$dir/root"
  "$real" export "$id" | tar -x -C "$dir/root"

  local user workdir image
  user="$("$real" container inspect --format '{{.Config.User}}' "$id")"
  workdir="$("$real" container inspect --format '{{.Config.WorkingDir}}' "$id")"
  image="$("$real" container inspect --format '{{.Image}}' "$id")"
  mapfile -t env < <("$real" container inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$id" | sed '/^$/d')
  mapfile -t entrypoint < <("$real" image inspect --format '{{range .Config.Entrypoint}}{{println .}}{{end}}' "$image" | sed '/^$/d')
  mapfile -t cmd < <("$real" container inspect --format '{{range .Config.Cmd}}{{println .}}{{end}}' "$id" | sed '/^$/d')
  mapfile -t mounts < <("$real" container inspect --format '{{range .Mounts}}{{.Type}}	{{.Source}}	{{.Destination}}	{{.RW}}{{println}}{{end}}' "$id" | sed '/^$/d')
  while read -r port host; do
    [ -n "$port" ] || continue
    [ "${port%/*}" = "$host" ] || { log "-p $host:${port%/*}: only the same port on both sides works here (host network)"; exit 1; }
  done < <("$real" container inspect --format '{{range $p, $b := .HostConfig.PortBindings}}{{$p}} {{range $b}}{{.HostPort}}{{end}}{{println}}{{end}}' "$id")

  # What the runtime writes: /etc/hosts (with --add-host) and resolv.conf.
  {
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n'
    "$real" container inspect --format '{{range .HostConfig.ExtraHosts}}{{println .}}{{end}}' "$id" |
      sed '/^$/d' | awk -F: '{ print $2 "\t" $1 }'
  } >"$dir/root/etc/hosts"
  cat /etc/resolv.conf >"$dir/root/etc/resolv.conf" 2>/dev/null || true

  # The launch script: bind mounts in a private mount namespace, then the
  # entrypoint under chroot as the container's user, in its working dir.
  local launch="$dir/launch.sh" m type src dst rw
  {
    echo 'set -eu'
    for m in "${mounts[@]}"; do
      IFS=$'\t' read -r type src dst rw <<<"$m"
      if [ "$type" = volume ] && [ -z "$(ls -A "$src")" ] && [ -d "$dir/root$dst" ]; then
        # podman's copy-up: an empty volume takes the image's folder.
        cp -a "$dir/root$dst/." "$src/"
        chown --reference="$dir/root$dst" "$src"
        chmod --reference="$dir/root$dst" "$src"
      fi
      if [ -d "$src" ]; then
        printf 'mkdir -p %q\n' "$dir/root$dst"
      else
        printf 'mkdir -p %q && touch %q\n' "$(dirname "$dir/root$dst")" "$dir/root$dst"
      fi
      printf 'mount --bind %q %q\n' "$src" "$dir/root$dst"
      [ "$rw" = true ] || printf 'mount -o remount,bind,ro %q\n' "$dir/root$dst"
    done
    printf 'exec env -i'
    printf ' %q' "${env[@]}"
    printf ' /usr/bin/unshare --root=%q --wd=%q' "$dir/root" "${workdir:-/}"
    if [ -n "$user" ]; then
      printf ' --setuid %q --setgid %q' "${user%%:*}" "${user#*:}"
    fi
    printf ' --'
    printf ' %q' "${entrypoint[@]}" "${cmd[@]}"
    echo
  } >"$launch"
  printf '%s\n' "$user" >"$dir/user"
  printf '%s\n' "${env[@]}" >"$dir/env"

  if [ -n "${PODMAN_CHROOT_HOOK:-}" ]; then
    "$PODMAN_CHROOT_HOOK" "$dir/root"
  fi

  if [ -n "$detach" ]; then
    # Every step execs the next: this pid ends up being the container's
    # process (what stop signals and exec enters).
    setsid unshare --mount --propagation private -- bash "$launch" >>"$dir/log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    echo "$id"
  else
    local code=0
    unshare --mount --propagation private -- bash "$launch" || code=$?
    if [ -n "$remove" ]; then
      "$real" rm -f "$id" >/dev/null
      rm -rf "$dir"
    fi
    return "$code"
  fi
}

exec_in() {
  local name="$1"; shift
  local pid user
  pid="$(running_pid "$name")" || { log "$name is not running"; exit 125; }
  user="$(cat "$state/$name/user")"
  mapfile -t env <"$state/$name/env"
  exec env -i "${env[@]}" /usr/bin/nsenter --target "$pid" --mount --root --wd \
    --setuid "${user%%:*}" --setgid "${user#*:}" -- "$@"
}

case "${1:-}" in
  run) shift; run "$@" ;;
  exec) shift; exec_in "$@" ;;
  stop)
    shift
    while [ $# -gt 0 ]; do
      case "$1" in
        -t|--time) shift 2 ;;
        -*) shift ;;
        *) stop "$1"; echo "$1"; shift ;;
      esac
    done ;;
  rm)
    shift
    for name in "$@"; do
      [[ "$name" == -* ]] && continue
      stop "$name"; rm -rf "${state:?}/$name"
    done
    exec "$real" rm "$@" ;;
  *) exec "$real" "$@" ;;
esac
