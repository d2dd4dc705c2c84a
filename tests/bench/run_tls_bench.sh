#!/usr/bin/env bash
# What TLS costs: `sepconv-client bench` at 16 clients against three
# sepconv-servers running side by side over 127.0.0.1 -- plaintext, TLS, and
# mutual TLS with bearer-token auth -- measured in interleaved rounds
# (P, T, M, P, T, M, ...) so background load hits all alike; medians of the
# rounds and their ratio to plaintext. Certificates are generated with
# openssl into a temp dir. Client and servers share this machine's CPUs.
#
# Usage: tests/bench/run_tls_bench.sh [BUILD_DIR]   (default: build)
# Environment: CONCURRENCY (16), SHAPES ("1,32,8,8 1,32,56,56"), ROUNDS (3),
#   WINDOW_MS (1000), MAX_WINDOWS (5).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
server_bin=$build/server/sepconv-server
client_bin=$build/client/sepconv-client
for b in "$server_bin" "$client_bin"; do
  [ -x "$b" ] || { echo "run_tls_bench: $b missing; build sepconv-server sepconv-client" >&2; exit 2; }
done
concurrency=${CONCURRENCY:-16}
shapes=${SHAPES:-"1,32,8,8 1,32,56,56"}
rounds=${ROUNDS:-3}
window_ms=${WINDOW_MS:-1000}
max_windows=${MAX_WINDOWS:-5}

# shellcheck source=tests/testing/servers.sh
source tests/testing/servers.sh

# A throw-away CA, a server certificate for localhost and a client certificate.
pki() {
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 -days 1 "${ec[@]}" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" -subj /CN=bench-ca
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tmp/server.ext"
  printf 'extendedKeyUsage=clientAuth\n' >"$tmp/client.ext"
  for who in server client; do
    openssl req -new "${ec[@]}" -keyout "$tmp/$who.key" -out "$tmp/$who.csr" -subj "/CN=$who"
    openssl x509 -req -days 1 -in "$tmp/$who.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
      -set_serial "0x$RANDOM" -out "$tmp/$who.crt" -extfile "$tmp/$who.ext"
  done
  echo "bench-token-$RANDOM$RANDOM" >"$tmp/tokens"
} >/dev/null 2>&1
pki

tls_client="--tls --tls_ca=$tmp/ca.crt --tls_server_name=localhost"
start_server plain
client_flags[plain]=""
start_server tls --tls_cert="$tmp/server.crt" --tls_key="$tmp/server.key"
client_flags[tls]="$tls_client"
start_server mtls --tls_cert="$tmp/server.crt" --tls_key="$tmp/server.key" \
  --tls_client_ca="$tmp/ca.crt" --auth_token_file="$tmp/tokens"
client_flags[mtls]="$tls_client --tls_cert=$tmp/client.crt --tls_key=$tmp/client.key --token_file=$tmp/tokens"
wait_servers 150 plain tls mtls

# Prints "infer/s p50 p99" of one bench run.
bench() {
  local name=$1 shape=$2
  # shellcheck disable=SC2086
  "$client_bin" bench --server="127.0.0.1:${port[$name]}" ${client_flags[$name]} --shape="$shape" \
    --concurrency="$concurrency" --window_ms="$window_ms" --max_windows="$max_windows" \
    --warmup_ms=500 --csv=- | awk -F, 'NR == 2 { printf "%s %s %s\n", $7, $10, $13 }'
}
median() { tr ' ' '\n' | sort -g | awk 'NF { v[++n] = $1 } END { print v[int((n + 1) / 2)] }'; }

table="| input | clients | plaintext infer/s | TLS infer/s | TLS / plain | mTLS+token infer/s | mTLS+token / plain | p50 / p99 ms (plain, TLS, mTLS+token) |
|---|---|---|---|---|---|---|---|"
for shape in $shapes; do
  declare -A ips=() p50=() p99=()
  for _ in $(seq "$rounds"); do
    for name in plain tls mtls; do
      read -r i a b <<<"$(bench "$name" "$shape")"
      ips[$name]+="$i "
      p50[$name]+="$a "
      p99[$name]+="$b "
    done
  done
  declare -A m=()
  for name in plain tls mtls; do
    m[$name]=$(echo "${ips[$name]}" | median)
    m[${name}50]=$(echo "${p50[$name]}" | median)
    m[${name}99]=$(echo "${p99[$name]}" | median)
  done
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
  table+="
| ${shape//,/x} | $concurrency | ${m[plain]} | ${m[tls]} | **$(ratio "${m[tls]}" "${m[plain]}")** | ${m[mtls]} | **$(ratio "${m[mtls]}" "${m[plain]}")** | ${m[plain50]} / ${m[plain99]}, ${m[tls50]} / ${m[tls99]}, ${m[mtls50]} / ${m[mtls99]} |"
done
echo "$table"
echo
echo "medians of $rounds interleaved rounds; machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "rerun: tests/bench/run_tls_bench.sh $build"
