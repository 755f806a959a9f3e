#!/usr/bin/env bash
# The README's demo command: install dependencies, build (release), run the
# demo: an orchestrator and three agent processes over TCP on 127.0.0.1,
# millions of streamed tasks, a connection cut and resumed midway, then
# throughput and latency (examples/demo.cpp). Extra arguments go to the
# demo program (try --help). The codec-only demo (frames encoded, decoded,
# corrupted; codec throughput): cmake --build --preset release --target
# symwire_codec_demo && build/release/examples/symwire_codec_demo
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target symwire_demo
exec build/release/examples/symwire_demo "$@"
