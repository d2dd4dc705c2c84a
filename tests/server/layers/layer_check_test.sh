#!/usr/bin/env bash
# The build's layer check (server/check_layer.cmake) refuses what it must:
# a core file including a gRPC header, a models file including the core, an
# engine public header including oneDNN, another library's internal/ header;
# and no spelling of the include gets one past it (blanks around `#`,
# relative, unnormalised or absolute paths, legacy gRPC prefixes). It accepts
# a file that includes only its own and lower layers. Each case runs the
# checker as the build does, on a file placed in a scratch repository.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# check NAME EXPECT(pass|fail) FILE ALLOW FORBID FRONTEND CONTENT [MESSAGE]
# FILE is where the case's file lives, relative to the scratch repository
# root: relative includes resolve against its folder, and internal/ headers
# belong to the folder above them.
check() {
  local name=$1 expect=$2 file=$3 allow=$4 forbid=$5 frontend=$6 content=$7 message=${8:-}
  mkdir -p "$(dirname "$work/$file")"
  printf '%s\n' "$content" > "$work/$file"
  local out rc=0
  out=$(cmake -DLAYER="$name" "-DALLOW=$allow" "-DFORBID=$forbid" "-DFILES=$work/$file" \
    -DFRONTEND="$frontend" -DROOT="$work" -DSTAMP="$work/$name.stamp" \
    -P "$root/server/check_layer.cmake" 2>&1) || rc=$?
  rm -f "$work/$file"
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

# The scratch repository's headers that relative includes resolve to.
mkdir -p "$work/server/core" "$work/server/batching/internal" "$work/engine/internal"
touch "$work/server/core/auth.h" "$work/server/batching/internal/clock.h" \
  "$work/engine/internal/onednn_plan.h"

core_allow='engine/|server/metrics/|server/batching/|server/models/|server/core/|model_config.pb.h'
models_allow='engine/|server/metrics/|server/batching/|server/models/|model_config.pb.h'
grpc_allow="$core_allow|server/grpc/|grpc_service.pb.h"
engine_forbid='^engine/internal/|^engine/loader/internal/|^dnnl'
core=server/core/case.h
models=server/models/case.h
protocol="a protocol type below the frontends"
not_linked="not a layer"

# What the check has always refused, and accepted.
check core_includes_grpcpp fail $core "$core_allow" "" FALSE '#include "grpcpp/grpcpp.h"' "$protocol"
check core_includes_service_proto fail $core "$core_allow" "" FALSE '#include "grpc_service.pb.h"' \
  "$protocol"
check core_includes_httplib fail $core "$core_allow" "" FALSE '#include <httplib.h>' "$protocol"
check core_includes_beast fail $core "$core_allow" "" FALSE '#include "boost/beast/http.hpp"' \
  "$protocol"
check core_includes_asio fail $core "$core_allow" "" FALSE '#include <boost/asio/ip/tcp.hpp>' \
  "$protocol"
check models_includes_core fail $models "$models_allow" "" FALSE '#include "server/core/auth.h"' \
  "not a layer models_includes_core links"
check core_includes_grpc_frontend fail $core "$core_allow" "" FALSE \
  '#include "server/grpc/server.h"' "$not_linked"
check engine_public_includes_onednn fail engine/executor.h 'engine/' "$engine_forbid" FALSE \
  '#include "dnnl.hpp"' "forbidden in layer"
check engine_public_includes_internal fail engine/executor.h 'engine/' "$engine_forbid" FALSE \
  '#include "engine/internal/onednn_plan.h"' "forbidden in layer"
check core_own_and_lower pass $core "$core_allow" "" FALSE \
  "$(printf '#include <vector>\n#include "absl/status/status.h"\n#include "server/models/model_registry.h"\n#include "server/core/auth.h"')"
check frontend_may_include_grpc pass server/grpc/case.h "$grpc_allow" "" TRUE \
  "$(printf '#include "grpcpp/grpcpp.h"\n#include "grpc_service.pb.h"\n#include "server/grpc/server.h"')"

# The directive, however it is spelt (issue 25, bypass 1).
check space_after_hash fail $models "$models_allow" "" FALSE '# include "server/core/auth.h"' \
  "case.h:1: # include \"server/core/auth.h\": not a layer"
check tab_after_hash fail $models "$models_allow" "" FALSE "$(printf '#\tinclude "server/core/auth.h"')" \
  "$not_linked"
check indented fail $models "$models_allow" "" FALSE '  #include "server/core/auth.h"' "$not_linked"
check tab_indented_spaced fail $models "$models_allow" "" FALSE \
  "$(printf '\t#  include "server/core/auth.h"')" "$not_linked"
check no_space_before_path fail $models "$models_allow" "" FALSE '#include<server/core/auth.h>' \
  "$not_linked"
check comment_before_directive fail $models "$models_allow" "" FALSE \
  '/* auth */ #/**/include "server/core/auth.h"' "$not_linked"
check digraph_hash fail $models "$models_allow" "" FALSE '%:include "server/core/auth.h"' "$not_linked"
check include_next fail $models "$models_allow" "" FALSE '#include_next "server/core/auth.h"' \
  "$not_linked"
check continued_line fail $models "$models_allow" "" FALSE \
  "$(printf '#include <vector>\n#in\\\nclude \\\n  "server/core/auth.h"')" \
  "case.h:2: #include   \"server/core/auth.h\": not a layer"
check computed_include fail $models "$models_allow" "" FALSE \
  "$(printf '#define AUTH "server/core/auth.h"\n#include AUTH')" "a computed include"

# Relative, unnormalised and absolute paths (bypasses 2 and 3).
check relative_parent fail $models "$models_allow" "" FALSE '#include "../core/auth.h"' \
  "(resolves to server/core/auth.h): not a layer"
check relative_from_nested_folder fail server/models/sub/case.h "$models_allow" "" FALSE \
  '#include "../../core/./auth.h"' "(resolves to server/core/auth.h): not a layer"
check bare_name_next_to_file fail server/core/stray.h "$models_allow" "" FALSE '#include "auth.h"' \
  "(resolves to server/core/auth.h): not a layer"
check bare_internal_next_to_public_header fail engine/executor.h 'engine/' "$engine_forbid" FALSE \
  '#include "internal/onednn_plan.h"' "(resolves to engine/internal/onednn_plan.h): forbidden in layer"
check unnormalised_prefix fail $models "$models_allow" "" FALSE \
  '#include "server/models/../core/auth.h"' "(resolves to server/core/auth.h): not a layer"
check dot_slash_from_root fail $models "$models_allow" "" FALSE '#include "./server//core/auth.h"' \
  "(resolves to server/core/auth.h): not a layer"
check absolute_path fail $models "$models_allow" "" FALSE "#include \"$work/server/core/auth.h\"" \
  "(resolves to server/core/auth.h): not a layer"
check climbs_above_root fail $models "$models_allow" "" FALSE '#include "../../../outside.h"' \
  "climbs above the repository root"
check non_header_project_file fail $models "$models_allow" "" FALSE \
  '#include "server/models/auth.inc"' "not a .h file"

# Another library's internal/ headers (bypass 4).
check models_includes_engine_internal fail $models "$models_allow" "" FALSE \
  '#include "engine/internal/arena.h"' "the internal header of engine/, for files below engine/ only"
check core_includes_batching_internal fail $core "$core_allow" "" FALSE \
  '#include "server/batching/internal/batch_queue.h"' "the internal header of server/batching/"
check frontend_includes_core_internal fail server/grpc/case.h "$grpc_allow" "" TRUE \
  '#include "server/core/internal/secret.h"' "the internal header of server/core/"
check engine_includes_loader_internal fail engine/executor.cc 'engine/' "" FALSE \
  '#include "engine/loader/internal/status_macros.h"' "the internal header of engine/loader/"
check own_internal pass server/batching/scheduler.cc "$models_allow" "" FALSE \
  "$(printf '#include "server/batching/internal/batch_queue.h"\n#include "internal/clock.h"')"
# (engine/CMakeLists globs "." and so names its files engine/./loader/...)
check loader_uses_engine_internal pass engine/./loader/internal/onnx_graph.cc 'engine/' "" FALSE \
  "$(printf '#include "engine/loader/internal/onnx_graph.h"\n#include "engine/internal/arena.h"')"

# Protocol headers under every spelling (bypass 5); protobuf itself is not one.
check legacy_grpcxx fail $core "$core_allow" "" FALSE '#include <grpc++/grpc++.h>' "$protocol"
check grpcpp_angle fail $core "$core_allow" "" FALSE '#include <grpcpp/support/status.h>' "$protocol"
check grpc_core_c fail $core "$core_allow" "" FALSE '#include <grpc/grpc.h>' "$protocol"
check httplib_quoted fail $core "$core_allow" "" FALSE '#include "httplib.h"' "$protocol"
check grpc_stub fail $core "$core_allow|model_config.grpc.pb.h" "" FALSE \
  '#include "model_config.grpc.pb.h"' "$protocol"
check loader_uses_protobuf pass engine/loader/model_config.cc 'engine/|model_config.pb.h' "" FALSE \
  "$(printf '#include "google/protobuf/text_format.h"\n#include "model_config.pb.h"')"

# main.cc, the status conversion and the client have checks of their own
# (the ALLOW lists of server/, proto/ and client/CMakeLists.txt).
main_allow='engine/|server/|tests/testing/engine_gate.h'
status_allow='proto/status_convert.h'
client_allow='client/|proto/status_convert.h|grpc_service.pb.h|grpc_service.grpc.pb.h|health.pb.h'
client_allow="$client_allow|health.grpc.pb.h|model_config.pb.h"
check main_wires_the_layers pass server/./main.cc "$main_allow" "" TRUE \
  "$(printf '#include "server/grpc/server.h"\n#include "server/http/http_server.h"\n#include "tests/testing/engine_gate.h"')"
check main_includes_batching_internal fail server/./main.cc "$main_allow" "" TRUE \
  '#include "server/batching/internal/batch_queue.h"' "the internal header of server/batching/"
check main_includes_other_test_code fail server/./main.cc "$main_allow" "" TRUE \
  '#include "tests/testing/free_port.h"' "not a layer"
check main_includes_client fail server/./main.cc "$main_allow" "" TRUE '#include "client/client.h"' \
  "not a layer"
check status_convert_includes_server fail proto/./status_convert.cc "$status_allow" "" TRUE \
  '#include "server/core/auth.h"' "not a layer"
check status_convert_includes_generated fail proto/./status_convert.h "$status_allow" "" TRUE \
  '#include "grpc_service.pb.h"' "not a layer"
check client_includes_server fail client/./client.cc "$client_allow" "" TRUE \
  '#include "server/core/request_validation.h"' "not a layer"
check client_includes_engine fail client/./tensor.cc "$client_allow" "" TRUE \
  '#include "engine/model_spec.h"' "not a layer"
check client_relative_into_server fail client/./client.cc "$client_allow" "" TRUE \
  '#include "../server/core/auth.h"' "(resolves to server/core/auth.h): not a layer"
check client_own_and_generated pass client/./rest_client.cc "$client_allow" "" TRUE \
  "$(printf '#include "client/internal/rest_codec.h"\n#include "grpc_service.grpc.pb.h"\n#include "proto/status_convert.h"\n#include "httplib.h"')"

if (( failures > 0 )); then echo "$failures case(s) failed"; exit 1; fi
echo "all layer-check cases behave"
