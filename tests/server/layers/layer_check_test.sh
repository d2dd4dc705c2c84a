#!/usr/bin/env bash
# The build's layer check (server/check_layer.cmake) refuses what it must:
# a core file including a gRPC header, a models file including the core, an
# engine public header including oneDNN; and accepts a file that includes
# only its own and lower layers. Each case runs the checker as the build does.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# check NAME EXPECT(pass|fail) ALLOW FORBID FRONTEND CONTENT [MESSAGE]
check() {
  local name=$1 expect=$2 allow=$3 forbid=$4 frontend=$5 content=$6 message=${7:-}
  printf '%s\n' "$content" > "$work/$name.h"
  local out rc=0
  out=$(cmake -DLAYER="$name" "-DALLOW=$allow" "-DFORBID=$forbid" "-DFILES=$work/$name.h" \
    -DFRONTEND="$frontend" -DSTAMP="$work/$name.stamp" -P "$root/server/check_layer.cmake" 2>&1) || rc=$?
  if [[ $expect == pass && $rc -ne 0 ]]; then
    echo "FAIL $name: expected the check to pass:"; echo "$out"; failures=$((failures + 1))
  elif [[ $expect == fail && $rc -eq 0 ]]; then
    echo "FAIL $name: expected the check to fail"; failures=$((failures + 1))
  elif [[ $expect == fail && -n $message && $out != *"$message"* ]]; then
    echo "FAIL $name: the error does not say '$message':"; echo "$out"; failures=$((failures + 1))
  else
    echo "ok   $name ($expect)"
  fi
}

core_allow='engine/|server/metrics/|server/batching/|server/models/|server/core/|model_config.pb.h'
models_allow='engine/|server/metrics/|server/batching/|server/models/|model_config.pb.h'
check core_includes_grpcpp fail "$core_allow" "" FALSE '#include "grpcpp/grpcpp.h"' \
  "a protocol type below the frontends"
check core_includes_service_proto fail "$core_allow" "" FALSE '#include "grpc_service.pb.h"' \
  "a protocol type below the frontends"
check core_includes_httplib fail "$core_allow" "" FALSE '#include <httplib.h>' \
  "a protocol type below the frontends"
check models_includes_core fail "$models_allow" "" FALSE '#include "server/core/auth.h"' \
  "not a layer models_includes_core links"
check core_includes_grpc_frontend fail "$core_allow" "" FALSE \
  '#include "server/grpc/server.h"' "not a layer"
check engine_public_includes_onednn fail 'engine/' '^dnnl|^engine/internal/' FALSE \
  '#include "dnnl.hpp"' "forbidden in layer"
check engine_public_includes_internal fail 'engine/' '^dnnl|^engine/internal/' FALSE \
  '#include "engine/internal/onednn_plan.h"' "forbidden in layer"
check core_own_and_lower pass "$core_allow" "" FALSE \
  "$(printf '#include <vector>\n#include "absl/status/status.h"\n#include "server/models/model_registry.h"\n#include "server/core/auth.h"')"
check frontend_may_include_grpc pass "$core_allow|server/grpc/|grpc_service.pb.h" "" TRUE \
  "$(printf '#include "grpcpp/grpcpp.h"\n#include "grpc_service.pb.h"\n#include "server/grpc/server.h"')"

if (( failures > 0 )); then echo "$failures case(s) failed"; exit 1; fi
echo "all layer-check cases behave"
