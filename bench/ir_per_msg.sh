#!/usr/bin/env bash
# bench/ir_per_msg.sh SIDE PROGRAM [PEER] MODE PAYLOAD [MESSAGES] [-- FLAGS...]
# Instructions per message of one side of an end-to-end run, counted by
# valgrind (cachegrind, no cache simulation): SIDE (client or server) runs
# PROGRAM under valgrind, the other side runs PEER natively (default:
# PROGRAM too), over loopback TCP, neither pinned. Prints the side's user-
# space instructions (the kernel's are not counted) divided by the
# messages the client counted, start-up and teardown included (a few
# hundred thousand instructions: run enough messages, the same number for
# both builds).
#
# Why: CPU time per message (bench/cpu_per_msg.sh) is the measure that
# counts, but on a shared host alternated runs of one binary spread 10-30 %
# at times, which hides a 5 % change. The instruction count repeats to the
# instruction, so it shows what a change removes or adds; it is not time
# (a cache miss or a failed store forward costs no instruction), so
# bench/README.md quotes it beside alternated timings, never alone.
# Needs valgrind (Debian: apt-get install valgrind).
# Example: bench/ir_per_msg.sh client /tmp/new /tmp/old stream 64 2000000
set -euo pipefail
usage() { sed -n 2,9p "$0" >&2; exit 2; }
[[ $# -ge 4 ]] || usage
side=$1 prog=$2
shift 2
peer=$prog
if [[ -x $1 && $1 == */* ]]; then peer=$1; shift; fi
[[ $# -ge 2 ]] || usage
mode=$1 payload=$2 n=${3:-1000000}
shift $(($# >= 3 ? 3 : 2))
[[ ${1:-} == -- ]] && shift
[[ $side == client || $side == server ]] || usage
command -v valgrind >/dev/null || { echo "$0: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
port=$((20000 + RANDOM % 20000))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vg=(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null)
server=("$peer") client=("${vg[@]}" "$prog")
[[ $side == server ]] && server=("${vg[@]}" "$prog") client=("$peer")
"${server[@]}" --role server --address "127.0.0.1:$port" --mode "$mode" \
  --payload "$payload" "$@" 2>"$tmp/server.err" &
for _ in $(seq 400); do grep -q ready "$tmp/server.err" && break; sleep 0.05; done
"${client[@]}" --role client --address "127.0.0.1:$port" --mode "$mode" \
  --payload "$payload" --messages "$n" --warmup 0 "$@" >"$tmp/client.out" \
  2>"$tmp/client.err"
wait
log=$tmp/client.err
[[ $side == server ]] && log=$tmp/server.err
python3 - "$tmp/client.out" "$log" "$side" <<'PY'
import json, re, sys
r = json.loads(open(sys.argv[1]).read())
m = re.search(r"I\s+refs:\s+([\d,]+)", open(sys.argv[2]).read())
if not m:
    raise SystemExit("no instruction count in valgrind's output: " + sys.argv[2])
ir = int(m.group(1).replace(",", ""))
n = r["messages"]
print(f'{r["system"]} {r["mode"]} {r["payload"]} B, {sys.argv[3]}: '
      f'{ir / n:.0f} instructions/msg ({n} msgs)')
PY
