#!/usr/bin/env bash
# ctest wireshark_dissector: checks tools/wireshark/symwire.lua with tshark (tests/wireshark/check.py).
# tshark comes from tools/deps.sh. When it is missing: under CI (env CI set) deps.sh is run to
# install it and the test fails if that does not work; elsewhere the test is skipped (exit 77,
# ctest reports "Skipped") with a message saying how to install it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if ! command -v tshark >/dev/null 2>&1; then
  if [ -n "${CI:-}" ]; then
    echo "wireshark_dissector: tshark missing; CI is set, installing it with tools/deps.sh"
    bash "$root/tools/deps.sh"
    if ! command -v tshark >/dev/null 2>&1; then
      echo "wireshark_dissector: FAILED: tshark still missing after tools/deps.sh" >&2
      exit 1
    fi
  else
    echo "wireshark_dissector: SKIPPED: tshark is not installed (run tools/deps.sh, or" \
         "apt-get install tshark). Under CI (env CI set) this test installs it and fails without it."
    exit 77
  fi
fi
exec python3 "$here/check.py" "$@"
