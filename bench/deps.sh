#!/usr/bin/env bash
# bench/deps.sh: packages for the end-to-end comparison benchmarks only
# (bench/run_e2e.sh), kept out of tools/deps.sh so the build and test
# command never needs them: libzmq (the zmq-bench peer, found by pkg-config),
# gRPC C++ 1.51 + protobuf 3.21 with protoc and grpc_cpp_plugin (the
# grpc-bench peer: pkg-config grpc++ / protobuf, code generated at build time)
# and matplotlib (the chart of bench/report.py). Debian's packages only.
set -euo pipefail
pkgs=(libzmq3-dev libgrpc++-dev libprotobuf-dev protobuf-compiler
  protobuf-compiler-grpc pkg-config python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "bench/deps.sh: all present (${pkgs[*]})"
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
