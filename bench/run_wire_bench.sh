#!/usr/bin/env bash
# Runs wire_bench with the repetition settings of bench/README.md, keeps the
# JSON, and prints the median of every benchmark plus the two goal ratios,
# all taken from the same run (same process).
#
# Usage: bench/run_wire_bench.sh [BUILD_DIR] [extra --benchmark_* flags]
#   BUILD_DIR defaults to build/release (the release preset).
#   WIRE_BENCH_JSON=path overrides where the JSON goes.
# Reported, never gating: the exit status is 0 even when a goal is missed.
set -euo pipefail

build_dir=${1:-build/release}
if [[ $# -gt 0 ]]; then shift; fi
bin="$build_dir/bench/wire_bench"
json=${WIRE_BENCH_JSON:-$build_dir/wire_bench.json}
if [[ ! -x "$bin" ]]; then
  echo "run_wire_bench.sh: $bin not found; build it first:" >&2
  echo "  cmake --preset release && cmake --build --preset release --target wire_bench" >&2
  exit 1
fi

echo "load before: $(uptime)"
"$bin" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_min_time=0.2 --benchmark_enable_random_interleaving=true \
  --benchmark_out="$json" --benchmark_out_format=json "$@"
echo "load after:  $(uptime)"

python3 - "$json" <<'PY'
import json, sys

with open(sys.argv[1]) as f:
    runs = json.load(f)["benchmarks"]
med = {r["run_name"]: r for r in runs
       if r.get("run_type") == "aggregate" and r.get("aggregate_name") == "median"}
cv = {r["run_name"]: r for r in runs
      if r.get("run_type") == "aggregate" and r.get("aggregate_name") == "cv"}

def si(v):
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6),
                        ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"

# ns/iter: one pass over the frame buffer (codec, baselines) or one call
# (CRC32C, XXH3); wall time. The rate counters are per CPU second.
print(f"\n{'benchmark (median of repetitions)':<44} {'ns/iter':>11} {'cv':>6}"
      f" {'frames/s':>9} {'bytes/s':>9} {'payload_B/s':>11}")
for name, r in med.items():
    t = r["real_time"] if r.get("time_unit") == "ns" else float("nan")
    c = cv.get(name, {}).get("real_time")
    print(f"{name:<44} {t:>11.1f} {(f'{100*c:.1f}%' if c is not None else '-'):>6}"
          f" {si(r.get('frames/s', 0)):>9} {si(r.get('bytes_per_second', 0)):>9}"
          f" {si(r.get('payload_B/s', 0)):>11}")

def ratio(goal, num, den, key, need):
    if num not in med or den not in med:
        print(f"{goal}: missing {num if num not in med else den}")
        return
    a, b = med[num][key], med[den][key]
    r = a / b
    print(f"{goal}: {num} / {den} ({key}) = {si(a)} / {si(b)} = "
          f"{100 * r:.1f}% (target >= {100 * need:.0f}%): "
          f"{'PASS' if r >= need else 'MISS'}")

print()
ratio("goal 1", "BM_DecodeFrame/payload:64/checksum:0",
      "BM_LengthPrefixScan/payload:64", "frames/s", 0.50)
ratio("goal 2", "BM_DecodeVerifyXxh3/payload:16384",
      "BM_Xxh3Payloads/payload:16384", "bytes_per_second", 0.85)

# Per-frame costs that explain goal 1.
def ns_per_frame(name):
    return 1e9 / med[name]["frames/s"] if name in med else float("nan")
d = ns_per_frame("BM_DecodeFrame/payload:64/checksum:0")
n = ns_per_frame("BM_DecodeFrameNoCrc/payload:64/checksum:0")
s = ns_per_frame("BM_LengthPrefixScan/payload:64")
print(f"\nper frame at 64 B: decode {d:.2f} ns, decode without header CRC "
      f"{n:.2f} ns (CRC step {d - n:.2f} ns), bare length-prefix scan {s:.2f} ns")
PY
