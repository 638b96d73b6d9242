#!/usr/bin/env bash
# Make a Docker engine usable for poolui on a machine without systemd and without a registry:
# install docker.io + busybox-static (Debian packages), start dockerd in the background, and build the
# test image poolui/busybox:local from busybox alone (`docker import`, no pull), and poolui/python:local
# from busybox and this machine's python3.
# Idempotent: a second run only checks, in well under a second. Leaves dockerd running.
#
#   scripts/docker-engine.sh            install + start + image (what CI calls)
#   scripts/docker-engine.sh start      start only (the engine-restart test uses this)
#   scripts/docker-engine.sh stop       stop the dockerd this script started (never one it did not)
#   scripts/docker-engine.sh status
#
# Exit codes: 0 ready, 1 something failed (the reason is printed), 3 no engine can run here
# (not root and none reachable): test suites may skip on 3 and must fail on 1.
set -euo pipefail

IMAGE="${POOLUI_DOCKER_IMAGE:-poolui/busybox:local}"
RECIPE=3   # bump when the image recipe below changes, so an old image is rebuilt
# An image with a python3 for the Docker agent's tests (poolui/providers/docker/agent.py), made from this
# machine's own /usr/bin/python3 and the libraries it loads, on top of the same busybox: no registry.
PY_IMAGE="${POOLUI_DOCKER_PY_IMAGE:-poolui/python:local}"
PY_RECIPE=1
DATA_ROOT="${POOLUI_DOCKER_DATA_ROOT:-/var/lib/docker}"
LOG="${POOLUI_DOCKERD_LOG:-/var/log/poolui-dockerd.log}"
PIDFILE=/var/run/docker.pid
OURS=/var/run/poolui-dockerd.pid   # the dockerd this script started: the only one `stop` (and the tests) may stop
START_TIMEOUT="${POOLUI_DOCKERD_START_TIMEOUT:-60}"

ROOTFS_TMP=
trap '[ -z "$ROOTFS_TMP" ] || rm -rf "$ROOTFS_TMP"' EXIT

say() { printf 'docker-engine: %s\n' "$*"; }
die() { printf 'docker-engine: FAILED: %s\n' "$1" >&2; exit "${2:-1}"; }

# The CLI from docker.io, or any other one on PATH; unset DOCKER_HOST is the default socket.
engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install_packages() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v docker >/dev/null 2>&1 || need+=(docker.io)
  [ -x /bin/busybox ] || need+=(busybox-static)
  [ ${#need[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${need[*]} (or install them and rerun)" 3
  command -v apt-get >/dev/null 2>&1 || die "no apt-get: install ${need[*]} by hand" 3
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A machine may have no package lists yet: update once, and again only when the install fails.
  if [ ! -d /var/lib/apt/lists ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
    apt-get update -q >/dev/null || die "apt-get update failed"
  fi
  if ! apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; then
    apt-get update -q >/dev/null || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
  fi
}

start_dockerd() {
  if engine_up; then
    say "engine already running ($(docker version --format '{{.Server.Version}}'))"
    return 0
  fi
  [ -n "${DOCKER_HOST:-}" ] && die "DOCKER_HOST=$DOCKER_HOST is set but not reachable; this script only starts a local dockerd"
  [ "$(id -u)" -eq 0 ] || die "no engine at /var/run/docker.sock and not root: start one with 'sudo dockerd &'" 3
  command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (run this script without arguments)"
  local extra=("$@") old
  # A dockerd may be starting already (another test worker, the engine-restart test) or have been killed
  # (its pid file left behind): wait for the first, clear the second, never start a second one beside it.
  old=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -n "$old" ] && [ "$(cat "/proc/$old/comm" 2>/dev/null || true)" = dockerd ]; then
    say "dockerd (pid $old) is running but not answering yet: waiting for it"
    for _ in $(seq $((START_TIMEOUT * 10))); do
      engine_up && { say "engine up (pid $old)"; return 0; }
      kill -0 "$old" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$old" 2>/dev/null && die "dockerd (pid $old) runs but did not answer within ${START_TIMEOUT}s (see $LOG)"
  fi
  rm -f "$PIDFILE"  # no dockerd owns it
  say "starting dockerd (log: $LOG)"
  # setsid + nohup: dockerd must outlive this script and the CI step that ran it.
  setsid nohup dockerd --data-root "$DATA_ROOT" "${extra[@]}" >"$LOG" 2>&1 </dev/null &
  local pid=$! waited=0 t0
  t0=$(date +%s%N)
  until engine_up; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "---- last lines of $LOG ----" >&2; tail -n 20 "$LOG" >&2 || true
      # Some kernels/sandboxes refuse the iptables rules; published ports still work via docker-proxy.
      if [ ${#extra[@]} -eq 0 ] && grep -qi 'iptables' "$LOG"; then
        say "dockerd failed on iptables; retrying with --iptables=false"
        start_dockerd --iptables=false --ip-masq=false
        return
      fi
      die "dockerd exited during start-up (see $LOG)"
    fi
    if [ "$waited" -ge $((START_TIMEOUT * 10)) ]; then
      tail -n 20 "$LOG" >&2 || true
      die "dockerd (pid $pid) did not answer on /var/run/docker.sock within ${START_TIMEOUT}s (see $LOG)"
    fi
    sleep 0.1; waited=$((waited + 1))
  done
  echo "$pid" >"$OURS"
  say "engine up after $((($(date +%s%N) - t0) / 1000000)) ms ($(docker version --format '{{.Server.Version}}'), pid $pid)"
}

stop_dockerd() {
  local pid
  pid=$(cat "$OURS" 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then say "no dockerd started by this script is running"; return 0; fi
  [ "$(cat "$PIDFILE" 2>/dev/null || true)" = "$pid" ] || die "pid $pid in $OURS is not the engine's ($PIDFILE); not stopping it"
  kill -TERM "$pid"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || { say "dockerd (pid $pid) stopped"; return 0; }; sleep 0.1; done
  die "dockerd (pid $pid) still running 30s after SIGTERM"
}

build_image() {
  local have
  have=$(docker image inspect --format '{{ index .Config.Labels "poolui.image-recipe" }}' "$IMAGE" 2>/dev/null || true)
  if [ "$have" = "$RECIPE" ]; then say "image $IMAGE present"; return 0; fi
  [ -x /bin/busybox ] || die "/bin/busybox missing: apt-get install busybox-static"
  say "building $IMAGE from /bin/busybox (docker import, no registry)"
  local root
  root=$(mktemp -d /tmp/poolui-rootfs.XXXXXX)
  ROOTFS_TMP=$root   # removed by the EXIT trap, also when a step below dies
  mkdir -p "$root"/{bin,etc,www,work,tmp,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/work:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'poolui sandbox ok\n' >"$root/www/index.html"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | docker import \
    --change 'ENV PATH=/bin' \
    --change 'WORKDIR /work' \
    --change 'EXPOSE 8080' \
    --change "LABEL poolui.image-recipe=$RECIPE" \
    --change 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]' \
    - "$IMAGE" >/dev/null || die "docker import of $IMAGE failed"
  docker run --rm --network none "$IMAGE" sh -c 'timeout -s KILL 5 true && httpd --help >/dev/null 2>&1; test -x /bin/httpd' \
    || die "image $IMAGE was built but does not run"
  say "image $IMAGE built"
}

# $1 the root being made: this machine's python3, its standard library (no tests, no site-packages) and
# every shared library it or its extension modules load, at the same paths.
copy_python() {
  local root=$1 py lib f
  py=$(readlink -f /usr/bin/python3)
  lib=$(dirname "$py")/../lib/$(basename "$py")
  [ -x "$py" ] && [ -d "$lib" ] || return 1
  mkdir -p "$root/usr/bin" "$root/usr/lib"
  cp "$py" "$root/usr/bin/" && ln -s "$(basename "$py")" "$root/usr/bin/python3"
  tar -C "$(dirname "$lib")" --exclude=test --exclude=tests --exclude=idlelib --exclude=tkinter \
    --exclude=ensurepip --exclude=site-packages --exclude=dist-packages --exclude=__pycache__ -c "$(basename "$lib")" \
    | tar -C "$root/usr/lib" -x
  for f in $( { ldd "$py"; for so in "$lib"/lib-dynload/*.so; do ldd "$so"; done; } | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | sort -u); do
    mkdir -p "$root$(dirname "$f")" && cp -L "$f" "$root$f"
  done
  [ -e /lib64 ] && [ ! -e "$root/lib64" ] && ln -s usr/lib64 "$root/lib64" 2>/dev/null; true
}

build_py_image() {
  local have
  have=$(docker image inspect --format '{{ index .Config.Labels "poolui.image-recipe" }}' "$PY_IMAGE" 2>/dev/null || true)
  if [ "$have" = "$PY_RECIPE" ]; then say "image $PY_IMAGE present"; return 0; fi
  [ -x /usr/bin/python3 ] || { say "no /usr/bin/python3 here: $PY_IMAGE not built (the Docker agent's tests skip)"; return 0; }
  say "building $PY_IMAGE from /bin/busybox and /usr/bin/python3 (docker import, no registry)"
  local root applet
  [ -z "$ROOTFS_TMP" ] || rm -rf "$ROOTFS_TMP"   # the busybox image's, built just before
  root=$(mktemp -d /tmp/poolui-rootfs.XXXXXX)
  ROOTFS_TMP=$root
  mkdir -p "$root"/{bin,etc,www,work,tmp,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  copy_python "$root" || die "could not copy /usr/bin/python3 and its library"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/work:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'poolui sandbox ok\n' >"$root/www/index.html"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | docker import \
    --change 'ENV PATH=/usr/bin:/bin' \
    --change 'WORKDIR /work' \
    --change 'EXPOSE 8080' \
    --change "LABEL poolui.image-recipe=$PY_RECIPE" \
    --change 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]' \
    - "$PY_IMAGE" >/dev/null || die "docker import of $PY_IMAGE failed"
  rm -rf "$root"; ROOTFS_TMP=
  docker run --rm --network none "$PY_IMAGE" python3 -I -S -c 'import ctypes, json, subprocess, select, socket, zipimport, pwd' \
    || die "image $PY_IMAGE was built but its python3 does not run"
  say "image $PY_IMAGE built"
}

case "${1:-all}" in
  all) install_packages; start_dockerd; build_image; build_py_image ;;
  start) start_dockerd ;;
  stop) stop_dockerd ;;
  image) build_image; build_py_image ;;
  status) if engine_up; then say "up: $(docker version --format '{{.Server.Version}}')"; else say "down"; exit 1; fi ;;
  *) die "usage: $0 [all|start|stop|image|status]" ;;
esac
