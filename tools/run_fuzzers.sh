#!/usr/bin/env bash
# tools/run_fuzzers.sh BUILD_DIR SECONDS
#
# Runs every libFuzzer target BUILD_DIR/fuzz/fuzz_<name> (built by the `fuzz`
# CMake preset) for SECONDS seconds each, on a scratch copy of its seed
# corpus fuzz/corpus/<name>/ (the repository is not modified), with the
# dictionary fuzz/dict/symwire.dict. Prints one summary line per target and
# exits non-zero if any target reported a finding (crash, sanitizer report,
# broken invariant, timeout, leak or out-of-memory). A finding's input is
# copied to BUILD_DIR/fuzz/findings/<name>/ and hex-dumped here.
#
# JOBS targets (default: the number of CPUs) run at the same time, each on
# a core of its own: a target gets the same SECONDS of a whole core as when
# they ran one after another (the same executions, as exec/s in the summary
# shows), and CI's 7 targets x 30 s take 4 x 30 s on 2 CPUs instead of
# 7 x 30 s. Each target's output is printed whole, in order, after it ends.
#
# Example:  cmake --preset fuzz -B build/fuzz && cmake --build build/fuzz &&
#           tools/run_fuzzers.sh build/fuzz 60
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  echo "  runs each BUILD_DIR/fuzz/fuzz_<name> for SECONDS seconds" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
[[ $2 =~ ^[1-9][0-9]*$ ]] || usage
seconds=$2
jobs=${JOBS:-$(nproc)}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "$0: JOBS must be a positive number" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -d $1/fuzz ]] || { echo "$0: no fuzz/ directory in $1 (configure with --preset fuzz)" >&2; exit 2; }
fuzz_dir=$(cd "$1/fuzz" && pwd)
dict=$repo/fuzz/dict/symwire.dict
[[ -f $dict ]] || { echo "$0: missing $dict" >&2; exit 2; }

targets=()
for bin in "$fuzz_dir"/fuzz_*; do
  name=${bin##*/fuzz_}
  [[ -f $bin && -x $bin ]] || continue
  case $name in *_replay | *_seeds) continue ;; esac  # not fuzzers
  targets+=("$name")
done
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "$0: no fuzz_<name> binaries in $fuzz_dir (build the fuzz preset first)" >&2
  exit 2
fi

# Sanitizers stop at the first report, with a stack trace.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/symwire-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# stat_of, hexdump_file
# shellcheck source=tools/fuzz_lib.sh
source "$repo/tools/fuzz_lib.sh"

# fuzz_one NAME: runs one target; its report goes to stdout (redirected to
# $scratch/NAME.out), its summary line to $scratch/NAME.line, and a finding
# creates $scratch/NAME.failed. Always returns 0 (the caller checks files).
fuzz_one() {
  local name=$1 work seeds seeds_in start rc elapsed log execs rate new_units
  local corpus_out line keep example f findings
  work=$scratch/$name
  mkdir -p "$work/corpus" "$work/artifacts"
  seeds=$repo/fuzz/corpus/$name
  if [[ -d $seeds ]]; then
    cp -R "$seeds/." "$work/corpus/"
  else
    echo "note: no seed corpus $seeds; starting empty" >&2
  fi
  seeds_in=$(find "$work/corpus" -type f | wc -l)

  echo "=== fuzz_$name: ${seconds}s, $seeds_in seeds"
  start=$(date +%s)
  rc=0
  # -jobs=1: one job in a child process whose output goes to fuzz-0.log in
  # the working directory; the parent exits non-zero if the job did.
  (cd "$work" && "$fuzz_dir/fuzz_$name" \
      -max_total_time="$seconds" -dict="$dict" -print_final_stats=1 \
      -timeout=10 -rss_limit_mb=2048 -jobs=1 \
      -artifact_prefix="$work/artifacts/" corpus) > "$work/parent.log" 2>&1 || rc=$?
  elapsed=$(( $(date +%s) - start ))
  log=$work/fuzz-0.log
  [[ -f $log ]] || log=$work/parent.log

  execs=$(stat_of "$log" number_of_executed_units)
  rate=$(stat_of "$log" average_exec_per_sec)
  new_units=$(stat_of "$log" new_units_added)
  corpus_out=$(find "$work/corpus" -type f | wc -l)
  mapfile -t findings < <(find "$work/artifacts" -type f \
      \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)

  line=$(printf '%-22s execs=%s seconds=%s exec/s=%s new_units=%s corpus=%s->%s' \
      "fuzz_$name" "$execs" "$elapsed" "$rate" "$new_units" "$seeds_in" "$corpus_out")
  if [[ $rc -ne 0 || ${#findings[@]} -gt 0 ]]; then
    line+="  FINDING (exit $rc)"
    : > "$scratch/$name.failed"
    echo "--- fuzz_$name log (last 80 lines of $log):"
    tail -n 80 "$log"
    keep=$fuzz_dir/findings/$name
    mkdir -p "$keep"
    for f in "${findings[@]}"; do
      cp "$f" "$keep/"
      echo "--- finding: $keep/${f##*/} ($(wc -c < "$f") bytes)"
      hexdump_file "$f"
    done
    if [[ ${#findings[@]} -eq 0 ]]; then
      echo "--- fuzz_$name exited $rc without an artifact; see the log above"
    fi
    example=$keep/FILE
    [[ ${#findings[@]} -gt 0 ]] && example=$keep/${findings[0]##*/}
    echo "--- reproduce: $fuzz_dir/fuzz_$name $example"
    echo "    (g++: fuzz_${name}_replay from a tests build; SYMWIRE_FUZZ_VERBOSE=1 explains the input)"
    if [[ $name == session_* ]]; then
      echo "--- then turn it into a test in tests/session/ (tests/support/session_pair.hpp)"
    else
      echo "--- then turn it into a vector in tests/vectors/frame_errors.md (hex, why, expected log)"
    fi
    echo "    and save the input under fuzz/corpus/$name/ so the replay test keeps it."
  fi
  echo "$line"
  echo "$line" > "$scratch/$name.line"
}

# At most $jobs targets at a time.
for name in "${targets[@]}"; do
  while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n || true; done
  fuzz_one "$name" > "$scratch/$name.out" 2>&1 &
done
wait

failed=()
summary=()
for name in "${targets[@]}"; do
  cat "$scratch/$name.out"
  [[ -f $scratch/$name.failed ]] && failed+=("$name")
  if [[ -f $scratch/$name.line ]]; then
    summary+=("$(cat "$scratch/$name.line")")
  else
    summary+=("fuzz_$name  FINDING (the runner stopped early; output above)")
    failed+=("$name")
  fi
done

echo "=== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
