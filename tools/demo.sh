#!/usr/bin/env bash
# The README's demo command: install dependencies, build (release), run the
# demo: an orchestrator and three agent processes over TCP on 127.0.0.1,
# millions of streamed tasks, a connection cut and resumed midway, then
# throughput and latency (examples/demo.cpp). Extra arguments go to the
# demo program (try --help). The codec-only demo (frames encoded, decoded,
# corrupted; codec throughput): cmake --build --preset release --target
# symwire_codec_demo && build/release/examples/symwire_codec_demo
#
# tools/demo.sh --nats: the same idea over a NATS JetStream pool (SPEC.md
# §21; needs nats-server and libnats-dev, which tools/deps.sh installs): a
# nats-server of its own on 127.0.0.1, a pool of three agent processes, one
# of them killed with SIGKILL mid-run; its task is redelivered to another
# agent and every task completes exactly once (symwire-soak --transport
# nats --narrate). Extra arguments go to symwire-soak.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake --preset release >/dev/null
if [ "${1:-}" = "--nats" ]; then
  shift
  cmake --build --preset release -j"$(nproc)" --target symwire-soak
  exec build/release/tools/symwire-soak --transport nats --narrate \
    --tasks 24 --agents 3 --partials 3 --part-delay-ms 300 --window 6 \
    --kill-agents 1500:1500 --max-kills 1 --ack-wait-ms 1000 --seed 2 "$@"
fi
cmake --build --preset release -j"$(nproc)" --target symwire_demo
exec build/release/examples/symwire_demo "$@"
