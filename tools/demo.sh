#!/usr/bin/env bash
# The README's demo command: install dependencies, build (release), run the
# demo. Extra arguments go to the demo program (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target symwire_demo
exec build/release/examples/symwire_demo "$@"
