#!/usr/bin/env bash
# tools/nats_cluster_soak.sh: symwire-soak --transport nats against a 3-node
# NATS JetStream cluster on 127.0.0.1 with R3 streams, SIGKILLing the task
# stream's leader during the run (issue #15). Not run in CI (about a
# minute, and timing-dependent by nature); run it by hand:
#
#   tools/nats_cluster_soak.sh [--soak PATH] [--tasks N] [--kill-after S]
#                              [--restart-after S] [-- extra soak flags]
#
# Starts three nats-server processes (server_name n1..n3, cluster routes
# between them, a monitoring port each, a temporary store directory each,
# JetStream stores capped), waits until the JetStream meta group has a
# leader, then runs the soak (--nats-replicas 3, all three URLs, 3 agent
# processes). After --kill-after seconds (default 4) it asks the servers'
# monitoring endpoints (/jsz?streams=true, the stream's "cluster.leader")
# which node leads the pool's task stream and SIGKILLs it; with
# --restart-after S (default off) it starts that node again S seconds
# later on the same store. Then it prints the soak's JSON line and a
# summary: lost, duplicated, and the longest stall (the longest time in
# which no task ended). Exit status: the soak's (0 only with 0 lost, 0
# duplicated, 0 corrupted). Every process it starts is stopped by pid.
#
# Needs nats-server (tools/deps.sh), curl, python3, and a built
# symwire-soak (default build/release/tools/symwire-soak, else
# build/debug/tools/symwire-soak).
set -euo pipefail
cd "$(dirname "$0")/.."

soak=""
tasks=20000
kill_after=4
restart_after=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --soak) soak=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --kill-after) kill_after=$2; shift 2 ;;
    --restart-after) restart_after=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$soak" ]; then
  for c in build/release/tools/symwire-soak build/debug/tools/symwire-soak; do
    if [ -x "$c" ]; then soak=$c; break; fi
  done
fi
if [ -z "$soak" ] || [ ! -x "$soak" ]; then
  echo "no symwire-soak: build it (cmake --build --preset release --target symwire-soak) or pass --soak PATH" >&2
  exit 2
fi
command -v nats-server >/dev/null || { echo "nats-server not found (tools/deps.sh)" >&2; exit 2; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/symwire-nats-cluster-XXXXXX")
declare -a pids=(0 0 0)
soak_pid=0
cleanup() {
  [ "$soak_pid" -gt 0 ] && kill -TERM "$soak_pid" 2>/dev/null || true
  for i in 0 1 2; do
    if [ "${pids[$i]}" -gt 0 ]; then kill -TERM "${pids[$i]}" 2>/dev/null || true; fi
  done
  for i in 0 1 2; do
    if [ "${pids[$i]}" -gt 0 ]; then
      for _ in $(seq 50); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
}
trap cleanup EXIT

# Nine free ports on 127.0.0.1 (client, cluster and monitoring, per node).
read -r -a ports <<<"$(/usr/bin/python3 -c '
import socket
ss=[socket.socket() for _ in range(9)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss: s.close()')"
client_port() { echo "${ports[$1]}"; }
cluster_port() { echo "${ports[$(($1 + 3))]}"; }
monitor_port() { echo "${ports[$(($1 + 6))]}"; }

routes=""
for i in 0 1 2; do routes+="    nats-route://127.0.0.1:$(cluster_port $i)"$'\n'; done
for i in 0 1 2; do
  mkdir -p "$dir/n$((i + 1))"
  cat >"$dir/n$((i + 1))/server.conf" <<CONF
server_name: n$((i + 1))
listen: 127.0.0.1:$(client_port $i)
http: 127.0.0.1:$(monitor_port $i)
jetstream {
  store_dir: "$dir/n$((i + 1))/store"
  max_memory_store: 268435456
  max_file_store: 1073741824
}
cluster {
  name: symwire
  listen: 127.0.0.1:$(cluster_port $i)
  routes: [
$routes  ]
}
CONF
done
start_node() {  # start_node INDEX
  nats-server -c "$dir/n$(($1 + 1))/server.conf" -l "$dir/n$(($1 + 1))/server.log" </dev/null &
  pids[$1]=$!
}
for i in 0 1 2; do start_node $i; done

jsz() {  # jsz INDEX QUERY: the node's /jsz answer, empty if it is down
  curl -s --max-time 1 "http://127.0.0.1:$(monitor_port "$1")/jsz?$2" || true
}
# Ready: every node up and the meta group has a leader.
ready=0
for _ in $(seq 300); do
  ok=0
  for i in 0 1 2; do
    if jsz $i "" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("meta_cluster",{}).get("leader") else 1)' 2>/dev/null; then
      ok=$((ok + 1))
    fi
  done
  if [ "$ok" -eq 3 ]; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" -eq 1 ] || { echo "the cluster did not form within 30 s; logs in $dir" >&2; tail -5 "$dir"/n*/server.log >&2; exit 1; }

urls="nats://127.0.0.1:$(client_port 0),nats://127.0.0.1:$(client_port 1),nats://127.0.0.1:$(client_port 2)"
pool="cluster-$$"
stream="SYMWIRE_TASKS_$pool"
echo "cluster: n1..n3 on $urls (monitoring ports $(monitor_port 0) $(monitor_port 1) $(monitor_port 2))"
"$soak" --transport nats --nats-url "$urls" --nats-pool "$pool" --nats-replicas 3 \
  --tasks "$tasks" --seed 7 --ack-wait-ms 2000 --max-seconds 600 "${extra[@]}" \
  >"$dir/soak.json" &
soak_pid=$!

# The task stream's leader, from any live node's /jsz.
leader_of() {
  for i in 0 1 2; do
    name=$(jsz $i "streams=true" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
for a in d.get("account_details", []):
    for s in a.get("stream_detail", []):
        if s.get("name") == sys.argv[1]:
            l = (s.get("cluster") or {}).get("leader")
            if l: print(l); sys.exit(0)
' "$stream" 2>/dev/null || true)
    if [ -n "$name" ]; then echo "$name"; return 0; fi
  done
  return 1
}
sleep "$kill_after"
if ! kill -0 "$soak_pid" 2>/dev/null; then
  echo "the soak ended before the kill (--tasks larger, or --kill-after shorter)" >&2
else
  leader=$(leader_of || true)
  if [ -z "$leader" ]; then
    echo "no leader found for $stream" >&2
  else
    victim=$((${leader#n} - 1))
    echo "$(date -u +%T.%3N) SIGKILL $leader (pid ${pids[$victim]}), the leader of $stream"
    kill -KILL "${pids[$victim]}"
    wait "${pids[$victim]}" 2>/dev/null || true
    pids[$victim]=0
    # The survivors report the dead leader until they elected another.
    new_leader=""
    for _ in $(seq 300); do
      new_leader=$(leader_of || true)
      if [ -n "$new_leader" ] && [ "$new_leader" != "$leader" ]; then break; fi
      new_leader=""
      sleep 0.1
    done
    echo "$(date -u +%T.%3N) new leader of $stream: ${new_leader:-(none within 30 s)}"
    if [ "$restart_after" != 0 ]; then
      sleep "$restart_after"
      start_node "$victim"
      echo "$(date -u +%T.%3N) restarted $leader"
    fi
  fi
fi
rc=0
wait "$soak_pid" || rc=$?
soak_pid=0
cat "$dir/soak.json"
/usr/bin/python3 - "$dir/soak.json" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"tasks {d['tasks']}: completed {d['completed']}, lost {d['lost']}, "
      f"duplicated {d['duplicated']}, corrupted {d['corrupted']}, "
      f"failed {d['failed']}; longest stall {d['longest_stall_ms']} ms; "
      f"submit retries {d['submit_retries']}; redeliveries {d['redeliveries']}; "
      f"wall {d['wall_ms']} ms")
PY
exit "$rc"
