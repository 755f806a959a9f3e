#!/usr/bin/env bash
# The README's test command (and what CI runs): install dependencies, then
#   1. static checks: the golden vectors re-decoded by the independent Python
#      reference, layering rules, clang-format, clang-tidy
#   2. g++ Release build (`release` preset, -O3, the compiled libraries),
#      every target (library, tests, examples, tools, bench) + every ctest
#      (unit tests of the codec and the session, vectors, corpus replays,
#      README examples, examples, symwire-soak with 100,000 tasks, NATS,
#      WebSocket and Python interop, the install/consumer test in its full
#      mode: find_package, pkg-config, shared, add_subdirectory)
#   3. g++ header-only build (-O0) of one program per layer, the README
#      examples and the tools + their ctest cases and the header-only
#      consumer;
#      -fno-exceptions release build + the ctest cases that need no Catch2
#   4. clang-14 ASan+UBSan build (Debug: SYMWIRE_ASSERT on) + every ctest
#   5. clang-14 ThreadSanitizer build of the transport/runtime tests + those
#      ctest cases (real sockets on 127.0.0.1 and Unix sockets)
#   6. libFuzzer build (clang, ASan+UBSan); each fuzzer runs FUZZ_SECONDS
#      (default 30) and any finding fails the run
# Why no g++ Debug build: it compiled the same sources with the same
# compiler as step 2 and ran the same ctest cases as step 4. Step 4 is a
# Debug build (internal assertions on), step 2 catches g++'s warnings (more
# of them at -O3 than at -O0, from inlining: -Wrestrict and
# -Wmaybe-uninitialized broke the plain Release build once while Debug
# passed).
# Why step 3 builds only the programs: step 2 used to be a header-only
# build of every target, but then the plain Release build users run
# (issue #12 §1) was never built whole, and compiling the library's bodies
# into each of ~40 test files costs more than compiling them once. What
# header-only mode can break on its own (a body not marked inline, a detail
# header's include order, the installed header-only package) shows in the
# programs: symwire-soak links two translation units that both include the
# runtime, the transports and NATS (a body not marked inline fails its
# link), and one example per layer (codec, session, runtime over TCP,
# WebSocket) plus the README's two examples (a pool, methods, metrics)
# cover every layer's headers. The other examples would add minutes of
# compiling mostly the same headers again.
# Why step 3 compiles at -O0 (the header-only preset itself is -O3): what
# it checks is linkage (every body in a header inline, one definition
# across translation units), which no optimisation level changes; -O3's
# extra warnings on the same code come from step 2. At -O3 the step took
# 183 s of a 36-minute run, at -O0 93 s (measured on 2 vCPUs).
# Why the fuzz preset builds no transport (SYMWIRE_BUILD_TRANSPORT and
# _NATS OFF): the fuzz targets link symwire::symwire only (ws_frame's
# parser is a header of its own), and building the Asio libraries again
# with ASan took 107 of the step's 143 s.
# Why install_consumer has a COST (tests/CMakeLists.txt): it builds the
# libraries again (shared, add_subdirectory) for about two minutes; started
# last, as it was, it ran alone for most of them.
# Why the test executables use precompiled headers (SYMWIRE_PCH, ON here,
# tests/CMakeLists.txt): CI builds them from scratch in the release,
# asan-ubsan and tsan presets (no compiler cache), and each of ~40 test
# files parsed Catch2, Abseil, symwire's headers and, in the transport
# tests, Asio and the runtime again; now each group parses them once per
# preset. A -DSYMWIRE_PCH=OFF build checks that test files include what
# they use.
# Why the Python package's own tests (python_vectors, _session, _aio,
# _types, _install) run in step 2 only: they run no C++ program, so steps 3
# and 4 ran the same Python code again. The interop cases (python_interop_*,
# which drive symwire-soak and the stdio examples) still run in every preset.
# Why the fuzzers of step 6 run two at a time (tools/run_fuzzers.sh, JOBS):
# each still gets FUZZ_SECONDS of a whole core, as when they ran one after
# another, so the same executions in 4 x 30 s instead of 7 x 30 s.
# Environment: FUZZ_SECONDS=N, JOBS=N (default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
JOBS=${JOBS:-$(nproc)}
start=$SECONDS
step() { printf '\n=== [%4ds] %s\n' $((SECONDS - start)) "$*"; }

step "dependencies"
tools/deps.sh

step "golden vectors against the independent reference (tools/vectors_ref.py)"
/usr/bin/python3 tools/vectors_ref.py selftest
/usr/bin/python3 tools/vectors_ref.py check

step "layering and formatting"
tools/check_layering.sh
git ls-files -- '*.cpp' '*.hpp' '*.ipp' 2>/dev/null | xargs clang-format-14 --dry-run --Werror
echo "clang-format: OK"

passed=0
ctest_log=$(mktemp)
trap 'rm -f "$ctest_log"' EXIT
build_and_test() {  # preset [target [ctest exclude regex]]
  step "$1: configure and build"
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1" -j"$JOBS" ${2:+--target "$2"}
  step "$1: ctest"
  ctest --preset "$1" -j"$JOBS" ${3:+-E "$3"} | tee "$ctest_log"
  # "100% tests passed, 0 tests failed out of N" (ctest exits non-zero on
  # any failure, so reaching here means all N passed).
  passed=$((passed + $(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$ctest_log")))
}

step "clang-tidy (library, demo and examples; .clang-tidy checks as errors)"
# The debug preset's compile commands (configure only: nothing to build).
cmake --preset debug >/dev/null
# One file per clang-tidy process, JOBS at a time (about 3 minutes serially).
printf '%s\n' src/symwire.cpp src/symwire_transport.cpp src/symwire_tls.cpp \
  src/symwire_ws.cpp src/symwire_wss.cpp examples/ws_agent.cpp \
  $(grep -q symwire_nats.cpp build/debug/compile_commands.json && echo src/symwire_nats.cpp) \
  $(grep -q symwire_nats_runtime.cpp build/debug/compile_commands.json && echo src/symwire_nats_runtime.cpp examples/nats_pool.cpp) \
  examples/demo.cpp examples/session_memory.cpp examples/stdio_agent.cpp \
  examples/stdio_orchestrator.cpp examples/codec_demo.cpp \
  examples/orchestrator_worker.cpp examples/handoff_chain.cpp \
  examples/streaming.cpp examples/cancel_deadline.cpp examples/reconnect.cpp \
  examples/methods.cpp \
  tools/dump.cpp |
  xargs -P "$JOBS" -n 1 clang-tidy-14 -p build/debug --quiet \
    --warnings-as-errors='*'
echo "clang-tidy: OK"
build_and_test release
step "header-only: the programs, the README example and the consumer"
cmake --preset header-only -DCMAKE_CXX_FLAGS_RELEASE="-O0 -DNDEBUG" >/dev/null
cmake --build --preset header-only -j"$JOBS" --target symwire_codec_demo \
  session_memory symwire_demo ws_agent readme_example readme_runtime_example \
  symwire-dump symwire-soak
ctest --preset header-only -R \
  '^(example_(codec_demo|session_memory|demo_cluster|demo_metrics|ws_agent)|readme_example|readme_runtime_example|install_consumer)$' |
  tee "$ctest_log"
passed=$((passed + $(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$ctest_log")))
# The Python package's own tests run no C++ program: the release preset
# runs them, the others would repeat them unchanged.
python_only='^python_(vectors|session|aio|types|install)$'
build_and_test no-exceptions "" "$python_only"
build_and_test asan-ubsan "" "$python_only"
build_and_test tsan transport_tests

step "fuzz: build (clang-14 libFuzzer + ASan+UBSan)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$JOBS"
step "fuzz: ${FUZZ_SECONDS}s per target"
tools/run_fuzzers.sh build/fuzz "$FUZZ_SECONDS"

step "all passed"
echo "ctest cases across presets, plus ${FUZZ_SECONDS}s of each fuzzer:"
echo "tests: ${passed} passed, 0 failed"
