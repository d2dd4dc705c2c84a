#!/usr/bin/env bash
# System test of the container image, with buildah (no Docker engine, no
# registry needed):
#   1. debootstrap a minimal Debian bookworm root filesystem from the mirror
#      this machine's apt sources name, and import it as debian:bookworm-slim
#      (the tarball is cached; rebuilt when missing);
#   2. build the repository's Dockerfile, unchanged;
#   3. run the image's entrypoint and default flags as the image's user, on free
#      127.0.0.1 ports;
#   4. from the host: health, metadata, the image's HEALTHCHECK, an inference
#      compared with the host build's server on the same seeded input,
#      /metrics, SIGTERM under load and a clean exit, and no writes outside
#      /tmp (read-only root fs works); then the same image serving the compose
#      stack's repository deploy/models, mounted read-only;
#   5. print the image size and the measured times.
#
# Usage: container_test.sh SOURCE_DIR HOST_SERVER HOST_CLIENT
#   HOST_SERVER, HOST_CLIENT: sepconv-server and sepconv-client built on the host.
# Environment:
#   SEPCONV_CACHE_DIR  rootfs tarball and buildah store (default
#                      /var/cache/sepconv-serve); everything this test makes
#                      lives in that private store, so no other image is touched.
#   SEPCONV_IMAGE      tag to build (default sepconv-serve:test)
#   SEPCONV_SKIP_BUILD=1  reuse the image already built in the private store.
# Needs root, buildah and debootstrap (deploy/install-deps.sh test).
set -euo pipefail

die() { echo "FAIL: $*" >&2; exit 1; }
log() { printf '[container_test %(%H:%M:%S)T] %s\n' -1 "$*"; }
now_ms() { date +%s%3N; }

[ $# -eq 3 ] || die "usage: $0 SOURCE_DIR HOST_SERVER HOST_CLIENT"
src_dir=$(cd "$1" && pwd)
host_server=$2
host_client=$3
[ -f "$src_dir/Dockerfile" ] || die "no Dockerfile in $src_dir"
[ -x "$host_server" ] || die "host server $host_server is not built"
[ -x "$host_client" ] || die "host client $host_client is not built"
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, buildah chroot isolation)"
for tool in buildah debootstrap curl; do
  command -v "$tool" >/dev/null || die "$tool is missing: run deploy/install-deps.sh test"
done

cache_dir=${SEPCONV_CACHE_DIR:-/var/cache/sepconv-serve}
image=${SEPCONV_IMAGE:-sepconv-serve:test}
base_image=docker.io/library/debian:bookworm-slim
# Bump the suffix when build_rootfs_tar changes, so caches are rebuilt.
rootfs_tar=$cache_dir/debian-bookworm-minbase-v2.tar
mkdir -p "$cache_dir"
# A private store: this test can only see (and remove) its own images.
bah() {
  buildah --root "$cache_dir/storage" --runroot /run/sepconv-serve-buildah \
    --storage-driver vfs "$@"
}

work=$(mktemp -d /tmp/sepconv-container-test.XXXXXX)
containers=()
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for c in "${containers[@]}"; do bah rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
  [ $rc -eq 0 ] || echo "container_test FAILED (exit $rc)" >&2
  exit $rc
}
trap cleanup EXIT

# One run at a time per cache (the store, the base image, the tag); so any
# container in the private store is a leftover of a killed run.
exec 9>"$cache_dir/lock"
flock -w 3600 9 || die "another container test holds $cache_dir/lock"
bah rm --all >/dev/null 2>&1 || true

# --- 1. debian:bookworm-slim from this machine's Debian mirror ---------------

# Prints "URI SUITE" for each enabled deb source of bookworm, bookworm-updates
# and bookworm-security in the machine's apt sources (one-line and deb822).
apt_bookworm_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2, $3 }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no")
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print uris[i], suites[j]
        types = ""; enabled = ""; nu = 0; ns = 0
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = tolower($1); sub(/:$/, "", key)
        if (key == "types") { types = ""; for (i = 2; i <= NF; i++) types = types " " $i; types = types " " }
        else if (key == "uris") { nu = 0; for (i = 2; i <= NF; i++) uris[++nu] = $i }
        else if (key == "suites") { ns = 0; for (i = 2; i <= NF; i++) suites[++ns] = $i }
        else if (key == "enabled") { enabled = tolower($2) }
      }
      END { flush() }' "$f"
  done | awk '$2 ~ /^bookworm(-updates|-security)?$/' | sort -u
}

# Debootstraps a minbase bookworm and trims it like the official slim image
# (no docs, man pages or apt lists; apt set up to clean after itself).
build_rootfs_tar() {
  local sources mirror root=$work/rootfs
  sources=$(apt_bookworm_sources)
  mirror=$(awk '$2 == "bookworm" { print $1; exit }' <<<"$sources")
  [ -n "$mirror" ] || die "no 'bookworm' deb source in /etc/apt/sources.list{,.d/*}"
  log "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  awk '{ print "deb", $1, $2, "main" }' <<<"$sources" >"$root/etc/apt/sources.list"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
CFG
  echo 'force-unsafe-io' >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  find "$root/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/* "$root"/var/lib/apt/lists/* \
    "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/* \
    "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/* "$root"/tmp/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  : >"$root/etc/machine-id"
  tar --numeric-owner --xattrs -C "$root" -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$root"
}

import_base_image() {
  local sum stamp=$cache_dir/base-image.stamp ctr id
  sum=$(sha256sum "$rootfs_tar" | cut -d' ' -f1)
  if [ -f "$stamp" ] && id=$(bah inspect --type image --format '{{.FromImageID}}' "$base_image" 2>/dev/null) &&
    [ "$(cat "$stamp")" = "$sum $id" ]; then
    log "reusing $base_image (${id:0:12}) imported from the cached rootfs"
    return
  fi
  log "importing $rootfs_tar as $base_image"
  bah rmi -f "$base_image" >/dev/null 2>&1 || true
  ctr=$(bah from --name "sepconv-ct-$$-base" scratch)
  containers+=("$ctr")
  bah add "$ctr" "$rootfs_tar" / >/dev/null
  bah config --cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --os linux --arch amd64 "$ctr"
  bah commit --quiet --format docker "$ctr" "$base_image" >/dev/null
  bah rm "$ctr" >/dev/null
  id=$(bah inspect --type image --format '{{.FromImageID}}' "$base_image")
  echo "$sum $id" >"$stamp"
}

step_start=$(now_ms)
if [ ! -s "$rootfs_tar" ]; then build_rootfs_tar; fi
import_base_image
log "step 1 (base image) took $(( ($(now_ms) - step_start) / 1000 )) s"

[ "${SEPCONV_STOP_AFTER_BASE:-0}" = 1 ] && exit 0

# --- 2. the Dockerfile, unchanged ---------------------------------------------

if [ "${SEPCONV_SKIP_BUILD:-0}" = 1 ]; then
  bah inspect --type image "$image" >/dev/null 2>&1 || die "SEPCONV_SKIP_BUILD=1 but $image is not built"
  log "reusing $image"
else
  bah rmi -f "$image" >/dev/null 2>&1 || true
  revision=$(git -C "$src_dir" rev-parse HEAD 2>/dev/null || echo unknown)
  log "buildah bud $src_dir/Dockerfile -> $image (full log: $work/build.log on failure)"
  step_start=$(now_ms)
  # TMPDIR holds buildah's cache mounts (the builder's ccache) between runs.
  mkdir -p "$cache_dir/tmp"
  if ! TMPDIR=$cache_dir/tmp bah bud --isolation chroot --format docker --pull=never --jobs=2 \
    --build-arg REVISION="$revision" -f "$src_dir/Dockerfile" -t "$image" "$src_dir" \
    >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    die "buildah bud failed (last lines above)"
  fi
  build_secs=$(( ($(now_ms) - step_start) / 1000 ))
  log "step 2 (image build) took $build_secs s"
  bah rmi --prune >/dev/null 2>&1 || true  # dangling images of earlier runs, in our store only
fi

# --- 3. the image's entrypoint and flags, as its user, on free ports ----------

# Prints N free TCP ports on 127.0.0.1, one per line.
free_ports() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Prints one field of the image's config as NUL-separated words (the exec
# form of ENTRYPOINT, CMD, HEALTHCHECK), or the plain value for strings.
image_config() {
  bah inspect --type image "$image" | /usr/bin/python3 -c '
import json, sys
config = json.load(sys.stdin)["Docker"]["config"]
value = config.get(sys.argv[1])
if sys.argv[1] == "Healthcheck":
    value = (value or {}).get("Test") or []
if isinstance(value, list):
    sys.stdout.write("".join(v + "\0" for v in value))
elif value:
    sys.stdout.write(str(value))
' "$1"
}

# Prints the PID of the descendant of $1 whose command name is $2.
find_descendant() {
  local pid child found
  for pid in $(pgrep -P "$1"); do
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then echo "$pid"; return 0; fi
    if found=$(find_descendant "$pid" "$2"); then echo "$found"; return 0; fi
  done
  return 1
}

# Runs the host client's health check until it passes; fails after $2 s.
wait_serving() {
  local deadline=$(( $(now_ms) + $2 * 1000 ))
  until "$host_client" health --server="$1" --timeout_ms=500 >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
  serving_uptime=$(cut -d' ' -f1 /proc/uptime)
}

# Milliseconds from process $1's exec to the uptime $2 (seconds).
ms_since_process_start() {
  local ticks
  ticks=$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f20)
  awk -v up="$2" -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%d", (up - t / hz) * 1000 }'
}

# True while process $1 runs (not yet exited; a zombie has exited).
running() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

mapfile -d '' entrypoint < <(image_config Entrypoint)
mapfile -d '' default_cmd < <(image_config Cmd)
mapfile -d '' healthcheck < <(image_config Healthcheck)
user=$(image_config User)
[ ${#entrypoint[@]} -gt 0 ] || die "the image has no ENTRYPOINT"
[ -n "$user" ] || die "the image has no USER (it would run as root)"
[ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] || die "the image's USER is root"
[ "$(image_config StopSignal)" = SIGTERM ] || die "the image's STOPSIGNAL is not SIGTERM"
[ "${healthcheck[0]:-}" = CMD ] || die "the image has no exec-form HEALTHCHECK"

# Starts the image's entrypoint + CMD + "$@" as the image's user in a new
# container from the image, with buildah run options from the array
# run_options. Sets ctr, rootfs (its root, mounted), run_pid (buildah run),
# server_pid (the server inside), ready_ms (buildah run -> SERVING) and
# exec_ready_ms (the server's exec -> SERVING, without buildah's setup).
start_container() {
  local name=$1 log=$2
  shift 2
  ctr=$(bah from --name "sepconv-ct-$$-$name" "$image")
  containers+=("$ctr")
  rootfs=$(bah mount "$ctr")
  touch "$work/$name.started"
  local cmd=("${entrypoint[@]}" "${default_cmd[@]}" "$@")
  log "buildah run --user $user ${run_options[*]}: ${cmd[*]}"
  local start_ms
  start_ms=$(now_ms)
  bah run --isolation chroot --user "$user" "${run_options[@]}" "$ctr" -- "${cmd[@]}" \
    >"$log" 2>&1 &
  run_pid=$!
  pids+=("$run_pid")
  wait_serving "127.0.0.1:$grpc_port" 60 ||
    { cat "$log" >&2; die "the container's server was not SERVING within 60 s"; }
  ready_ms=$(( $(now_ms) - start_ms ))
  server_pid=$(find_descendant "$run_pid" "${entrypoint[0]:0:15}") ||
    die "no ${entrypoint[0]} process under buildah run"
  pids+=("$server_pid")
  exec_ready_ms=$(ms_since_process_start "$server_pid" "$serving_uptime")
  [ "$(stat -c %u "/proc/$server_pid")" = "${user%%:*}" ] ||
    die "the server does not run as UID ${user%%:*}"
}

# Sends SIGTERM to the server; sets exit_ms; fails unless it exits 0 in 60 s.
stop_container() {
  local term_ms deadline rc=0
  term_ms=$(now_ms)
  kill -TERM "$server_pid"
  deadline=$(( term_ms + 60000 ))
  while running "$server_pid"; do
    [ "$(now_ms)" -lt "$deadline" ] || die "the server did not exit within 60 s of SIGTERM"
    sleep 0.01
  done
  exit_ms=$(( $(now_ms) - term_ms ))
  wait "$run_pid" || rc=$?
  [ $rc -eq 0 ] || { cat "$1" >&2; die "the server exited with status $rc after SIGTERM"; }
}

# Fails if anything in the container's root was written since container $1
# started, outside /tmp and the mount points "${@:2}" (buildah run itself
# creates /run and volume targets): the image works on a read-only root.
check_no_writes() {
  local name=$1 written prune=(-path "$rootfs/tmp" -o -path "$rootfs/run") mount_point
  shift
  for mount_point in "$@"; do prune+=(-o -path "$rootfs$mount_point"); done
  written=$(find "$rootfs" -xdev \( "${prune[@]}" \) -prune -o -newer "$work/$name.started" \
    -print | sed "s|^$rootfs||")
  [ -z "$written" ] || die "the server wrote outside /tmp: $written"
}

# Runs the same seeded input (shape $2) through model $1 on the container's
# server and on the host build's server (started with "${@:4}"), and checks
# the outputs agree and have shape $3 (python tuple).
compare_with_host() {
  local model=$1 shape=$2 want=$3 who port host_pid
  shift 3
  "$host_server" --address=127.0.0.1 --grpc_port="$host_grpc_port" --http_port=0 --metrics_port=0 "$@" \
    >"$work/host_server.log" 2>&1 &
  host_pid=$!
  pids+=("$host_pid")
  wait_serving "127.0.0.1:$host_grpc_port" 30 ||
    { cat "$work/host_server.log" >&2; die "host server did not start"; }
  for who in container host; do
    port=$grpc_port
    [ $who = host ] && port=$host_grpc_port
    "$host_client" infer --server="127.0.0.1:$port" --model="$model" --shape="$shape" \
      --seed=20261129 --output="$work/$who.npy" >/dev/null ||
      die "inference of $model on the $who server failed"
  done
  kill -TERM "$host_pid"
  wait "$host_pid" || die "host server did not exit cleanly"
  /usr/bin/python3 - "$work/container.npy" "$work/host.npy" "$want" <<'PY' ||
import ast, sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
print(f"output {a.shape} {a.dtype}: max |container - host| = {np.abs(a - b).max():.3g}")
assert a.shape == ast.literal_eval(sys.argv[3]), a.shape
assert np.isfinite(a).all() and np.abs(a).max() > 0
# Each server picks its layout by timing, so sums may run in another order:
# the tolerance the engine is held to against the reference elsewhere.
np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
PY
    die "$model: container and host outputs differ"
}

read -r -d '' grpc_port metrics_port host_grpc_port < <(free_ports 3 | tr '\n' ' '; printf '\0') || true
[ -n "$host_grpc_port" ] || die "could not find free ports"
run_options=()
start_container default "$work/server.log" --address=127.0.0.1 --grpc_port="$grpc_port" --http_port=0 \
  --metrics_port="$metrics_port"
log "container start -> SERVING: $ready_ms ms (server exec -> SERVING: $exec_ready_ms ms)"
default_ready_ms=$ready_ms
default_exec_ready_ms=$exec_ready_ms

# --- 4. from the host: health, metadata, inference, /metrics, SIGTERM ----------

"$host_client" health --server="127.0.0.1:$grpc_port" --service=sepconv ||
  die "health of model sepconv is not SERVING"
# The image's own HEALTHCHECK command, run inside the container (its port
# rewritten to the one this test chose).
hc=("${healthcheck[@]:1}")
hc=("${hc[@]//:8001/:$grpc_port}")
bah run --isolation chroot --user "$user" "$ctr" -- "${hc[@]}" ||
  die "the image's HEALTHCHECK (${hc[*]}) failed inside the container"
log "HEALTHCHECK inside the container passed: ${hc[*]}"

"$host_client" metadata --server="127.0.0.1:$grpc_port" >"$work/metadata.txt" ||
  die "metadata failed"
grep -q sepconv "$work/metadata.txt" || { cat "$work/metadata.txt" >&2; die "metadata does not name the model sepconv"; }
grep -q input "$work/metadata.txt" || { cat "$work/metadata.txt" >&2; die "metadata does not name the input"; }

compare_with_host sepconv 2,32,17,23 "(2, 64, 17, 23)"

curl -fsS --max-time 5 "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics.txt" ||
  die "could not scrape /metrics on port $metrics_port"
grep -Eq '^sepconv_inference_requests_total\{.*status="ok".*\} [1-9]' "$work/metrics.txt" ||
  die "/metrics shows no successful sepconv_inference_requests_total"
grep -q '^process_start_time_seconds' "$work/metrics.txt" || die "/metrics has no process metrics"
log "/metrics: $(grep -c '^sepconv_' "$work/metrics.txt") sepconv_ samples"

# SIGTERM while a closed-loop load runs: the server drains and exits 0.
# --stability_pct=0.001: the bench never stops early as "stable" (on a quiet
# machine three windows agree within 1.5 s), so the load lasts until SIGTERM.
"$host_client" bench --server="127.0.0.1:$grpc_port" --shape=1,32,56,56 --concurrency=8 \
  --warmup_ms=0 --window_ms=500 --max_windows=30 --stability_pct=0.001 --timeout_ms=5000 \
  >"$work/bench.log" 2>&1 &
bench_pid=$!
pids+=("$bench_pid")
sleep 2
kill -0 "$bench_pid" 2>/dev/null || { cat "$work/bench.log" >&2; die "the load generator stopped early"; }
stop_container "$work/server.log"
kill -TERM "$bench_pid" 2>/dev/null || true
wait "$bench_pid" 2>/dev/null || true
grep -v 'level=warning msg="request failed"' "$work/server.log" || true
log "SIGTERM under load -> exit: $exit_ms ms (exit status 0)"
load_exit_ms=$exit_ms
check_no_writes default

# The compose stack's server: its command flags from deploy/docker-compose.yml
# and its model repository deploy/models mounted read-only, as compose does.
mapfile -d '' compose_flags < <(/usr/bin/python3 - "$src_dir/deploy/docker-compose.yml" <<'PY'
import sys
import yaml
with open(sys.argv[1]) as f:
    command = yaml.safe_load(f)["services"]["sepconv"].get("command", [])
sys.stdout.write("".join(arg + "\0" for arg in command))
PY
)
printf '%s\n' "${compose_flags[@]}" | grep -qx -- '--model_repository=/models' ||
  die "no --model_repository=/models in deploy/docker-compose.yml's sepconv command"
run_options=(--volume "$src_dir/deploy/models:/models:ro")
start_container repository "$work/server_repository.log" "${compose_flags[@]}" \
  --address=127.0.0.1 --grpc_port="$grpc_port" --http_port=0 --metrics_port=0
log "with deploy/models: start -> SERVING $ready_ms ms (server exec -> SERVING: $exec_ready_ms ms)"
"$host_client" health --server="127.0.0.1:$grpc_port" --service=mobilenet_v1 ||
  die "model mobilenet_v1 from deploy/models is not SERVING"
compare_with_host mobilenet_v1 1,32,40,40 "(1, 512, 5, 5)" --model_repository="$src_dir/deploy/models"
stop_container "$work/server_repository.log"
check_no_writes repository /models

# --- 5. size ------------------------------------------------------------------

mkdir -p "$work/oci"
bah push --quiet "$image" "oci:$work/oci:sepconv" >/dev/null
compressed=$(du -sb "$work/oci/blobs" | cut -f1)
echo "=== container_test figures ==="
echo "image: $image, $(bah images --format '{{.Size}}' "$image") uncompressed, $((compressed / 1000000)) MB compressed (gzip layers)"
[ -n "${build_secs:-}" ] && echo "image build: $build_secs s"
echo "container start -> SERVING: $default_ready_ms ms (buildah run -> health SERVING), of which server exec -> SERVING: $default_exec_ready_ms ms"
echo "SIGTERM under load -> exit: $load_exit_ms ms"
echo "container_test PASSED"
