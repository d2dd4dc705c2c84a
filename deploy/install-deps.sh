#!/usr/bin/env bash
# Installs the Debian 12 packages sepconv-serve needs, only those missing.
# Usage: deploy/install-deps.sh build|test|runtime
#   build:   compilers and -dev libraries to build the server and client
#   test:    build + what the test suite starts for real (PyTorch, Prometheus,
#            openssl, buildah, debootstrap, clang for the fuzzer), kubectl
#            (Debian's kubernetes-client, unless a kubectl is already on PATH)
#            and the npm schema validator of deploy/k8s, installed with
#            `npm ci` into tests/deploy/k8s_validate/node_modules (gitignored)
#   runtime: the shared libraries the binaries need (used by the Dockerfile)
set -euo pipefail

build_pkgs=(g++ cmake ccache ninja-build pkg-config libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  protobuf-compiler libabsl-dev libdnnl-dev ocl-icd-opencl-dev prometheus-cpp-dev libonnx-dev
  libcpp-httplib-dev libboost-dev rapidjson-dev libsimdjson-dev libfast-float-dev libssl-dev
  zlib1g-dev)
test_pkgs=("${build_pkgs[@]}" libgtest-dev libgmock-dev libbenchmark-dev prometheus
  python3-torch python3-numpy python3-onnx python3-yaml openssl buildah podman debootstrap clang
  libclang-rt-14-dev gnuplot-nox curl ca-certificates libxnnpack-dev libpthreadpool-dev)
runtime_pkgs=(libgrpc++1.51 libgrpc29 libprotobuf32 libdnnl2 libprometheus-cpp-core1.0
  libprometheus-cpp-pull1.0 libonnx1 libabsl20220623 libgomp1 ca-certificates libssl3 libsimdjson14)

# kubectl renders deploy/k8s (tests/deploy/k8s_validate.sh); node runs the
# schema validator. Debian's packages only where the machine has none (a
# kubectl from elsewhere would conflict with kubernetes-client's file).
command -v kubectl > /dev/null || test_pkgs+=(kubernetes-client)
command -v npm > /dev/null || test_pkgs+=(nodejs npm)

install_k8s_validator() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/deploy/k8s_validate"
  [ -d "$dir/node_modules/kubernetes-models" ] && return 0
  echo "Installing the k8s schema validator (npm ci in $dir)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

case "${1:-}" in
  build) want=("${build_pkgs[@]}") ;;
  test)
    want=("${test_pkgs[@]}") ;;
  runtime) want=("${runtime_pkgs[@]}") ;;
  *) echo "usage: $0 build|test|runtime" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ "$1" = test ]; then
  install_k8s_validator
fi
