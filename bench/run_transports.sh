#!/usr/bin/env bash
# bench/run_transports.sh [ROUNDS] [SECONDS] [NAME=BINARY ...]
# symwire-bench-e2e over tcp, tls, ws and wss (issue 17), 64 B and 16 KiB,
# stream and throughput modes, one connection, server and client unpinned,
# each under `perf stat -e task-clock`. Within each round every
# configuration runs once per transport (and per binary), interleaved, so a
# noisy neighbour hits all of them alike. Prints one line per run and then
# the medians: msgs/s, the CPU of both processes per million messages
# (CPU-s/M msgs: whole run, warm-up included; steadier than msgs/s on a
# shared machine) and msgs/s relative to tcp of the same binary.
# Default binary: build/release/bench/symwire-bench-e2e (NAME "symwire");
# NAME=BINARY pairs compare builds (before/after). bench/README.md,
# "WebSocket and TLS".
set -euo pipefail
rounds=${1:-5}
secs=${2:-1}
shift 2 || true
bins=("$@")
[[ ${#bins[@]} -gt 0 ]] || bins=("symwire=build/release/bench/symwire-bench-e2e")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/runs.jsonl
ms() { awk -F, '/task-clock/ { print $1 }' "$1"; }
for round in $(seq 1 "$rounds"); do
  for mode in stream throughput; do
    for p in 64 16384; do
      for tr in tcp tls ws wss; do
        for nb in "${bins[@]}"; do
          name=${nb%%=*}
          b=${nb#*=}
          port=$((20000 + RANDOM % 20000))
          common=(--transport "$tr" --address "127.0.0.1:$port" --payload "$p"
            --mode "$mode")
          perf stat -x, -e task-clock -o "$tmp/server.perf" \
            "$b" --role server "${common[@]}" 2>"$tmp/server.err" >/dev/null &
          sp=$!
          for _ in $(seq 200); do
            grep -q ready "$tmp/server.err" && break
            sleep 0.05
          done
          if line=$(timeout $((${secs%.*} + 30)) perf stat -x, -e task-clock \
              -o "$tmp/client.perf" "$b" --role client "${common[@]}" \
              --seconds "$secs" 2>>"$tmp/client.err"); then
            kill "$sp" 2>/dev/null || true
            wait "$sp" 2>/dev/null || true
            cpu=$(awk "BEGIN { print $(ms "$tmp/server.perf") + $(ms "$tmp/client.perf") }")
            echo "$line" | sed "s/^{/{\"bin\":\"$name\",\"cpu_ms\":$cpu,/" | tee -a "$out"
          else
            kill "$sp" 2>/dev/null || true
            wait "$sp" 2>/dev/null || true
            echo "FAILED: $name $tr $mode $p" >&2
            cat "$tmp/server.err" "$tmp/client.err" >&2
          fi
          : >"$tmp/client.err"
        done
      done
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["mode"], r["payload"], r["transport"], r["bin"])
    rows.setdefault(key, []).append((r["msgs_per_s"], r["cpu_ms"] / r["messages"] * 1e3))
order = ["tcp", "tls", "ws", "wss"]
print("| mode | payload | transport | build | msgs/s (median) | CPU-s / M msgs (median) | msgs/s ÷ tcp | runs |")
print("|---|---|---|---|---|---|---|---|")
for key in sorted(rows, key=lambda k: (k[0], k[1], order.index(k[2]), k[3])):
    mode, p, tr, b = key
    v = rows[key]
    rate = statistics.median(x[0] for x in v)
    cpu = statistics.median(x[1] for x in v)
    base = statistics.median(x[0] for x in rows.get((mode, p, "tcp", b), v))
    print(f"| {mode} | {p} | {tr} | {b} | {rate/1e6:.3g} M | {cpu:.3g} | {rate/base*100:.0f} % | {len(v)} |")
PY
