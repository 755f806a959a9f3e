#!/usr/bin/env bash
# bench/run_e2e.sh [--quick|--full]: the end-to-end comparison
# (bench/README.md, "End to end"). Installs the benchmark peers
# (bench/deps.sh), builds the release configuration, runs every system x
# transport x mode x payload with server and client in separate processes,
# in interleaved rounds, and writes:
#   bench/results/e2e-<date>.jsonl   one JSON line per run (the client's,
#                                    plus "round")
#   bench/results/e2e-<date>.meta    the machine and the command
#   bench/RESULTS.md                 medians and ratios (bench/report.py)
#   bench/results/throughput.png     the chart, if matplotlib is there
# Placement (--label): "split" = server on CPU 1, client on CPU 0
# (different vCPUs); "same" = both on CPU 0 (one vCPU; latency only).
# Environment: BUILD_DIR (default build/release, the release preset),
# SKIP_DEPS=1, SKIP_BUILD=1, SYSTEMS="symwire raw zmq grpc", PAYLOADS="...".
set -euo pipefail
cd "$(dirname "$0")/.."
level=quick
case "${1:-}" in
  --quick | "") level=quick ;;
  --full) level=full ;;
  *) echo "usage: $0 [--quick|--full]" >&2; exit 2 ;;
esac
if [[ $level == quick ]]; then
  rounds=1; secs=1; default_payloads="64 16384"
else
  rounds=${ROUNDS:-3}; secs=1.5; default_payloads="16 64 256 1024 16384"
fi
payloads=${PAYLOADS:-$default_payloads}
build=${BUILD_DIR:-build/release}

declare -A bin=([symwire]=symwire-bench-e2e [raw]=raw-tcp-bench [zmq]=zmq-bench
  [grpc]=grpc-bench)
# The optional peers' cache flags (bench/CMakeLists.txt): built only if found.
declare -A found=([zmq]=SYMWIRE_ZMQ_FOUND [grpc]=SYMWIRE_GRPC_FOUND)
wanted=${SYSTEMS:-symwire raw zmq grpc}

[[ ${SKIP_DEPS:-0} == 1 ]] || bench/deps.sh
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  if [[ $build == build/release ]]; then
    cmake --preset release >/dev/null
  else
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  # Only the programs of the systems asked for.
  targets=()
  for s in $wanted; do
    [[ -n ${bin[$s]:-} ]] || continue
    if [[ -n ${found[$s]:-} ]] &&
        ! grep -q "^${found[$s]}:INTERNAL=1" "$build/CMakeCache.txt"; then
      continue
    fi
    targets+=("${bin[$s]}")
  done
  if ((${#targets[@]} > 0)); then cmake --build "$build" --target "${targets[@]}"; fi
fi

systems=()
for s in $wanted; do
  if [[ -n ${bin[$s]:-} && -x $build/bench/${bin[$s]} ]]; then systems+=("$s"); else
    echo "run_e2e: $s not built, skipped" >&2; fi
done
if ((${#systems[@]} == 0)); then echo "run_e2e: no system to run" >&2; exit 1; fi

mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/e2e-$stamp.jsonl
meta=bench/results/e2e-$stamp.meta
log=bench/results/e2e-$stamp.log
: >"$out"
{
  echo "command: $0 $*"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "nproc: $(nproc)"
  echo "kernel: $(uname -srm)"
  echo "compiler: $(g++ --version | head -1)"
  echo "load_start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "level: $level rounds=$rounds seconds=$secs payloads=$payloads"
} >"$meta"

port=7700
sock=/tmp/symwire-e2e-$$.sock
declare -A max_tasks  # "system transport payload" -> this round's pairs/s
run_one() {  # system transport mode payload label round connections rate
  local s=$1 tr=$2 mode=$3 p=$4 label=$5 round=$6 conns=${7:-1} rate=${8:-0}
  local spin cpin addr
  if [[ $label == split ]]; then spin=1; cpin=0; else spin=0; cpin=0; fi
  port=$((port + 1))
  if [[ $tr == tcp ]]; then addr=127.0.0.1:$port; else addr=$sock; rm -f "$sock"; fi
  local b=$build/bench/${bin[$s]}
  local common=(--transport "$tr" --address "$addr" --payload "$p" --mode "$mode"
    --rate "$rate")
  local err
  err=$(mktemp)
  "$b" --role server "${common[@]}" --pin "$spin" 2>"$err" >/dev/null &
  local sp=$!
  for _ in $(seq 100); do grep -q ready "$err" && break; sleep 0.05; done
  local line
  if line=$(timeout $((${secs%.*} + 20)) "$b" --role client "${common[@]}" \
      --pin "$cpin" --seconds "$secs" --label "$label" \
      --connections "$conns" 2>>"$log"); then
    echo "$line" | sed "s/^{/{\"round\":$round,/" >>"$out"
    if [[ $mode == throughput && $conns == 1 ]]; then
      max_tasks["$s $tr $p"]=$(grep -o '"tasks_per_s":[0-9.]*' <<<"$line" | cut -d: -f2)
    fi
    printf '  %-8s %-4s %-10s %6s %-5s c%-2s r%-8s %s %s\n' "$s" "$tr" "$mode" "$p" \
      "$label" "$conns" "${rate%.*}" \
      "$(grep -o '"msgs_per_s":[0-9.]*' <<<"$line")" \
      "$(grep -o '"p50_us":[0-9.]*' <<<"$line" || true)"
  else
    echo "  FAILED: $s $tr $mode $p $label (see $log)" | tee -a "$log"
  fi
  kill "$sp" 2>/dev/null || true
  wait "$sp" 2>/dev/null || true
  cat "$err" >>"$log"; rm -f "$err"
}

for round in $(seq 1 "$rounds"); do
  echo "== round $round/$rounds"
  for p in $payloads; do
    for tr in tcp unix; do
      # mode:placement:connections; "load" is latency at 50% of the same
      # system's throughput (1 connection) measured just before in this
      # round: --rate = half its pairs/s, open loop.
      for spec in stream:split:1 stream:split:8 throughput:split:1 \
          throughput:split:8 latency:split:1 latency:same:1 load:split:1; do
        IFS=: read -r mode label conns <<<"$spec"
        # Interleave the systems within each configuration, in an order that
        # rotates by round so no system always runs first.
        n=${#systems[@]}
        for ((i = 0; i < n; i++)); do
          s=${systems[$(((i + round) % n))]}
          if [[ $mode == load ]]; then
            m=${max_tasks["$s $tr $p"]:-}
            [[ -n $m ]] || continue
            rate=$(awk -v m="$m" 'BEGIN { printf "%.0f", m / 2 }')
            run_one "$s" "$tr" latency "$p" "$label" "$round" 1 "$rate"
          else
            run_one "$s" "$tr" "$mode" "$p" "$label" "$round" "$conns"
          fi
        done
      done
    done
  done
done
echo "load_end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$meta"
rm -f "$sock"
py=python3
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3  # Debian's, where python3-matplotlib lives
"$py" bench/report.py "$out" "$meta"
