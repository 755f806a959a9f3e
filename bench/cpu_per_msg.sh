#!/usr/bin/env bash
# bench/cpu_per_msg.sh PROGRAM MODE PAYLOAD [MESSAGES] [-- FLAGS...]
# One end-to-end run (server pinned to CPU 1, client to CPU 0, loopback
# TCP) with both processes under `perf stat -e task-clock`, printing the
# client's msgs/s and each side's CPU time per message. CPU time per message
# is far steadier than msgs/s on a shared machine, so A/B comparisons of
# two builds (alternate them, several times) use it; bench/README.md quotes
# figures measured this way. PROGRAM: e.g. build/release/bench/symwire-bench-e2e.
# FLAGS go to both roles (e.g. --checksums 0, --transport unix --address P).
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n 2,9p "$0" >&2; exit 2; }
prog=$1 mode=$2 payload=$3 n=${4:-3000000}
shift $(($# >= 4 ? 4 : 3))
[[ ${1:-} == -- ]] && shift
port=$((20000 + RANDOM % 20000))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
perf stat -x, -e task-clock -o "$tmp/server" "$prog" --role server \
  --address "127.0.0.1:$port" --mode "$mode" --payload "$payload" --pin 1 \
  "$@" 2>"$tmp/server.err" &
for _ in $(seq 100); do grep -q ready "$tmp/server.err" && break; sleep 0.05; done
line=$(perf stat -x, -e task-clock -o "$tmp/client" "$prog" --role client \
  --address "127.0.0.1:$port" --mode "$mode" --payload "$payload" --pin 0 \
  --messages "$n" --warmup 0.1 "$@")
wait
python3 - "$line" "$tmp/server" "$tmp/client" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
def ms(path):
    for l in open(path):
        if "task-clock" in l:
            return float(l.split(",")[0])
    raise SystemExit("no task-clock in " + path)
n = r["messages"]
print(f'{r["system"]} {r["mode"]} {r["payload"]} B: {r["msgs_per_s"] / 1e6:.2f} M msgs/s, '
      f'server {ms(sys.argv[2]) * 1e6 / n:.0f} ns/msg, client {ms(sys.argv[3]) * 1e6 / n:.0f} ns/msg')
PY
