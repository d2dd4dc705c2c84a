# shellcheck shell=bash disable=SC2034,SC2154
# Sourced (bash) by the bench and stress scripts: real sepconv-servers on
# 127.0.0.1 in the background. Needs $server_bin and $client_bin. Makes $tmp
# (removed on exit, when every server started here is killed) and the arrays
# port[NAME], server_pid[NAME] and client_flags[NAME] (what sepconv-client
# needs besides --server to reach NAME: --tls ..., set by the caller).

tmp=$(mktemp -d)
pids=()
declare -A port server_pid client_flags
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server NAME [FLAG...]: a server on a free gRPC port (no metrics
# endpoint), its output in $tmp/NAME.log.
start_server() {
  local name=$1
  shift
  port[$name]=$(free_port)
  "$server_bin" --address=127.0.0.1 --grpc_port="${port[$name]}" --http_port=0 --metrics_port=0 "$@" \
    >"$tmp/$name.log" 2>&1 &
  server_pid[$name]=$!
  pids+=($!)
}

# wait_servers TRIES NAME...: polls each server's health (TRIES times, 0.2 s
# apart) until it answers; exits 1 with its log when one never does.
wait_servers() {
  local tries=$1 name ok
  shift
  for name in "$@"; do
    ok=""
    for _ in $(seq "$tries"); do
      # shellcheck disable=SC2086
      if "$client_bin" health --server="127.0.0.1:${port[$name]}" ${client_flags[$name]} \
        --timeout_ms=500 >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.2
    done
    [ -n "$ok" ] || { echo "$(basename "$0"): $name server did not come up:" >&2; cat "$tmp/$name.log" >&2; exit 1; }
  done
}
