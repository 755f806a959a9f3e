#!/usr/bin/env bash
# bench/python_agent.sh: tasks/s of the Python agent (python/symwire,
# bench/python_agent.py) and of the C++ agent (symwire-bench-e2e --role
# server) under the same C++ orchestrator (symwire-bench-e2e --role client
# --mode throughput: --window tasks in flight on one TCP connection, each
# answered with one final response of the same size), in the same run,
# interleaved (each round runs every payload on both agents), medians over
# the rounds. Both agents use SPEC.md §19's session defaults (checksums on)
# except max_tasks 65536. Prints a Markdown table for bench/RESULTS.md
# ("Python agent") and writes every client's JSON line to
# bench/results/python-agent-<date>.jsonl.
# Environment: BUILD_DIR (default build/release; built here with ccache
# unless SKIP_BUILD=1: only symwire-bench-e2e), ROUNDS (5), SECS (2 s measured
# per run, after 0.5 s warm-up), WINDOW (64), PAYLOADS ("64 16384").
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build/release}
rounds=${ROUNDS:-5}
secs=${SECS:-2}
window=${WINDOW:-64}
payloads=${PAYLOADS:-64 16384}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  if [[ $build == build/release ]]; then
    CMAKE_CXX_COMPILER_LAUNCHER=ccache cmake --preset release >/dev/null
  fi
  cmake --build "$build" -j2 --target symwire-bench-e2e >/dev/null
fi
e2e=$build/bench/symwire-bench-e2e
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The C++ agent exits when its client leaves (as in run_e2e.sh): one per
# run, on a free port, waited for until it says "ready".
start_cpp() {
  cport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  : >"$tmp/cpp.err"
  "$e2e" --role server --transport tcp --address "127.0.0.1:$cport" 2>"$tmp/cpp.err" &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q ready "$tmp/cpp.err" && return 0
    sleep 0.1
  done
  echo "the C++ agent did not start" >&2
  cat "$tmp/cpp.err" >&2
  exit 1
}
# The Python agent serves every run; it writes its URL once it listens.
/usr/bin/python3 bench/python_agent.py "$tmp/py.url" 2>"$tmp/py.err" &
pids+=($!)
for _ in $(seq 100); do
  [[ -s $tmp/py.url ]] && break
  sleep 0.1
done
[[ -s $tmp/py.url ]] || { echo "the Python agent did not start" >&2; cat "$tmp/py.err" >&2; exit 1; }
pport=$(sed 's|.*:||' "$tmp/py.url")

mkdir -p bench/results
out=bench/results/python-agent-$(date -u +%Y%m%dT%H%M%SZ).jsonl
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$rounds"); do
  for payload in $payloads; do
    for agent in cpp python; do
      if [[ $agent == cpp ]]; then
        start_cpp
        port=$cport
      else
        port=$pport
      fi
      line=$("$e2e" --role client --transport tcp --address "127.0.0.1:$port" \
        --mode throughput --payload "$payload" --window "$window" \
        --seconds "$secs" --warmup 0.5 --label "$agent")
      echo "{\"agent\":\"$agent\",\"round\":$round,${line#\{}" >>"$out"
    done
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

/usr/bin/python3 - "$out" "$rounds" "$secs" "$window" "$load_start" "$load_end" <<'PY'
import json, statistics, sys
path, rounds, secs, window, load_start, load_end = sys.argv[1:]
runs = [json.loads(l) for l in open(path)]
print("command: bench/python_agent.sh (ROUNDS=%s SECS=%s WINDOW=%s); %s; load %s -> %s"
      % (rounds, secs, window, path, load_start, load_end))
print()
print("| payload | C++ agent tasks/s | Python agent tasks/s | Python ÷ C++ | C++ runs | Python runs |")
print("|---|---|---|---|---|---|")
for payload in sorted({r["payload"] for r in runs}):
    med = {}
    each = {}
    for agent in ("cpp", "python"):
        v = [r["tasks_per_s"] for r in runs if r["payload"] == payload and r["agent"] == agent]
        med[agent] = statistics.median(v)
        each[agent] = ", ".join("%.0f" % x for x in v)
    print("| %d B | %.0f | %.0f | %.3f | %s | %s |" % (
        payload, med["cpp"], med["python"], med["python"] / med["cpp"], each["cpp"],
        each["python"]))
PY
