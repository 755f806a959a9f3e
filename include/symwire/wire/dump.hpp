// File: symwire/wire/dump.hpp
// Layer 1 (frame codec). A readable one-line rendering of a decoded frame,
// used by the demo, the tests' failure messages and symwire-dump.
#ifndef SYMWIRE_WIRE_DUMP_HPP_
#define SYMWIRE_WIRE_DUMP_HPP_

#include <cstddef>
#include <string>

#include "symwire/config.hpp"
#include "symwire/wire/frame.hpp"

namespace symwire {

// FormatFrame
// Renders `frame` on one line, for example
//   AGENT_RESPONSE stream=7 seq=42 flags=FINAL|CHECKSUM len=5 "hello"
//       deadline_us=1500000 meta{model="gpt"}
// (one line; wrapped here). The payload is shown as an escaped string when
// it is printable text and as hex otherwise, truncated after
// `max_payload_bytes` bytes with "...". Allocates the returned string.
SYMWIRE_DECL std::string FormatFrame(const FrameView& frame,
                                     size_t max_payload_bytes = 32);

// FormatFlags
// "0", or the set flag names joined by '|' ("FINAL|CHECKSUM"); unknown bits
// as hex ("0x80").
SYMWIRE_DECL std::string FormatFlags(uint8_t flags);

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/wire/impl/dump.ipp"
#endif

#endif  // SYMWIRE_WIRE_DUMP_HPP_
