# tools/fuzz_lib.sh: helpers shared by tools/run_fuzzers.sh (CI) and
# tools/fuzz_long.sh (pre-release runs). Sourced, not run.

# stat_of LOG KEY: stat::<KEY> from a libFuzzer log (-print_final_stats=1),
# or "?".
stat_of() {
  local value
  value=$(sed -n "s/^stat::$2: *\\([0-9]*\\).*/\\1/p" "$1" | tail -n 1)
  echo "${value:-?}"
}

# hexdump_file FILE: the first 64 lines of a hex dump of a finding's input.
hexdump_file() {
  if command -v xxd > /dev/null; then
    xxd "$1" | head -n 64
  else
    od -A x -t x1z -v "$1" | head -n 64
  fi
}
