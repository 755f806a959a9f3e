#!/usr/bin/env bash
# bench/server_threads.sh PROGRAM [MAX_THREADS] [SECONDS]
# Server scaling (issue #13): one symwire server (symwire-bench-e2e --role
# server --threads N) for N = 1, 2, 4, ... up to MAX_THREADS (default: the
# smaller of 16 and nproc), throughput mode, 64-byte payloads, loopback TCP,
# with max(8, 2N) client connections spread over max(1, N/2) client
# processes (one client thread drives at most a few cores' worth of server).
# Both sides run under `perf stat -e task-clock`; prints per N the summed
# msgs/s and the server's and clients' CPU-seconds per million messages.
# Nothing is pinned: on a machine with fewer cores than threads plus
# clients the processes share them, and CPU per message is the figure to
# compare (bench/README.md, "Server threads").
# PROGRAM: e.g. build/release/bench/symwire-bench-e2e.
set -euo pipefail
[[ $# -ge 1 ]] || { sed -n 2,14p "$0" >&2; exit 2; }
prog=$1
max=${2:-$(( $(nproc) < 16 ? $(nproc) : 16 ))}
seconds=${3:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=1
while (( n <= max )); do
  port=$((20000 + RANDOM % 20000))
  conns=$(( 2 * n > 8 ? 2 * n : 8 ))
  clients=$(( n / 2 > 1 ? n / 2 : 1 ))
  perf stat -x, -e task-clock -o "$tmp/server" "$prog" --role server \
    --address "127.0.0.1:$port" --threads "$n" 2>"$tmp/server.err" &
  server=$!
  for _ in $(seq 100); do grep -q ready "$tmp/server.err" && break; sleep 0.05; done
  pids=()
  for c in $(seq "$clients"); do
    perf stat -x, -e task-clock -o "$tmp/client$c" "$prog" --role client \
      --address "127.0.0.1:$port" --mode throughput --payload 64 \
      --connections $(( conns / clients )) --seconds "$seconds" \
      --warmup 0.1 >"$tmp/out$c" &
    pids+=($!)
  done
  wait "${pids[@]}"
  wait "$server" || true
  python3 - "$n" "$clients" "$tmp" <<'PY'
import json, sys
n, clients, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def ms(path):
    for l in open(path):
        if "task-clock" in l:
            return float(l.split(",")[0])
    raise SystemExit("no task-clock in " + path)
runs = [json.loads(open(f"{tmp}/out{c}").read()) for c in range(1, clients + 1)]
rate = sum(r["msgs_per_s"] for r in runs)
conns = sum(r["connections"] for r in runs)
# CPU over the whole run (the 0.1 s warm-up included) per measured message:
# a few percent high, alike for every N.
msgs = sum(r["messages"] for r in runs)
server_ms = ms(f"{tmp}/server")
client_ms = sum(ms(f"{tmp}/client{c}") for c in range(1, clients + 1))
print(f"server threads {n:2d}, {conns:2d} connections, {clients} client(s): "
      f"{rate / 1e6:.2f} M msgs/s, server {server_ms / msgs * 1e3:.2f} "
      f"CPU-s/M msgs, clients {client_ms / msgs * 1e3:.2f} CPU-s/M msgs")
PY
  n=$(( n * 2 ))
done
