// File: symwire/transport/detail/ws_frame.hpp
// Layer 3, internal to the WebSocket transport (impl/ws_transport.hpp) and
// its fuzz target (fuzz/ws_frame.cpp): the RFC 6455 §5 frame codec without
// I/O. WsEncodeHeader and WsMask build frames; WsFrameParser is the
// receiver's state machine: bytes in, payload and control frames out, and
// the close code a malformed stream ends with (SPEC.md §20.1). No sockets,
// clocks, threads or random sources: standard library only, so it can be
// replayed and fuzzed on its own.
#ifndef SYMWIRE_TRANSPORT_DETAIL_WS_FRAME_HPP_
#define SYMWIRE_TRANSPORT_DETAIL_WS_FRAME_HPP_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "symwire/config.hpp"

namespace symwire {
namespace detail {

// RFC 6455 §5.2 frame fields.
inline constexpr uint8_t kWsFin = 0x80;
inline constexpr uint8_t kWsRsv = 0x70;
inline constexpr uint8_t kWsMaskBit = 0x80;
inline constexpr uint8_t kWsOpContinuation = 0x0;
inline constexpr uint8_t kWsOpText = 0x1;
inline constexpr uint8_t kWsOpBinary = 0x2;
inline constexpr uint8_t kWsOpClose = 0x8;
inline constexpr uint8_t kWsOpPing = 0x9;
inline constexpr uint8_t kWsOpPong = 0xA;
inline constexpr size_t kWsMaxHeader = 14;
inline constexpr size_t kWsMaxControlPayload = 125;

// Writes the header of a final frame with opcode `op` and `length` payload
// bytes into `out` (kWsMaxHeader bytes of room), masked with `key` when
// not null; returns its size.
inline size_t WsEncodeHeader(uint8_t op, uint64_t length, const uint8_t* key,
                             uint8_t* out) {
  out[0] = static_cast<uint8_t>(kWsFin | op);
  const uint8_t mask = key != nullptr ? kWsMaskBit : 0;
  size_t n = 2;
  if (length < 126) {
    out[1] = static_cast<uint8_t>(mask | length);
  } else if (length <= 0xFFFF) {
    out[1] = static_cast<uint8_t>(mask | 126);
    out[2] = static_cast<uint8_t>(length >> 8);
    out[3] = static_cast<uint8_t>(length);
    n = 4;
  } else {
    out[1] = static_cast<uint8_t>(mask | 127);
    for (int i = 0; i < 8; ++i) {
      out[2 + i] = static_cast<uint8_t>(length >> (56 - 8 * i));
    }
    n = 10;
  }
  if (key != nullptr) {
    std::memcpy(out + n, key, 4);
    n += 4;
  }
  return n;
}

// XORs `size` bytes at `data` with the masking key `key`, the first byte
// with key[pos] (RFC 6455 §5.3); returns the key position after them.
inline size_t WsMask(std::byte* data, size_t size, const uint8_t* key,
                     size_t pos) {
  std::array<uint8_t, 8> k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = key[(pos + i) & 3];
  uint64_t k64 = 0;
  std::memcpy(&k64, k.data(), sizeof(k64));
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w = 0;
    std::memcpy(&w, data + i, sizeof(w));
    w ^= k64;
    std::memcpy(data + i, &w, sizeof(w));
  }
  for (; i < size; ++i) data[i] ^= std::byte{k[i & 7]};
  return (pos + size) & 3;
}

// True for the close codes a close frame may carry (RFC 6455 §7.4).
inline bool WsValidCloseCode(unsigned code) {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 &&
         code != 1006;
}

// True if `bytes` are well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), as a close reason must be (RFC 6455
// §5.5.1, §8.1).
inline bool WsValidUtf8(std::span<const std::byte> bytes) {
  size_t i = 0;
  const size_t n = bytes.size();
  while (i < n) {
    const auto b0 = std::to_integer<uint8_t>(bytes[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint8_t lo = 0x80;  // the range of the second byte (RFC 3629 §4)
    uint8_t hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;  // overlong
      if (b0 == 0xED) hi = 0x9F;  // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;  // overlong
      if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return false;
    }
    if (n - i < len) return false;
    const auto b1 = std::to_integer<uint8_t>(bytes[i + 1]);
    if (b1 < lo || b1 > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      const auto b = std::to_integer<uint8_t>(bytes[i + k]);
      if (b < 0x80 || b > 0xBF) return false;
    }
    i += len;
  }
  return true;
}

// WsFrameParser
// The receiving half of one WebSocket connection after the upgrade, as a
// state machine over bytes (RFC 6455 §5, SPEC.md §20.1): Parse takes the
// bytes read so far and a payload buffer, and returns what it did. Data
// frames are streamed: their payload goes to the caller's buffer as it
// arrives (unmasked), so nothing is buffered per message; control frames
// (at most 125 bytes each) are taken whole and returned one at a time. It
// enforces, as frames arrive:
//   - the framing (1002): canonical lengths (a 16-bit length ≥ 126, a
//     64-bit one in 65536..2^63-1), no reserved bits (no extension is ever
//     negotiated), masked frames from a client and unmasked ones from a
//     server, known opcodes, control frames final and ≤ 125 bytes, no
//     continuation outside a message nor new message inside one, close
//     frames with no payload or a valid code (RFC 6455 §7.4) and a UTF-8
//     reason;
//   - a text message (1003): nothing of it is returned;
//   - the message size limit (1009): at most `max_message_bytes` of one
//     message are ever returned.
// After a 1003 or 1009 the caller closes; in discard mode (Discard()) it
// then reads on for the peer's close frame: payload is dropped, and text
// and size are no longer errors. A 1002 is final: the framing can no longer
// be followed. Bytes the parser leaves unconsumed are at most
// kWsMaxHeader + kWsMaxControlPayload (a partial header or control frame),
// so a caller's input buffer needs no more than that beyond one read.
// Does not allocate. Not thread-safe.
class WsFrameParser {
 public:
  // `client`: this side is the client, so frames must be unmasked (else
  // they must be masked). `max_message_bytes` 0 accepts empty messages
  // only.
  WsFrameParser(bool client, size_t max_message_bytes)
      : max_message_bytes_(max_message_bytes), client_(client) {}

  struct Step {
    enum class Kind : uint8_t {
      // Every byte that can be used now is used: more input is needed.
      kNeedMore,
      // `out` is full and payload is waiting in the input.
      kOutputFull,
      // A control frame (`opcode` ping, pong or close) was consumed;
      // `payload` is its unmasked payload (valid until the next call). For
      // a close, `close_code` is its code, 1005 if it had none (RFC 6455
      // §7.1.5), and `payload` starts with the code: the reason is
      // payload.subspan(2). Nothing is parsed after a close frame.
      kControl,
      // The stream ends with close code `close_code` (1002, 1003, 1009)
      // for `reason` (ASCII). Sticky, as described above.
      kError,
      // A close frame was parsed by an earlier call: nothing more is.
      kDone,
    };
    Kind kind = Kind::kNeedMore;
    uint8_t opcode = 0;
    uint16_t close_code = 0;
    size_t consumed = 0;  // input bytes used by this call
    size_t produced = 0;  // payload bytes written to `out` by this call
    std::span<const std::byte> payload;
    const char* reason = "";
  };

  // Parse
  // Consumes whole frame headers, control frames and data payload from
  // `in` (writing payload to `out`, or dropping it in discard mode) until
  // more input is needed, `out` is full, a control frame was read, or an
  // error. Returns kError again (nothing consumed) for every call after
  // one, except that in discard mode a 1003 or 1009 no longer stops it.
  Step Parse(std::span<const std::byte> in, std::span<std::byte> out);

  // Discard mode: payload is dropped (`out` may be empty), text messages
  // and oversized ones are skipped instead of being errors. Cannot be left.
  void Discard() { discard_ = true; }

  // Payload bytes of the current data frame not yet consumed.
  uint64_t payload_remaining() const { return frame_remain_; }

  // TakePayload
  // `n` payload bytes of the current data frame that the caller read
  // straight into `data` (bypassing Parse: large frames): unmasks them in
  // place and accounts for them (in discard mode too: a read started
  // before Discard() may end after it). REQUIRES: n <= payload_remaining(),
  // and no error returned since the last Parse call unless in discard mode.
  void TakePayload(std::byte* data, size_t n) {
    SYMWIRE_REQUIRE(n <= frame_remain_ && (stop_ == Stop::kNone || discard_));
    if (masked_) key_pos_ = WsMask(data, n, key_.data(), key_pos_);
    Advance(n);
  }

 private:
  enum class Stop : uint8_t { kNone, kMessage, kBroken, kClosed };

  void Advance(uint64_t n) {
    frame_remain_ -= n;
    if (frame_remain_ == 0 && frame_fin_) in_message_ = false;
  }
  Step Error(Step step, Stop stop, uint16_t code, const char* reason) {
    stop_ = stop;
    error_code_ = code;
    error_reason_ = reason;
    step.kind = Step::Kind::kError;
    step.close_code = code;
    step.reason = reason;
    return step;
  }

  size_t max_message_bytes_;
  uint64_t frame_remain_ = 0;  // payload bytes left in the current frame
  size_t message_bytes_ = 0;   // payload of the current message so far
  size_t key_pos_ = 0;
  const char* error_reason_ = "";
  uint16_t error_code_ = 0;
  std::array<uint8_t, 4> key_{};
  std::array<std::byte, kWsMaxControlPayload> control_{};
  Stop stop_ = Stop::kNone;
  bool client_;
  bool discard_ = false;
  bool frame_fin_ = false;
  bool masked_ = false;
  bool in_message_ = false;  // a data message is open (fragmented)
};

inline WsFrameParser::Step WsFrameParser::Parse(std::span<const std::byte> in,
                                                std::span<std::byte> out) {
  Step step;
  if (stop_ == Stop::kBroken || stop_ == Stop::kClosed) {
    step.kind = stop_ == Stop::kClosed ? Step::Kind::kDone : Step::Kind::kError;
    if (stop_ == Stop::kBroken) {
      step.close_code = error_code_;
      step.reason = error_reason_;
    }
    return step;
  }
  if (stop_ == Stop::kMessage) {
    if (!discard_) return Error(step, stop_, error_code_, error_reason_);
    stop_ = Stop::kNone;  // discard mode: the message is skipped
  }
  if (discard_) out = {};
  const auto* base = reinterpret_cast<const uint8_t*>(in.data());
  size_t pos = 0;
  for (;;) {
    const size_t avail = in.size() - pos;
    if (frame_remain_ > 0) {
      if (avail == 0) break;
      size_t take =
          static_cast<size_t>(std::min<uint64_t>(avail, frame_remain_));
      if (!discard_) {
        take = std::min(take, out.size() - step.produced);
        if (take == 0) {
          step.kind = Step::Kind::kOutputFull;
          break;
        }
        std::byte* dst = out.data() + step.produced;
        std::memcpy(dst, in.data() + pos, take);
        if (masked_) key_pos_ = WsMask(dst, take, key_.data(), key_pos_);
        step.produced += take;
      }
      pos += take;
      Advance(take);
      continue;
    }
    if (avail < 2) break;
    const uint8_t* p = base + pos;
    const bool fin = (p[0] & kWsFin) != 0;
    const uint8_t op = p[0] & 0x0F;
    const bool masked = (p[1] & kWsMaskBit) != 0;
    uint64_t len = p[1] & 0x7F;
    const size_t header = size_t{2} + (len == 126 ? 2U : 0U) +
                          (len == 127 ? 8U : 0U) + (masked ? 4U : 0U);
    if (avail < header) break;
    step.consumed = pos;
    if (len == 126) {
      len = (uint64_t{p[2]} << 8) | p[3];
      if (len < 126) {
        return Error(step, Stop::kBroken, 1002,
                     "a 16-bit payload length below 126");
      }
    } else if (len == 127) {
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
      if ((len >> 63) != 0 || len <= 0xFFFF) {
        return Error(step, Stop::kBroken, 1002,
                     "a 64-bit payload length not in 65536..2^63-1");
      }
    }
    if ((p[0] & kWsRsv) != 0) {
      return Error(step, Stop::kBroken, 1002,
                   "reserved bits set (no extension was negotiated)");
    }
    if (masked == client_) {
      return Error(step, Stop::kBroken, 1002,
                   client_ ? "a masked frame from the server"
                           : "an unmasked frame from the client");
    }
    std::array<uint8_t, 4> key{};
    if (masked) std::memcpy(key.data(), p + header - 4, 4);
    if ((op & 0x8) != 0) {
      if (op != kWsOpClose && op != kWsOpPing && op != kWsOpPong) {
        return Error(step, Stop::kBroken, 1002, "an unknown control opcode");
      }
      if (!fin || len > kWsMaxControlPayload) {
        return Error(step, Stop::kBroken, 1002,
                     "a fragmented or oversized control frame");
      }
      if (avail < header + len) break;  // control frames are taken whole
      const auto n = static_cast<size_t>(len);
      std::memcpy(control_.data(), p + header, n);
      if (masked) WsMask(control_.data(), n, key.data(), 0);
      step.consumed = pos + header + n;
      step.opcode = op;
      step.payload = std::span<const std::byte>(control_.data(), n);
      if (op == kWsOpClose) {
        step.close_code = 1005;  // RFC 6455 §7.1.5: no status code present
        if (n == 1) {
          return Error(step, Stop::kBroken, 1002,
                       "a close frame with a 1-byte payload");
        }
        if (n >= 2) {
          step.close_code = static_cast<uint16_t>(
              (std::to_integer<unsigned>(control_[0]) << 8) |
              std::to_integer<unsigned>(control_[1]));
          if (!WsValidCloseCode(step.close_code)) {
            return Error(step, Stop::kBroken, 1002,
                         "a close code not allowed on the wire");
          }
          if (!WsValidUtf8(step.payload.subspan(2))) {
            return Error(step, Stop::kBroken, 1002,
                         "a close reason that is not UTF-8");
          }
        }
        stop_ = Stop::kClosed;  // the peer sends nothing more
      }
      step.kind = Step::Kind::kControl;
      return step;
    }
    if (op == kWsOpContinuation) {
      if (!in_message_) {
        return Error(step, Stop::kBroken, 1002,
                     "a continuation frame outside a message");
      }
    } else if (op == kWsOpText || op == kWsOpBinary) {
      if (in_message_) {
        return Error(step, Stop::kBroken, 1002,
                     "a new message inside a fragmented one");
      }
      message_bytes_ = 0;
    } else {
      return Error(step, Stop::kBroken, 1002, "an unknown data opcode");
    }
    pos += header;
    frame_remain_ = len;
    frame_fin_ = fin;
    masked_ = masked;
    key_ = key;
    key_pos_ = 0;
    in_message_ = !(fin && len == 0);
    if (op == kWsOpText && !discard_) {
      // SPEC.md §20.1: nothing of a text message reaches the session.
      step.consumed = pos;
      return Error(step, Stop::kMessage, 1003,
                   "symwire travels in binary messages");
    }
    if (len > max_message_bytes_ - message_bytes_) {
      message_bytes_ = max_message_bytes_;
      if (!discard_) {
        step.consumed = pos;
        return Error(step, Stop::kMessage, 1009,
                     "a message over the size limit");
      }
    } else {
      message_bytes_ += static_cast<size_t>(len);
    }
  }
  step.consumed = pos;
  return step;
}

}  // namespace detail
}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_DETAIL_WS_FRAME_HPP_
