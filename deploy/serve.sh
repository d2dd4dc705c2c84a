#!/usr/bin/env bash
# Installs what is missing, builds (incrementally) and starts sepconv-server.
# Extra arguments are passed to the server, e.g.
#   deploy/serve.sh --model_repository=/models --grpc_port=9001
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSEPCONV_BUILD_TESTS=OFF >/dev/null
cmake --build build --target sepconv-server sepconv-client
exec build/server/sepconv-server "$@"
