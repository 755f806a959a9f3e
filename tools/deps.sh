#!/usr/bin/env bash
# Installs symwire's build and test dependencies from Debian 12's packages.
# Idempotent: when everything is already installed it does nothing.
# Package facts: ../shared/BUILD-NOTES.md (Boost 1.81 everywhere: it
# conflicts with libboost-dev 1.74).
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config
  clang-14 libclang-rt-14-dev clang-format-14 clang-tidy-14
  libboost1.81-dev libabsl-dev libxxhash-dev catch2 libbenchmark-dev
  libssl-dev openssl
  python3 python3-xxhash  # python/symwire (tools/vectors_ref.py, the vector check)
  python3-pytest  # python/tests: the runner of the Python unit tests (ctest python_*)
  python3-mypy  # python/symwire: the type check of the package (ctest python_types)
  python3-setuptools python3-wheel python3-venv python3-pip  # pip install --no-build-isolation ./python
  python3-websockets  # tests/transport/ws_interop.py: an independent WebSocket client
  tshark  # tests/wireshark: the Lua dissector's test (tools/wireshark)
  libnats-dev nats-server  # symwire::nats (SPEC.md §21) and its tests
  curl  # tests/cli/metrics_scrape.py: scrapes the demo agents' /metrics
)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
