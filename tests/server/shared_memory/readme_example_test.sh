#!/usr/bin/env bash
# Runs the worked example of docs/shared_memory.md (the sh block after its
# "shared-memory-example" marker) against a real sepconv-server started with
# --allow_shared_memory, with the example's port and object name swapped for
# a free port and a unique name, and checks what the example says it prints.
# Usage: readme_example_test.sh SERVER_BIN CLIENT_BIN DOC
set -euo pipefail
server_bin=$1
client_bin=$2
doc=$3

# shellcheck source=tests/testing/servers.sh
source "$(dirname "$0")/../../testing/servers.sh"
http=$(free_port)
client_flags[shm]=""
start_server shm --http_port="$http" --allow_shared_memory
wait_servers 150 shm
object="sepconv_doc_$$"
trap 'rm -f /dev/shm/$object; cleanup' EXIT

block=$(awk '/shared-memory-example/ {found=1; next} found && /^```sh/ {inside=1; next}
             inside && /^```/ {exit} inside {print}' "$doc")
[ -n "$block" ] || { echo "no example block after the marker in $doc" >&2; exit 1; }
script=${block//localhost:8000/127.0.0.1:$http}
script=${script//my_tensors/$object}
out=$(bash -euo pipefail -c "$script" 2>&1) || { echo "the example failed:" >&2; echo "$out" >&2; exit 1; }
echo "$out"

expect() {
  grep -qF -- "$1" <<<"$out" || { echo "FAIL: the example's output lacks: $1" >&2; exit 1; }
}
expect "{\"name\":\"in\",\"key\":\"/$object\",\"offset\":0,\"byte_size\":401408}"
expect "{\"name\":\"out\",\"key\":\"/$object\",\"offset\":401408,\"byte_size\":802816}"
expect '"outputs":[{"name":"output","datatype":"FP32","shape":[1,64,56,56]}]}'
# od's line of the output's first 4 floats: offset 401408, then 4 numbers that
# are not all zero (the model's bias reaches every output of a zero input).
line=$(grep -E '^0*401408 ' <<<"$out") || { echo "FAIL: no od line" >&2; exit 1; }
read -r -a floats <<<"${line#* }"
[ "${#floats[@]}" = 4 ] || { echo "FAIL: od printed ${#floats[@]} floats" >&2; exit 1; }
nonzero=0
for f in "${floats[@]}"; do [ "$f" != 0 ] && [ "$f" != -0 ] && nonzero=1; done
[ "$nonzero" = 1 ] || { echo "FAIL: the output is all zeros: $line" >&2; exit 1; }
# Unregistered and removed: the server maps nothing of it any more.
[ ! -e "/dev/shm/$object" ] || { echo "FAIL: the example left /dev/shm/$object" >&2; exit 1; }
if grep -q "$object" "/proc/${server_pid[shm]}/maps"; then
  echo "FAIL: the server still maps $object" >&2
  exit 1
fi
status=$(curl -s "127.0.0.1:$http/v2/systemsharedmemory/status")
[ "$status" = "[]" ] || { echo "FAIL: regions left: $status" >&2; exit 1; }
echo "docs/shared_memory.md example: ok"
