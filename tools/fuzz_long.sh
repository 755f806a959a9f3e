#!/usr/bin/env bash
# tools/fuzz_long.sh BUILD_DIR SECONDS_PER_TARGET [TARGET...]
#
# The long fuzzing run before a release (not CI; tools/run_fuzzers.sh is the
# short one). Runs each libFuzzer target BUILD_DIR/fuzz/fuzz_<name> (the
# `fuzz` CMake preset) for SECONDS_PER_TARGET seconds, or only the TARGETs
# named, reading the committed seed corpus fuzz/corpus/<name>/ and writing
# every new input libFuzzer finds into a scratch directory, never into the
# repository. Prints per target: executions, exec/s, coverage at the start
# (after the seeds ran) and at the end (libFuzzer's `cov:` edges and `ft:`
# features), corpus size, and any finding (crash, sanitizer report, broken
# invariant, timeout, leak, out-of-memory) with its input hex-dumped and
# copied to BUILD_DIR/fuzz/findings/<name>/. Exits non-zero on a finding.
#
# FUZZ_LONG_CORPUS=DIR reads DIR/<name>/ instead of fuzz/corpus/<name>/ (to
# compare an older corpus). The new inputs stay in $FUZZ_LONG_KEEP/<name>/new if FUZZ_LONG_KEEP is set
# (then merge the useful ones by hand:
#   BUILD/fuzz/fuzz_<name> -merge=1 fuzz/corpus/<name> $FUZZ_LONG_KEEP/<name>/new
# and commit them under a name that says where they came from); otherwise
# the scratch directory is removed at the end.
#
# Example (about 5 targets x 30 min):
#   CMAKE_CXX_COMPILER_LAUNCHER=ccache cmake --preset fuzz &&
#   cmake --build build/fuzz -j2 && tools/fuzz_long.sh build/fuzz 1800
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR SECONDS_PER_TARGET [TARGET...]" >&2
  echo "  runs each BUILD_DIR/fuzz/fuzz_<name> for SECONDS_PER_TARGET seconds" >&2
  exit 2
}
[[ $# -ge 2 ]] || usage
[[ $2 =~ ^[1-9][0-9]*$ ]] || usage
seconds=$2
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -d $1/fuzz ]] || { echo "$0: no fuzz/ directory in $1 (configure with --preset fuzz)" >&2; exit 2; }
fuzz_dir=$(cd "$1/fuzz" && pwd)
shift 2
dict=$repo/fuzz/dict/symwire.dict
[[ -f $dict ]] || { echo "$0: missing $dict" >&2; exit 2; }

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for bin in "$fuzz_dir"/fuzz_*; do
    name=${bin##*/fuzz_}
    [[ -f $bin && -x $bin ]] || continue
    case $name in *_replay | *_seeds) continue ;; esac  # not fuzzers
    targets+=("$name")
  done
fi
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "$0: no fuzz_<name> binaries in $fuzz_dir (build the fuzz preset first)" >&2
  exit 2
fi
for name in "${targets[@]}"; do
  [[ -x $fuzz_dir/fuzz_$name ]] || { echo "$0: no $fuzz_dir/fuzz_$name" >&2; exit 2; }
done

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

if [[ -n ${FUZZ_LONG_KEEP:-} ]]; then
  scratch=$FUZZ_LONG_KEEP
  mkdir -p "$scratch"
else
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/symwire-fuzz-long.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
fi

# The last libFuzzer status line with `cov:` whose first field matches $2
# (INITED, DONE, or any "#N" line with "."), as "cov ft corp".
cov_of() {
  local line
  line=$(grep -E "^#[0-9]+[[:space:]]+$2[[:space:]].*cov: " "$1" | tail -n 1 || true)
  if [[ -z $line ]]; then
    echo "? ? ?"
    return
  fi
  local cov ft corp
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$line")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<< "$line")
  echo "${cov:-?} ${ft:-?} ${corp:-?}"
}

# stat_of, hexdump_file
# shellcheck source=tools/fuzz_lib.sh
source "$repo/tools/fuzz_lib.sh"

failed=()
summary=()
for name in "${targets[@]}"; do
  work=$scratch/$name
  rm -rf "$work"
  mkdir -p "$work/new" "$work/artifacts"
  seeds=${FUZZ_LONG_CORPUS:-$repo/fuzz/corpus}/$name
  [[ -d $seeds ]] || { echo "note: no seed corpus $seeds" >&2; mkdir -p "$work/empty"; seeds=$work/empty; }
  seeds_in=$(find "$seeds" -type f | wc -l)

  echo "=== fuzz_$name: ${seconds}s, $seeds_in seeds from ${seeds#"$repo"/}, new inputs in $work/new"
  start=$(date +%s)
  rc=0
  # New inputs go to the first corpus directory only ($work/new); the seed
  # directory is read, never written.
  (cd "$work" && "$fuzz_dir/fuzz_$name" \
      -max_total_time="$seconds" -dict="$dict" -print_final_stats=1 \
      -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$work/artifacts/" "$work/new" "$seeds") > "$work/log" 2>&1 || rc=$?
  elapsed=$(( $(date +%s) - start ))
  log=$work/log

  execs=$(stat_of "$log" number_of_executed_units)
  rate=$(stat_of "$log" average_exec_per_sec)
  read -r cov0 ft0 _ <<< "$(cov_of "$log" INITED)"
  read -r cov1 ft1 corp1 <<< "$(cov_of "$log" DONE)"
  if [[ $cov1 == "?" ]]; then  # stopped early: the last status line
    read -r cov1 ft1 corp1 <<< "$(cov_of "$log" '[A-Z]+')"
  fi
  new_inputs=$(find "$work/new" -type f | wc -l)
  mapfile -t findings < <(find "$work/artifacts" -type f \
      \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)

  line=$(printf '%-22s execs=%s exec/s=%s seconds=%s cov=%s->%s ft=%s->%s corpus=%s new_inputs=%s' \
      "fuzz_$name" "$execs" "$rate" "$elapsed" "$cov0" "$cov1" "$ft0" "$ft1" "$corp1" "$new_inputs")
  if [[ $rc -ne 0 || ${#findings[@]} -gt 0 ]]; then
    line+="  FINDING (exit $rc)"
    failed+=("$name")
    echo "--- fuzz_$name log (last 80 lines):"
    tail -n 80 "$log"
    keep=$fuzz_dir/findings/$name
    mkdir -p "$keep"
    for f in "${findings[@]}"; do
      cp "$f" "$keep/"
      echo "--- finding: $keep/${f##*/} ($(wc -c < "$f") bytes)"
      hexdump_file "$f"
    done
    echo "--- reproduce: $fuzz_dir/fuzz_$name FILE; under g++ fuzz_${name}_replay FILE"
    echo "    (SYMWIRE_FUZZ_VERBOSE=1); see fuzz/README.md, \"When a fuzzer finds something\""
  else
    line+="  no finding"
  fi
  echo "$line"
  summary+=("$line")
done

echo "=== summary (${seconds}s per target; cov/ft: after the seeds -> at the end)"
printf '%s\n' "${summary[@]}"
if [[ -n ${FUZZ_LONG_KEEP:-} ]]; then
  echo "new inputs kept in $scratch/<target>/new"
fi
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
