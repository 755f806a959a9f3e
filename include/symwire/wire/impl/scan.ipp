// File: symwire/wire/impl/scan.ipp
// Out-of-line bodies of wire/scan.hpp.
#ifndef SYMWIRE_WIRE_IMPL_SCAN_IPP_
#define SYMWIRE_WIRE_IMPL_SCAN_IPP_

#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/detail/layout.hpp"
#include "symwire/wire/message_type.hpp"
#include "symwire/wire/scan.hpp"
#include "symwire/wire/varint.hpp"

namespace symwire {
namespace detail {

// Reads a canonical varint that lies in [pos, end); advances pos.
inline bool ScanVarint(absl::Span<const std::byte> data, size_t& pos,
                       size_t end, uint64_t& value) noexcept {
  if (pos >= end) return false;
  const size_t n = VarintSizeFromFirstByte(data[pos]);
  if (n > end - pos) return false;
  value = LoadVarint(data.data() + pos, n);
  if (!IsCanonicalVarint(value, n)) return false;
  pos += n;
  return true;
}

}  // namespace detail

SYMWIRE_DECL std::optional<HeaderCandidate> ProbeFrameHeader(
    absl::Span<const std::byte> data, size_t max_header_bytes) noexcept {
  if (data.empty()) return std::nullopt;
  const size_t n = VarintSizeFromFirstByte(data[0]);
  // header_length <= kMaxHeaderLength (16383) fits in 2 bytes.
  if (n > 2 || data.size() < n) return std::nullopt;
  const uint64_t header_length = detail::LoadVarint(data.data(), n);
  if (!detail::IsCanonicalVarint(header_length, n) ||
      header_length < kMinHeaderLength) {
    return std::nullopt;
  }
  const size_t header_size = n + static_cast<size_t>(header_length);
  if (header_size > max_header_bytes || header_size > data.size()) {
    return std::nullopt;
  }
  const size_t crc_pos = header_size - kHeaderCrcSize;
  if (Crc32c(data.first(crc_pos)) != detail::LoadBig32(data.data() + crc_pos)) {
    return std::nullopt;
  }
  HeaderCandidate found;
  found.header_size = header_size;
  // header_length >= 9: type and flags lie before the CRC.
  const auto flags = static_cast<uint8_t>(data[n + 1]);
  if ((flags & kFlagsReserved) != 0) return found;
  size_t pos = n + 2;
  uint64_t stream_id = 0;
  uint64_t sequence = 0;
  uint64_t payload_length = 0;
  if (!detail::ScanVarint(data, pos, crc_pos, stream_id) ||
      !detail::ScanVarint(data, pos, crc_pos, sequence) ||
      !detail::ScanVarint(data, pos, crc_pos, payload_length)) {
    return found;
  }
  const uint64_t trailer =
      (flags & kFlagChecksum) != 0 ? kPayloadChecksumSize : 0;
  // payload_length < 2^62 and the rest is small: no overflow.
  found.frame_size = header_size + payload_length + trailer;
  return found;
}

SYMWIRE_DECL std::optional<size_t> FindFrameHeader(
    absl::Span<const std::byte> data, size_t from,
    size_t max_header_bytes) noexcept {
  for (size_t p = from; p < data.size(); ++p) {
    if (ProbeFrameHeader(data.subspan(p), max_header_bytes)) return p;
  }
  return std::nullopt;
}

}  // namespace symwire

#endif  // SYMWIRE_WIRE_IMPL_SCAN_IPP_
