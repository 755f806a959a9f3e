#!/usr/bin/env bash
# Fails if layer 1 (wire/) or layer 2 (session/) reach for I/O, clocks,
# threads or randomness, or include a higher layer, or if layer 3b
# (runtime/) reaches for frame layout or TLV parsing (STYLE.md §1).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
check() {  # check DIR PATTERN WHY
  local dir=$1 pattern=$2 why=$3
  [ -d "$dir" ] || return 0
  local hits
  hits=$(grep -rnE "$pattern" "$dir" --include='*.hpp' --include='*.ipp' || true)
  if [ -n "$hits" ]; then
    echo "layering violation in $dir ($why):"
    echo "$hits" | sed 's/^/  /'
    status=1
  fi
}
io='#include *[<"](boost/asio|asio|sys/socket\.h|netinet/|unistd\.h|thread|mutex|chrono|random|fstream|iostream)'
clock='(absl::Now|std::chrono::(steady|system|high_resolution)_clock|std::random_device|[^a-z_]rand\(|time\(nullptr\))'
for layer in include/symwire/wire include/symwire/session; do
  check "$layer" "$io" "I/O, threads, clocks or random sources are not allowed"
  check "$layer" "$clock" "reading a clock or a global random source"
done
check include/symwire/wire '#include *"symwire/(session|transport|nats)/' "layer 1 includes a higher layer"
check include/symwire/wire '#include *"symwire/runtime/' "layer 1 includes layer 3b"
check include/symwire/session '#include *"symwire/(transport|runtime|nats)/' "layer 2 includes layer 3"
# Layer 3 (transports) carries bytes; the runtime (3b) sits on top of it.
# transport/runtime.hpp is the deprecated forwarding header to it.
hits=$(grep -rnE '#include *"symwire/runtime/' include/symwire/transport --include='*.hpp' --include='*.ipp' | grep -v '^include/symwire/transport/runtime.hpp:' || true)
if [ -n "$hits" ]; then
  echo "layering violation in include/symwire/transport (layer 3 includes layer 3b):"
  echo "$hits" | sed 's/^/  /'
  status=1
fi
# Layer 3b (runtime): layers 1-3 and Asio, but no frame layout: nothing of
# wire/detail/ (byte offsets, masks) and no codec calls of its own.
check include/symwire/runtime '#include *"symwire/wire/(detail/|decoder|encoder|varint)' "frame layout or codec in the runtime"
# symwire::nats (SPEC.md §21) is a transport-level runtime on layers 1-2
# and cnats: no Asio transports or stream runtime, and cnats' header only in
# its detail/ and impl/ files, so the public headers stay free of it.
check include/symwire/nats '#include *[<"](boost/asio|asio)|#include *"symwire/(transport|runtime)/' "nats builds on layers 1-2 and cnats only"
if [ -d include/symwire/nats ]; then
  hits=$(grep -nE '#include *[<"]nats/' include/symwire/nats/*.hpp 2>/dev/null || true)
  if [ -n "$hits" ]; then
    echo "layering violation: public nats headers include cnats (keep it in nats/detail, nats/impl):"
    echo "$hits" | sed 's/^/  /'; status=1
  fi
fi
# symwire::nats_runtime (the stream runtime's API over a pool) sits on the
# runtime and symwire::nats: their headers, never cnats' own.
check include/symwire/nats_runtime '#include *[<"]nats/|#include *"symwire/nats/(detail|impl)/' "nats_runtime uses symwire::nats's public headers only"
# Frame layout stays in layer 1 (STYLE.md §1): above it, TLVs are read
# through FrameView's typed accessors (metadata(), trace_parent(), ...).
for layer in include/symwire/session include/symwire/transport include/symwire/runtime include/symwire/nats; do
  check "$layer" '(ParseMetadataValue|ParseTraceParentValue|\.extensions\(\))' "TLV parsing above layer 1"
done
if [ -d examples ] || [ -d tools ]; then
  hits=$(grep -rnE '#include *"symwire/(.*/)?detail/' examples tools --include='*.cpp' --include='*.hpp' 2>/dev/null || true)
  if [ -n "$hits" ]; then
    echo "layering violation: examples/tools include detail/ headers:"; echo "$hits" | sed 's/^/  /'; status=1
  fi
fi
[ $status -eq 0 ] && echo "check_layering: OK"
exit $status
