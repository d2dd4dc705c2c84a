#!/usr/bin/env bash
# Installs the Debian 12 packages sepconv-serve needs, only those missing.
# Usage: deploy/install-deps.sh build|test|runtime
#   build:   compilers and -dev libraries to build the server and client
#   test:    build + what the test suite starts for real (PyTorch, Prometheus,
#            openssl, buildah, debootstrap, clang for the fuzzer)
#   runtime: the shared libraries the binaries need (used by the Dockerfile)
set -euo pipefail

build_pkgs=(g++ cmake ccache ninja-build pkg-config libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  protobuf-compiler libabsl-dev libdnnl-dev ocl-icd-opencl-dev prometheus-cpp-dev libonnx-dev)
test_pkgs=("${build_pkgs[@]}" libgtest-dev libgmock-dev libbenchmark-dev prometheus
  python3-torch python3-numpy python3-onnx python3-yaml openssl buildah podman debootstrap clang
  libclang-rt-14-dev gnuplot-nox curl ca-certificates)
runtime_pkgs=(libgrpc++1.51 libgrpc29 libprotobuf32 libdnnl2 libprometheus-cpp-core1.0
  libprometheus-cpp-pull1.0 libonnx1 libabsl20220623 libgomp1 ca-certificates)

case "${1:-}" in
  build) want=("${build_pkgs[@]}") ;;
  test) want=("${test_pkgs[@]}") ;;
  runtime) want=("${runtime_pkgs[@]}") ;;
  *) echo "usage: $0 build|test|runtime" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
