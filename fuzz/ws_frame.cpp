// File: fuzz/ws_frame.cpp
// libFuzzer target for the WebSocket frame parser (WsFrameParser,
// include/symwire/transport/detail/ws_frame.hpp), as a server (frames must
// be masked) or as a client (they must not be).
//
// Input: a 6-byte control block, then the bytes the peer sends.
//   byte 0: bit 0 client role; bit 1 read large payloads straight into the
//           output (TakePayload, as WsTransport does); bit 2 discard mode
//           from the start; bit 3 after a 1003 or 1009, go on in discard
//           mode (as WsTransport does after closing)
//   byte 1: input split (fuzz_check.hpp Chunker)
//   byte 2: output buffer size: 1 + b (split run)
//   bytes 3-5: max_message_bytes, big-endian
//
// Each input is parsed whole (one call per step, a large output buffer) and
// split (input in chunks, output in small buffers, payload read directly
// when bit 1 is set); the two runs must give the same payload, control
// frames and end. An independent reference decoder written here from RFC
// 6455 §5 (not from the parser) must agree too. Besides sanitizer reports,
// the target traps on:
//   - consumed > input or produced > output; kOutputFull with room left;
//     kNeedMore leaving more than kWsMaxHeader + kWsMaxControlPayload
//     bytes unconsumed (the parser must never need a bigger buffer);
//   - a control frame other than ping/pong/close, over 125 bytes, or a
//     close whose code is not allowed or whose reason is not UTF-8;
//   - an end code other than 1002/1003/1009, a 1003 or 1009 in discard mode,
//     an error that does not repeat, anything parsed after a close frame;
//   - any message of which more than max_message_bytes reach the output,
//     or any byte of a text message;
//   - WsValidUtf8 disagreeing with a code-point decoder on the input.
#include "symwire/transport/detail/ws_frame.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fuzz_check.hpp"

namespace {

using symwire::detail::kWsMaxControlPayload;
using symwire::detail::kWsMaxHeader;
using symwire::detail::WsFrameParser;
using Kind = WsFrameParser::Step::Kind;
using symwire::fuzz::Chunker;

constexpr size_t kControlSize = 6;

struct Control {
  bool client = false;
  bool direct = false;
  bool discard = false;
  bool discard_after_error = false;
  uint8_t split = 0;
  size_t out_size = 1;
  size_t max_message = 0;
};

// What a run saw: payload delivered, control frames ("ping <hex>"), and how
// it ended ("error 1002", "closed", or "open" when the input ran out).
struct Run {
  std::string payload;
  std::vector<std::string> events;
  std::string end = "open";
};

std::string ControlEvent(uint8_t op, std::span<const std::byte> payload,
                         unsigned code) {
  return absl::StrCat(op == 0x9   ? "ping "
                      : op == 0xA ? "pong "
                                  : "close ",
                      op == 0x8 ? absl::StrCat(code, " ") : "",
                      symwire::fuzz::HexOf(absl::Span<const std::byte>(
                          payload.data(), payload.size())));
}

// Checks one step's invariants and records it. Returns false when the run
// is over.
bool Record(const Control& c, const WsFrameParser::Step& s, size_t in_size,
            size_t out_size, bool discarding, Run& run) {
  FUZZ_CHECK(s.consumed <= in_size);
  FUZZ_CHECK(s.produced <= out_size);
  FUZZ_CHECK(!discarding || s.produced == 0);
  switch (s.kind) {
    case Kind::kNeedMore:
      FUZZ_CHECK_MSG(in_size - s.consumed < kWsMaxHeader + kWsMaxControlPayload,
                     absl::StrCat("left ", in_size - s.consumed, " bytes"));
      return true;
    case Kind::kOutputFull:
      FUZZ_CHECK(!discarding && s.produced == out_size);
      FUZZ_CHECK(s.consumed < in_size);
      return true;
    case Kind::kControl: {
      FUZZ_CHECK(s.opcode == 0x8 || s.opcode == 0x9 || s.opcode == 0xA);
      FUZZ_CHECK(s.payload.size() <= kWsMaxControlPayload);
      if (s.opcode == 0x8) {
        if (s.payload.empty()) {
          FUZZ_CHECK(s.close_code == 1005);
        } else {
          FUZZ_CHECK(s.payload.size() >= 2);
          FUZZ_CHECK(symwire::detail::WsValidCloseCode(s.close_code));
          FUZZ_CHECK(symwire::detail::WsValidUtf8(s.payload.subspan(2)));
        }
      }
      run.events.push_back(ControlEvent(s.opcode, s.payload, s.close_code));
      if (s.opcode == 0x8) {
        run.end = "closed";
        return false;
      }
      return true;
    }
    case Kind::kError:
      FUZZ_CHECK(s.close_code == 1002 || s.close_code == 1003 ||
                 s.close_code == 1009);
      FUZZ_CHECK(s.close_code == 1002 || !discarding);
      FUZZ_CHECK(s.reason != nullptr && s.reason[0] != '\0');
      run.end = absl::StrCat("error ", s.close_code);
      if (s.close_code != 1002 && c.discard_after_error) {
        run.events.push_back(run.end);
        run.end = "open";
        return true;  // the caller switches to discard mode
      }
      return false;
    case Kind::kDone:
      FUZZ_CHECK_MSG(false, "kDone before a close or an error was seen");
  }
  return false;
}

// After the end: the parser repeats it and consumes nothing.
void CheckSticky(WsFrameParser& parser, const Run& run,
                 std::span<const std::byte> more) {
  const WsFrameParser::Step s = parser.Parse(more, {});
  FUZZ_CHECK(s.consumed == 0 && s.produced == 0);
  if (run.end == "closed") {
    FUZZ_CHECK(s.kind == Kind::kDone);
  } else if (run.end != "open") {
    FUZZ_CHECK(s.kind == Kind::kError);
    FUZZ_CHECK(run.end == absl::StrCat("error ", s.close_code));
  }
}

// One call per step on the whole input.
Run Whole(const Control& c, std::span<const std::byte> in) {
  WsFrameParser parser(c.client, c.max_message);
  bool discarding = c.discard;
  if (discarding) parser.Discard();
  Run run;
  std::vector<std::byte> out(in.size() + 1);
  size_t pos = 0;
  for (;;) {
    const auto rest = in.subspan(pos);
    const WsFrameParser::Step s = parser.Parse(rest, out);
    run.payload.append(reinterpret_cast<const char*>(out.data()), s.produced);
    pos += s.consumed;
    if (!Record(c, s, rest.size(), out.size(), discarding, run)) break;
    if (s.kind == Kind::kError) {
      discarding = true;
      parser.Discard();
      continue;
    }
    if (s.kind == Kind::kNeedMore) break;
    FUZZ_CHECK(s.kind == Kind::kControl);  // out is never full here
  }
  CheckSticky(parser, run, in.subspan(pos));
  return run;
}

// The input in chunks, a small output buffer, payload read straight into
// it when asked: what WsTransport does with socket reads.
Run Split(const Control& c, std::span<const std::byte> in) {
  WsFrameParser parser(c.client, c.max_message);
  bool discarding = c.discard;
  if (discarding) parser.Discard();
  Run run;
  Chunker chunker(c.split);
  std::vector<std::byte> buf;  // read, not yet consumed
  std::vector<std::byte> out(c.out_size);
  size_t fed = 0;
  bool over = false;
  while (!over && fed < in.size()) {
    const size_t n = chunker.Next(in.size() - fed);
    if (c.direct && buf.empty() && parser.payload_remaining() > 0) {
      // A read straight into the output buffer (in discard mode too: the
      // transport's read may have started before it closed; it then drops
      // the bytes).
      const size_t take = static_cast<size_t>(
          std::min<uint64_t>({n, parser.payload_remaining(), out.size()}));
      std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(fed), take,
                  out.begin());
      parser.TakePayload(out.data(), take);
      if (!discarding) {
        run.payload.append(reinterpret_cast<const char*>(out.data()), take);
      }
      fed += take;
      continue;
    }
    buf.insert(buf.end(), in.begin() + static_cast<std::ptrdiff_t>(fed),
               in.begin() + static_cast<std::ptrdiff_t>(fed + n));
    fed += n;
    for (;;) {
      const WsFrameParser::Step s = parser.Parse(buf, out);
      run.payload.append(reinterpret_cast<const char*>(out.data()), s.produced);
      const size_t size = buf.size();
      buf.erase(buf.begin(),
                buf.begin() + static_cast<std::ptrdiff_t>(s.consumed));
      if (!Record(c, s, size, out.size(), discarding, run)) {
        over = true;
        break;
      }
      if (s.kind == Kind::kError) {
        discarding = true;
        parser.Discard();
        continue;
      }
      if (s.kind == Kind::kNeedMore) break;
    }
  }
  CheckSticky(parser, run, buf);
  return run;
}

// The reference: RFC 6455 §5 read directly, whole input, nothing shared
// with the parser but the UTF-8 and close-code predicates (fuzzed by the
// checks above).
Run Reference(const Control& c, std::span<const std::byte> in) {
  Run run;
  bool discarding = c.discard;
  bool in_message = false;
  uint64_t message = 0;  // bytes of the current message seen
  size_t pos = 0;
  auto byte = [&](size_t i) { return std::to_integer<uint8_t>(in[i]); };
  auto end = [&](const std::string& how) {
    run.end = how;
    return run;
  };
  while (in.size() - pos >= 2) {
    const uint8_t b0 = byte(pos);
    const uint8_t b1 = byte(pos + 1);
    const bool fin = (b0 & 0x80) != 0;
    const uint8_t op = b0 & 0x0F;
    const bool masked = (b1 & 0x80) != 0;
    uint64_t len = b1 & 0x7F;
    size_t h = 2;
    if (len == 126) h = 4;
    if (len == 127) h = 10;
    if (masked) h += 4;
    if (in.size() - pos < h) break;
    if (len == 126) {
      len = (uint64_t{byte(pos + 2)} << 8) | byte(pos + 3);
      if (len < 126) return end("error 1002");
    } else if (len == 127) {
      len = 0;
      for (size_t i = 0; i < 8; ++i) len = (len << 8) | byte(pos + 2 + i);
      if (len < 65536 || len >= (uint64_t{1} << 63)) {
        return end("error 1002");
      }
    }
    if ((b0 & 0x70) != 0 || masked == c.client) {
      return end("error 1002");
    }
    uint8_t key[4] = {0, 0, 0, 0};
    for (size_t i = 0; masked && i < 4; ++i) key[i] = byte(pos + h - 4 + i);
    const bool control = op >= 8;
    if (control) {
      if (op != 8 && op != 9 && op != 10) return end("error 1002");
      if (!fin || len > 125) return end("error 1002");
      if (in.size() - pos - h < len) break;
      std::vector<std::byte> p(static_cast<size_t>(len));
      for (size_t i = 0; i < p.size(); ++i) {
        p[i] = std::byte{static_cast<uint8_t>(byte(pos + h + i) ^ key[i % 4])};
      }
      pos += h + p.size();
      unsigned code = 1005;
      if (op == 8) {
        if (p.size() == 1) return end("error 1002");
        if (p.size() >= 2) {
          code = std::to_integer<unsigned>(p[0]) * 256 +
                 std::to_integer<unsigned>(p[1]);
          if (!symwire::detail::WsValidCloseCode(code) ||
              !symwire::detail::WsValidUtf8(std::span(p).subspan(2))) {
            return end("error 1002");
          }
        }
      }
      run.events.push_back(ControlEvent(op, p, code));
      if (op == 8) return end("closed");
      continue;
    }
    if (op == 0) {
      if (!in_message) return end("error 1002");
    } else if (op == 1 || op == 2) {
      if (in_message) return end("error 1002");
      message = 0;
    } else {
      return end("error 1002");
    }
    pos += h;
    in_message = !fin || len > 0;
    std::string error;
    if (op == 1 && !discarding) {
      error = "error 1003";
    } else if (len >
               c.max_message - std::min<uint64_t>(message, c.max_message)) {
      if (!discarding) error = "error 1009";
    }
    message += len;
    const bool drop = discarding || !error.empty();
    const uint64_t avail = in.size() - pos;
    const auto take = static_cast<size_t>(std::min(avail, len));
    if (!drop) {
      FUZZ_CHECK(message <= c.max_message);
      for (size_t i = 0; i < take; ++i) {
        run.payload.push_back(static_cast<char>(byte(pos + i) ^ key[i % 4]));
      }
    }
    if (!error.empty()) {
      if (!c.discard_after_error) return end(error);
      run.events.push_back(error);
      discarding = true;
    }
    pos += take;
    if (take < len) break;  // the input ends inside the payload
    if (fin) in_message = false;
  }
  return run;
}

// UTF-8 by decoding code points (RFC 3629 §3), to check WsValidUtf8's
// byte-range tables: shortest form, no surrogates, at most U+10FFFF.
bool ReferenceUtf8(std::span<const std::byte> s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = std::to_integer<uint32_t>(s[i]);
    size_t len = 1;
    uint32_t cp = b;
    if (b >= 0xF0 && b < 0xF8) {
      len = 4;
      cp = b & 0x07;
    } else if (b >= 0xE0 && b < 0xF0) {
      len = 3;
      cp = b & 0x0F;
    } else if (b >= 0xC0 && b < 0xE0) {
      len = 2;
      cp = b & 0x1F;
    } else if (b >= 0x80) {
      return false;  // a continuation byte first, or 0xF8..0xFF
    }
    if (s.size() - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = std::to_integer<uint32_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const uint32_t min = len == 1   ? 0
                         : len == 2 ? 0x80
                         : len == 3 ? 0x800
                                    : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

Control ParseControl(const uint8_t* d) {
  Control c;
  c.client = (d[0] & 1) != 0;
  c.direct = (d[0] & 2) != 0;
  c.discard = (d[0] & 4) != 0;
  c.discard_after_error = (d[0] & 8) != 0;
  c.split = d[1];
  c.out_size = size_t{1} + d[2];
  c.max_message = (size_t{d[3]} << 16) | (size_t{d[4]} << 8) | d[5];
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kControlSize) return 0;
  const Control c = ParseControl(data);
  const std::span<const std::byte> in(
      reinterpret_cast<const std::byte*>(data) + kControlSize,
      size - kControlSize);
  FUZZ_CHECK(symwire::detail::WsValidUtf8(in) == ReferenceUtf8(in));
  const Run whole = Whole(c, in);
  const Run split = Split(c, in);
  const Run ref = Reference(c, in);
  if (symwire::fuzz::Verbose()) {
    std::fprintf(stderr,
                 "ws_frame: client=%d direct=%d discard=%d/%d split=%u out=%zu "
                 "max=%zu: %zu payload bytes, %zu events, %s\n",
                 c.client, c.direct, c.discard, c.discard_after_error, c.split,
                 c.out_size, c.max_message, whole.payload.size(),
                 whole.events.size(), whole.end.c_str());
  }
  auto events = [](const Run& r) {
    std::string s;
    for (const std::string& e : r.events) absl::StrAppend(&s, e, "\n");
    return absl::StrCat(s, r.end, "\n");
  };
  FUZZ_CHECK_MSG(
      whole.events == ref.events && whole.end == ref.end,
      absl::StrCat("parser:\n", events(whole), "reference:\n", events(ref)));
  FUZZ_CHECK_MSG(whole.payload == ref.payload,
                 absl::StrCat("payload ", whole.payload.size(), " bytes, ",
                              "reference ", ref.payload.size()));
  FUZZ_CHECK_MSG(
      split.events == whole.events && split.end == whole.end,
      absl::StrCat("split:\n", events(split), "whole:\n", events(whole)));
  FUZZ_CHECK(split.payload == whole.payload);
  return 0;
}
