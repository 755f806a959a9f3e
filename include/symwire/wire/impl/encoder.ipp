// File: symwire/wire/impl/encoder.ipp
// Out-of-line bodies of the encoder. One planning pass validates the frame
// and sizes every part; one writing pass emits bytes into a buffer already
// known to be large enough, so nothing is written on error.
#ifndef SYMWIRE_WIRE_IMPL_ENCODER_IPP_
#define SYMWIRE_WIRE_IMPL_ENCODER_IPP_

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "symwire/detail/hash.hpp"
#include "symwire/error.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/detail/layout.hpp"
#include "symwire/wire/detail/plain_frame.hpp"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/varint.hpp"

namespace symwire {
namespace detail {

SYMWIRE_COLD inline absl::Status InvalidFrame(absl::string_view why) {
  return MakeError(ErrorCode::kInvalidFrame, why);
}

inline size_t TlvSize(uint64_t type, size_t value_size) {
  return VarintSize(type) + VarintSize(value_size) + value_size;
}

inline bool IsZeroBytes(absl::Span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(),
                     [](std::byte b) { return b == std::byte{0}; });
}

// Sizes and validates the extension region. Every part is bounded by
// kMaxHeaderSizeLimit before it is added, so the sum cannot overflow.
inline absl::StatusOr<size_t> PlanExtensions(const FrameExtensions& ext) {
  constexpr size_t kLimit = kMaxHeaderLength;
  auto too_large = [](absl::string_view what, size_t size) {
    return MakeError(ErrorCode::kHeaderTooLarge,
                     absl::StrCat(what, " of ", size,
                                  " bytes cannot fit in a header of at most ",
                                  kLimit, " bytes"));
  };
  size_t total = 0;
  if (ext.deadline_us) {
    if (*ext.deadline_us > kVarintMax) {
      return MakeError(
          ErrorCode::kVarintOutOfRange,
          absl::StrCat("deadline_us ", *ext.deadline_us, " exceeds 2^62-1"));
    }
    total += TlvSize(kExtDeadline, VarintSize(*ext.deadline_us));
  }
  if (ext.trace_parent) {
    const TraceParent& tp = *ext.trace_parent;
    if (tp.version == 0xFF) {
      return InvalidFrame("TRACEPARENT version 0xff is invalid");
    }
    if (IsZeroBytes(tp.trace_id)) {
      return InvalidFrame("TRACEPARENT trace_id is all zero");
    }
    if (IsZeroBytes(tp.parent_id)) {
      return InvalidFrame("TRACEPARENT parent_id is all zero");
    }
    total += TlvSize(kExtTraceParent, kTraceParentSize);
  }
  if (!ext.method.empty()) {
    if (ext.method.size() > kMaxMethodSize) {
      return InvalidFrame(
          absl::StrCat("METHOD of ", ext.method.size(), " bytes exceeds 255"));
    }
    for (size_t i = 0; i < ext.method.size(); ++i) {
      const auto c = static_cast<unsigned char>(ext.method[i]);
      if (!IsMethodByte(c)) {
        return InvalidFrame(absl::StrCat(
            "METHOD byte 0x", absl::Hex(c, absl::kZeroPad2), " at index ", i,
            " is not visible ASCII (0x21..0x7e)"));
      }
    }
    total += TlvSize(kExtMethod, ext.method.size());
  }
  if (!ext.trace_state.empty()) {
    if (ext.trace_state.size() > kMaxTraceStateSize) {
      return InvalidFrame(absl::StrCat("TRACESTATE of ", ext.trace_state.size(),
                                       " bytes exceeds 512"));
    }
    for (size_t i = 0; i < ext.trace_state.size(); ++i) {
      const auto c = static_cast<unsigned char>(ext.trace_state[i]);
      if (c < 0x20 || c > 0x7E) {
        return InvalidFrame(
            absl::StrCat("TRACESTATE byte 0x", absl::Hex(c, absl::kZeroPad2),
                         " at index ", i, " is not printable ASCII"));
      }
    }
    total += TlvSize(kExtTraceState, ext.trace_state.size());
  }
  for (const MetadataEntry& m : ext.metadata) {
    if (m.key.empty()) return InvalidFrame("METADATA key is empty");
    if (m.key.size() > kLimit || m.value.size() > kLimit) {
      return too_large("METADATA entry", m.key.size() + m.value.size());
    }
    const size_t value_size =
        VarintSize(m.key.size()) + m.key.size() + m.value.size();
    total += TlvSize(kExtMetadata, value_size);
    if (total > kLimit) return too_large("extension region", total);
  }
  for (const RawExtension& r : ext.other) {
    if (r.type == 0 || r.type > kVarintMax) {
      return InvalidFrame(
          absl::StrCat("extension type ", r.type, " is not in 1..2^62-1"));
    }
    if (IsKnownExtension(r.type)) {
      return InvalidFrame(absl::StrCat(
          "extension type ", r.type,
          " is a known type; set it through its FrameExtensions field"));
    }
    if (r.value.size() > kLimit) return too_large("extension", r.value.size());
    total += TlvSize(r.type, r.value.size());
    if (total > kLimit) return too_large("extension region", total);
  }
  return total;
}

SYMWIRE_DECL absl::StatusOr<FramePlan> PlanFrame(const FrameHeader& header,
                                                 const FrameExtensions& ext,
                                                 size_t payload_size) {
  const auto type = static_cast<uint8_t>(header.type);
  if (!IsValidMessageType(type)) {
    return InvalidFrame(
        absl::StrCat("message type ", type, " is not one of 0..5"));
  }
  if ((header.flags & kFlagsReserved) != 0) {
    return InvalidFrame(absl::StrCat("flags 0x",
                                     absl::Hex(header.flags, absl::kZeroPad2),
                                     " set reserved bits"));
  }
  if ((header.flags & kFlagFinal) != 0 &&
      header.type != MessageType::kAgentResponse) {
    return InvalidFrame(absl::StrCat("flag FINAL is not allowed on ",
                                     MessageTypeName(header.type)));
  }
  const StreamIdRule rule = StreamIdRuleFor(header.type);
  if ((rule == StreamIdRule::kZero && header.stream_id != 0) ||
      (rule == StreamIdRule::kNonZero && header.stream_id == 0)) {
    return InvalidFrame(absl::StrCat(
        "stream_id ", header.stream_id, " on ", MessageTypeName(header.type),
        " must ", rule == StreamIdRule::kZero ? "be 0" : "not be 0"));
  }
  if (header.stream_id > kVarintMax || header.sequence > kVarintMax) {
    return MakeError(
        ErrorCode::kVarintOutOfRange,
        absl::StrCat("stream_id ", header.stream_id, " or sequence ",
                     header.sequence, " exceeds 2^62-1"));
  }
  if (payload_size > kMaxPayloadSizeLimit) {
    return InvalidFrame(
        absl::StrCat("payload of ", payload_size, " bytes exceeds 1073741823"));
  }
  FramePlan plan;
  if (!ext.empty()) {
    auto ext_size = PlanExtensions(ext);
    if (!ext_size.ok()) return ext_size.status();
    plan.extensions_size = *ext_size;
  }
  // header_length: everything after its own varint (SPEC.md §4).
  plan.header_length = 2 + VarintSize(header.stream_id) +
                       VarintSize(header.sequence) + VarintSize(payload_size) +
                       plan.extensions_size + kHeaderCrcSize;
  if (plan.header_length > kMaxHeaderLength) {
    return MakeError(
        ErrorCode::kHeaderTooLarge,
        absl::StrCat("header_length ", plan.header_length, " exceeds 16383"));
  }
  plan.header_size = VarintSize(plan.header_length) + plan.header_length;
  return plan;
}

inline std::byte* WriteTlvHead(std::byte* p, uint64_t type, size_t size) {
  p += EncodeVarintUnchecked(type, p);
  return p + EncodeVarintUnchecked(size, p);
}

// REQUIRES: `out` has plan.header_size bytes; PlanFrame accepted the input.
inline void WriteHeader(const FramePlan& plan, const FrameHeader& header,
                        const FrameExtensions& ext, size_t payload_size,
                        std::byte* out) {
  std::byte* p = out;
  p += EncodeVarintUnchecked(plan.header_length, p);
  *p++ = static_cast<std::byte>(header.type);
  *p++ = static_cast<std::byte>(header.flags);
  p += EncodeVarintUnchecked(header.stream_id, p);
  p += EncodeVarintUnchecked(header.sequence, p);
  p += EncodeVarintUnchecked(payload_size, p);
  if (plan.extensions_size != 0) {
    if (ext.deadline_us) {
      p = WriteTlvHead(p, kExtDeadline, VarintSize(*ext.deadline_us));
      p += EncodeVarintUnchecked(*ext.deadline_us, p);
    }
    if (ext.trace_parent) {
      const TraceParent& tp = *ext.trace_parent;
      p = WriteTlvHead(p, kExtTraceParent, kTraceParentSize);
      *p++ = static_cast<std::byte>(tp.version);
      std::memcpy(p, tp.trace_id.data(), tp.trace_id.size());
      p += tp.trace_id.size();
      std::memcpy(p, tp.parent_id.data(), tp.parent_id.size());
      p += tp.parent_id.size();
      *p++ = static_cast<std::byte>(tp.trace_flags);
    }
    if (!ext.trace_state.empty()) {
      p = WriteTlvHead(p, kExtTraceState, ext.trace_state.size());
      std::memcpy(p, ext.trace_state.data(), ext.trace_state.size());
      p += ext.trace_state.size();
    }
    for (const MetadataEntry& m : ext.metadata) {
      p = WriteTlvHead(
          p, kExtMetadata,
          VarintSize(m.key.size()) + m.key.size() + m.value.size());
      p += EncodeVarintUnchecked(m.key.size(), p);
      std::memcpy(p, m.key.data(), m.key.size());
      p += m.key.size();
      if (!m.value.empty()) std::memcpy(p, m.value.data(), m.value.size());
      p += m.value.size();
    }
    if (!ext.method.empty()) {
      p = WriteTlvHead(p, kExtMethod, ext.method.size());
      std::memcpy(p, ext.method.data(), ext.method.size());
      p += ext.method.size();
    }
    for (const RawExtension& r : ext.other) {
      p = WriteTlvHead(p, r.type, r.value.size());
      if (!r.value.empty()) std::memcpy(p, r.value.data(), r.value.size());
      p += r.value.size();
    }
  }
  const size_t crc_pos = plan.header_size - kHeaderCrcSize;
  SYMWIRE_ASSERT(static_cast<size_t>(p - out) == crc_pos);
  StoreBig32(out + crc_pos, Crc32c(absl::Span<const std::byte>(out, crc_pos)));
}

SYMWIRE_COLD inline absl::Status BufferTooSmall(size_t need, size_t have) {
  return MakeError(ErrorCode::kBufferTooSmall,
                   absl::StrCat("frame of ", need,
                                " bytes does not fit in a buffer of ", have));
}

}  // namespace detail

SYMWIRE_DECL absl::StatusOr<size_t> EncodePreface(absl::Span<std::byte> out) {
  if (out.size() < kPrefaceSize) {
    return detail::BufferTooSmall(kPrefaceSize, out.size());
  }
  std::memcpy(out.data(), kPrefaceBytes.data(), kPrefaceSize);
  return kPrefaceSize;
}

SYMWIRE_DECL absl::StatusOr<size_t> EncodedHeaderSize(
    const FrameHeader& header, const FrameExtensions& extensions,
    size_t payload_size) {
  auto plan = detail::PlanFrame(header, extensions, payload_size);
  if (!plan.ok()) return plan.status();
  return plan->header_size;
}

SYMWIRE_DECL absl::StatusOr<size_t> EncodedSize(
    const FrameHeader& header, const FrameExtensions& extensions,
    size_t payload_size) {
  if (extensions.empty()) {
    const size_t header_size = detail::PlainHeaderSize(header, payload_size);
    if (header_size != 0) {
      return detail::PlainFrameSize(header, header_size, payload_size);
    }
  }
  auto plan = detail::PlanFrame(header, extensions, payload_size);
  if (!plan.ok()) return plan.status();
  return plan->FrameSize(header, payload_size);
}

SYMWIRE_DECL absl::StatusOr<size_t> EncodeFrame(
    const FrameHeader& header, const FrameExtensions& extensions,
    absl::Span<const std::byte> payload, absl::Span<std::byte> out) {
  if (extensions.empty()) {
    // Plain frames (wire/detail/plain_frame.hpp); PlanFrame names the error
    // of any header PlainHeaderSize refuses.
    const size_t header_size = detail::PlainHeaderSize(header, payload.size());
    if (header_size != 0) {
      const size_t total =
          detail::PlainFrameSize(header, header_size, payload.size());
      if (out.size() < total) return detail::BufferTooSmall(total, out.size());
      return detail::EncodePlain(header, header_size, payload, out.data());
    }
  }
  auto plan = detail::PlanFrame(header, extensions, payload.size());
  if (!plan.ok()) return plan.status();
  const size_t total = plan->FrameSize(header, payload.size());
  if (out.size() < total) return detail::BufferTooSmall(total, out.size());
  return detail::EncodePlanned(*plan, header, extensions, payload, out.data());
}

SYMWIRE_DECL absl::StatusOr<GatherFrame> EncodeGather(
    const FrameHeader& header, const FrameExtensions& extensions,
    absl::Span<const std::byte> payload, absl::Span<std::byte> header_out) {
  auto plan = detail::PlanFrame(header, extensions, payload.size());
  if (!plan.ok()) return plan.status();
  if (header_out.size() < plan->header_size) {
    return detail::BufferTooSmall(plan->header_size, header_out.size());
  }
  return detail::EncodeGatherPlanned(*plan, header, extensions, payload,
                                     header_out.data());
}

namespace detail {

SYMWIRE_DECL size_t EncodePlanned(const FramePlan& plan,
                                  const FrameHeader& header,
                                  const FrameExtensions& extensions,
                                  absl::Span<const std::byte> payload,
                                  std::byte* out) {
  std::byte* p = out;
  WriteHeader(plan, header, extensions, payload.size(), p);
  p += plan.header_size;
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
  p += payload.size();
  if ((header.flags & kFlagChecksum) != 0) {
    StoreBig64(p, Xxh3Hash64(payload));
    p += kPayloadChecksumSize;
  }
  return static_cast<size_t>(p - out);
}

SYMWIRE_DECL GatherFrame EncodeGatherPlanned(
    const FramePlan& plan, const FrameHeader& header,
    const FrameExtensions& extensions, absl::Span<const std::byte> payload,
    std::byte* header_out) {
  WriteHeader(plan, header, extensions, payload.size(), header_out);
  GatherFrame frame;
  frame.header_ = absl::Span<const std::byte>(header_out, plan.header_size);
  frame.payload_ = payload;
  if ((header.flags & kFlagChecksum) != 0) {
    StoreBig64(frame.trailer_.data(), Xxh3Hash64(payload));
    frame.trailer_size_ = kPayloadChecksumSize;
  }
  return frame;
}

}  // namespace detail

}  // namespace symwire

#endif  // SYMWIRE_WIRE_IMPL_ENCODER_IPP_
