#!/usr/bin/env bash
# bench/server_threads.sh PROGRAM [MAX_THREADS] [SECONDS] [ROUNDS]
# Server scaling (issue #13): one symwire server (symwire-bench-e2e --role
# server --threads N) for N = 1, 2, 4, ... up to MAX_THREADS (default: the
# smaller of 16 and nproc), throughput mode, 64-byte payloads, loopback TCP,
# with max(8, 2N) client connections spread over max(1, N/2) client
# processes (one client thread drives at most a few cores' worth of server).
# Both sides run under `perf stat -e task-clock`. ROUNDS (default 1) rounds,
# each running every N once (interleaved, so a noisy neighbour hits every N
# alike); prints each run, then per N the medians over the rounds of msgs/s
# and of the server's and clients' CPU-seconds per million messages, and
# each N's median server CPU per message relative to N = 1.
# Nothing is pinned: on a machine with fewer cores than threads plus
# clients the processes share them, and CPU per message is the figure to
# compare (bench/README.md, "Server threads").
# PROGRAM: e.g. build/release/bench/symwire-bench-e2e.
set -euo pipefail
[[ $# -ge 1 ]] || { sed -n 2,16p "$0" >&2; exit 2; }
prog=$1
max=${2:-$(( $(nproc) < 16 ? $(nproc) : 16 ))}
seconds=${3:-3}
rounds=${4:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/results"
for round in $(seq "$rounds"); do
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
    python3 - "$round" "$n" "$clients" "$tmp" <<'PY'
import json, sys
rnd, n, clients, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
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
server = ms(f"{tmp}/server") / msgs * 1e3
client = sum(ms(f"{tmp}/client{c}") for c in range(1, clients + 1)) / msgs * 1e3
print(f"round {rnd}: server threads {n:2d}, {conns:2d} connections, {clients} client(s): "
      f"{rate / 1e6:.2f} M msgs/s, server {server:.3f} CPU-s/M msgs, "
      f"clients {client:.3f} CPU-s/M msgs", flush=True)
with open(f"{tmp}/results", "a") as f:
    f.write(f"{n} {rate} {server} {client}\n")
PY
    n=$(( n * 2 ))
  done
done
python3 - "$tmp/results" "$rounds" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    n, rate, server, client = line.split()
    rows.setdefault(int(n), []).append((float(rate), float(server), float(client)))
print(f"medians over {sys.argv[2]} round(s):")
base = None
for n in sorted(rows):
    rate = statistics.median(r[0] for r in rows[n])
    server = statistics.median(r[1] for r in rows[n])
    client = statistics.median(r[2] for r in rows[n])
    base = base or server
    print(f"server threads {n:2d}: {rate / 1e6:.2f} M msgs/s, server {server:.3f} "
          f"CPU-s/M msgs ({(server / base - 1) * 100:+.1f} % vs 1 thread), "
          f"clients {client:.3f} CPU-s/M msgs")
PY
