// File: fuzz/decode_frame.cpp
// libFuzzer target for FrameDecoder (SPEC.md §3-§8,
// include/symwire/wire/decoder.hpp), driven the way a transport drives it.
//
// Input layout (see fuzz/README.md; fuzz/make_seeds.py writes it):
//   byte 0     mode bits
//                bit 0     expect_preface
//                bits 1-2  header CRC: 0 = not verified, 1 = not verified
//                          but fixed up, 2 = fixed up and verified,
//                          3 = verified as is (the golden vectors' mode)
//                bits 3-4  payload XXH3 trailer, same four modes
//                bit 5     move the buffer to fresh storage at every
//                          kNeedMore (ASan then catches stale pointers)
//                bit 6     call Decode twice at every kNeedMore
//   byte 1     split: 0 = all at once, 1..127 = chunks of that size,
//              128..255 = pseudo-random chunk sizes 1..(b & 127) + 1
//   bytes 2-3  max_header_bytes   (big-endian, clamped to 10..16385: the
//              whole header, header_length varint included)
//   bytes 4-7  max_payload_bytes  (big-endian, clamped to 0..2^30-1)
//   bytes 8-9  max_extensions     (big-endian, clamped to 0..16383)
//   rest       the byte stream
//
// "Fixed up" means: before decoding, walk the stream frame by frame and
// store the correct CRC32C / XXH3-64 (STYLE.md §6: the fuzzer rarely forges
// a CRC, so without this it would never get past the CRC check).
//
// The driver accumulates chunks into a std::vector, calls Decode until
// kNeedMore or an error, and erases what each step consumed. It traps on:
//  - consumed > buffered; kNeedMore with bytes_needed <= buffered, with a
//    consumed count, or beyond the limits of one frame;
//  - a frame whose bytes, payload or extension values lie outside the
//    buffer, or whose fields break a rule the decoder claims to enforce
//    (re-checked here by an independent parser of the header);
//  - a decoded frame (TLVs in encoder order) that EncodeFrame does not
//    reproduce byte for byte (canonical form: one frame, one encoding);
//  - an error without a decoder ErrorCode payload, with the wrong canonical
//    code, without "at offset N", or with N outside the buffered bytes;
//    a CRC / checksum mismatch in a mode that fixed them up;
//  - an error that is not sticky (Decode again returns another status);
//  - a difference between split feeding and feeding the stream whole
//    (frames, final error, final kNeedMore).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "fuzz_check.hpp"
#include "symwire/detail/hash.hpp"
#include "symwire/error.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/detail/layout.hpp"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"
#include "symwire/wire/varint.hpp"

namespace {

using symwire::DecodeStep;
using symwire::ErrorCode;
using symwire::FrameView;
using symwire::fuzz::AsStringView;
using symwire::fuzz::HexOf;
using Bytes = absl::Span<const std::byte>;

constexpr size_t kControlSize = 10;

struct Control {
  symwire::DecoderOptions options;
  bool fix_crc = false;
  bool fix_checksum = false;
  bool move_buffer = false;
  bool repeat_need_more = false;
  uint8_t split = 0;
};

uint64_t LoadBigN(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

Control ParseControl(const uint8_t* data) {
  Control c;
  const uint8_t mode = data[0];
  c.options.expect_preface = (mode & 0x01) != 0;
  const unsigned crc_mode = (mode >> 1) & 3u;
  const unsigned sum_mode = (mode >> 3) & 3u;
  c.options.verify_header_crc = crc_mode >= 2;
  c.fix_crc = crc_mode == 1 || crc_mode == 2;
  c.options.verify_payload_checksum = sum_mode >= 2;
  c.fix_checksum = sum_mode == 1 || sum_mode == 2;
  c.move_buffer = (mode & 0x20) != 0;
  c.repeat_need_more = (mode & 0x40) != 0;
  c.split = data[1];
  c.options.max_header_bytes = static_cast<uint32_t>(
      std::clamp<uint64_t>(LoadBigN(data + 2, 2), symwire::kMinHeaderSize,
                           symwire::kMaxHeaderSizeLimit));
  c.options.max_payload_bytes =
      std::min<uint64_t>(LoadBigN(data + 4, 4), symwire::kMaxPayloadSizeLimit);
  c.options.max_extensions = static_cast<uint32_t>(
      std::min<uint64_t>(LoadBigN(data + 8, 2), symwire::kMaxExtensionsLimit));
  return c;
}

// Reads a canonical varint lying wholly in s[pos, end); nullopt otherwise.
std::optional<uint64_t> ReadVarint(Bytes s, size_t& pos, size_t end) {
  if (pos >= end) return std::nullopt;
  const size_t n = symwire::VarintSizeFromFirstByte(s[pos]);
  if (n > end - pos) return std::nullopt;
  const uint64_t v = symwire::detail::LoadVarint(s.data() + pos, n);
  if (!symwire::detail::IsCanonicalVarint(v, n)) return std::nullopt;
  pos += n;
  return v;
}

// Walks the stream frame by frame as a receiver delimits it and stores the
// correct header CRC32C and/or payload XXH3-64 of every frame whose bytes
// are all present. Stops where a receiver would fail or run out of bytes.
// SPEC.md §4: header_length counts the header bytes after its own varint
// (9..16383, so 1 or 2 bytes); the header is n + header_length bytes and the
// CRC covers all of them but the last 4, from the first header_length byte.
void FixUpStream(std::vector<std::byte>& stream, bool preface, bool fix_crc,
                 bool fix_checksum) {
  size_t pos = preface ? symwire::kPrefaceSize : 0;
  while (pos < stream.size()) {
    const Bytes s(stream);
    const size_t n = symwire::VarintSizeFromFirstByte(s[pos]);
    if (n > 2 || n > s.size() - pos) return;
    const uint64_t hl = symwire::detail::LoadVarint(s.data() + pos, n);
    if (!symwire::detail::IsCanonicalVarint(hl, n)) return;
    if (hl < symwire::kMinHeaderLength || hl > s.size() - pos - n) return;
    const size_t h = n + static_cast<size_t>(hl);  // the whole header
    const size_t crc_pos = pos + h - symwire::kHeaderCrcSize;
    if (fix_crc) {
      symwire::detail::StoreBig32(
          stream.data() + crc_pos,
          symwire::Crc32c(s.subspan(pos, crc_pos - pos)));
    }
    size_t p = pos + n;
    if (crc_pos - p < 2) return;
    const auto flags = static_cast<uint8_t>(s[p + 1]);
    p += 2;
    if (!ReadVarint(s, p, crc_pos) || !ReadVarint(s, p, crc_pos)) return;
    const std::optional<uint64_t> payload = ReadVarint(s, p, crc_pos);
    if (!payload || *payload > s.size()) return;
    const size_t payload_begin = pos + h;
    const auto payload_size = static_cast<size_t>(*payload);
    size_t next = payload_begin + payload_size;
    if ((flags & symwire::kFlagChecksum) != 0) {
      next += symwire::kPayloadChecksumSize;
      if (fix_checksum && next <= s.size()) {
        symwire::detail::StoreBig64(
            stream.data() + payload_begin + payload_size,
            symwire::detail::Xxh3Hash64(
                s.subspan(payload_begin, payload_size)));
      }
    }
    pos = next;
  }
}

using symwire::fuzz::Chunker;

// What a driver observed; compared between split and whole feeding.
struct Run {
  std::string log;       // one record per preface / frame
  absl::Status error;    // the fatal error, if any
  size_t remaining = 0;  // bytes left unconsumed at the end
  size_t last_needed = 0;
};

bool IsDecoderError(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadPreface:
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kNonCanonicalVarint:
    case ErrorCode::kBadHeaderLength:
    case ErrorCode::kHeaderTooLarge:
    case ErrorCode::kHeaderCrcMismatch:
    case ErrorCode::kUnknownMessageType:
    case ErrorCode::kReservedFlags:
    case ErrorCode::kBadStreamId:
    case ErrorCode::kMalformedHeader:
    case ErrorCode::kPayloadTooLarge:
    case ErrorCode::kPayloadChecksumMismatch:
    case ErrorCode::kMalformedExtension:
    case ErrorCode::kUnknownCriticalExtension:
    case ErrorCode::kDuplicateExtension:
    case ErrorCode::kTooManyExtensions:
      return true;
    default:
      return false;
  }
}

void CheckError(const absl::Status& s, symwire::FrameDecoder& dec,
                const std::vector<std::byte>& buf, const Control& c) {
  const ErrorCode code = symwire::GetErrorCode(s);
  FUZZ_CHECK_MSG(code != ErrorCode::kOk, s.ToString());
  FUZZ_CHECK_MSG(IsDecoderError(code), s.ToString());
  FUZZ_CHECK_MSG(s.code() == symwire::CanonicalCode(code), s.ToString());
  // "... at offset N", N a stream offset of a byte the decoder was given.
  const size_t at = s.message().rfind("at offset ");
  FUZZ_CHECK_MSG(at != absl::string_view::npos, s.ToString());
  uint64_t offset = 0;
  FUZZ_CHECK_MSG(absl::SimpleAtoi(s.message().substr(at + 10), &offset),
                 s.ToString());
  FUZZ_CHECK_MSG(offset >= dec.stream_offset() &&
                     offset - dec.stream_offset() < buf.size(),
                 absl::StrCat(s.ToString(), " stream_offset=",
                              dec.stream_offset(), " buffered=", buf.size()));
  // Mode consistency: mismatches only where the bytes were not fixed up.
  if (code == ErrorCode::kHeaderCrcMismatch) {
    FUZZ_CHECK(c.options.verify_header_crc && !c.fix_crc);
  }
  if (code == ErrorCode::kPayloadChecksumMismatch) {
    FUZZ_CHECK(c.options.verify_payload_checksum && !c.fix_checksum);
  }
  const bool preface_error =
      code == ErrorCode::kBadPreface || code == ErrorCode::kUnsupportedVersion;
  FUZZ_CHECK_MSG(preface_error == !dec.preface_done(), s.ToString());
  // Sticky: the same status for the same input, any input, and status().
  FUZZ_CHECK(dec.status() == s);
  auto again = dec.Decode(buf);
  FUZZ_CHECK_MSG(!again.ok() && again.status() == s,
                 again.status().ToString() + " vs " + s.ToString());
  auto empty = dec.Decode(Bytes());
  FUZZ_CHECK(!empty.ok() && empty.status() == s);
}

// The fields of an accepted header, re-parsed from its bytes here.
struct RefTlv {
  uint64_t type;
  Bytes value;
};

std::vector<RefTlv> ReparseHeader(const FrameView& f) {
  const Bytes b = f.bytes();
  const size_t hs = f.header_size();
  FUZZ_CHECK(hs >= symwire::kMinHeaderSize && hs <= b.size());
  size_t pos = 0;
  const size_t end = hs - symwire::kHeaderCrcSize;
  // SPEC.md §4: header_length is the number of header bytes after its own
  // (canonical, 1- or 2-byte) varint, CRC included.
  const std::optional<uint64_t> hl = ReadVarint(b, pos, end);
  FUZZ_CHECK(hl && pos <= 2 && *hl >= symwire::kMinHeaderLength &&
             *hl <= symwire::kMaxHeaderLength && pos + *hl == hs);
  FUZZ_CHECK(end - pos >= 2);
  FUZZ_CHECK(static_cast<uint8_t>(b[pos]) == static_cast<uint8_t>(f.type()));
  FUZZ_CHECK(static_cast<uint8_t>(b[pos + 1]) == f.flags());
  pos += 2;
  const auto sid = ReadVarint(b, pos, end);
  FUZZ_CHECK(sid && *sid == f.stream_id());
  const auto seq = ReadVarint(b, pos, end);
  FUZZ_CHECK(seq && *seq == f.sequence());
  const auto plen = ReadVarint(b, pos, end);
  FUZZ_CHECK(plen && *plen == f.payload().size());
  std::vector<RefTlv> tlvs;
  while (pos < end) {
    const auto type = ReadVarint(b, pos, end);
    FUZZ_CHECK(type.has_value());
    const auto len = ReadVarint(b, pos, end);
    FUZZ_CHECK(len && *len <= end - pos);
    tlvs.push_back(RefTlv{*type, b.subspan(pos, static_cast<size_t>(*len))});
    pos += static_cast<size_t>(*len);
  }
  FUZZ_CHECK(pos == end);
  return tlvs;
}

bool Within(Bytes inner, Bytes outer) {
  return inner.data() >= outer.data() &&
         inner.data() + inner.size() <= outer.data() + outer.size();
}

// Order in which EncodeFrame writes TLVs (FrameExtensions comment).
int EncoderRank(uint64_t type) {
  switch (type) {
    case symwire::kExtDeadline:
      return 0;
    case symwire::kExtTraceParent:
      return 1;
    case symwire::kExtTraceState:
      return 2;
    case symwire::kExtMetadata:
      return 3;
    case symwire::kExtMethod:
      return 4;
    default:
      return 5;
  }
}

void CheckFrame(const FrameView& f, const std::vector<std::byte>& buf,
                size_t consumed, const Control& c) {
  const symwire::DecoderOptions& o = c.options;
  const Bytes b = f.bytes();
  // Spans: the frame is the front of the buffer; payload inside it.
  FUZZ_CHECK(b.data() == buf.data() && b.size() == consumed);
  FUZZ_CHECK(consumed <= buf.size());
  const size_t hs = f.header_size();
  FUZZ_CHECK(hs >= symwire::kMinHeaderSize && hs <= o.max_header_bytes);
  FUZZ_CHECK(f.payload().data() == b.data() + hs || f.payload().empty());
  FUZZ_CHECK(Within(f.payload(), b));
  FUZZ_CHECK(f.payload().size() <= o.max_payload_bytes);
  FUZZ_CHECK(
      hs + f.payload().size() +
          (f.has_payload_checksum() ? symwire::kPayloadChecksumSize : 0) ==
      b.size());
  // Header rules (SPEC.md §4.1, §4.2).
  const auto type = static_cast<uint8_t>(f.type());
  FUZZ_CHECK(symwire::IsValidMessageType(type));
  FUZZ_CHECK((f.flags() & symwire::kFlagsReserved) == 0);
  FUZZ_CHECK(!f.is_final() || f.type() == symwire::MessageType::kAgentResponse);
  const symwire::StreamIdRule rule = symwire::StreamIdRuleFor(f.type());
  FUZZ_CHECK(rule != symwire::StreamIdRule::kZero || f.stream_id() == 0);
  FUZZ_CHECK(rule != symwire::StreamIdRule::kNonZero || f.stream_id() != 0);
  if (c.options.verify_header_crc || c.fix_crc) {
    const size_t crc_pos = hs - symwire::kHeaderCrcSize;
    FUZZ_CHECK(symwire::Crc32c(b.first(crc_pos)) ==
               symwire::detail::LoadBig32(b.data() + crc_pos));
  }
  if (f.has_payload_checksum() &&
      (o.verify_payload_checksum || c.fix_checksum)) {
    FUZZ_CHECK(symwire::detail::Xxh3Hash64(f.payload()) ==
               symwire::detail::LoadBig64(b.data() + hs + f.payload().size()));
  }

  // Extensions (SPEC.md §5): the decoder's range against our own parse.
  const std::vector<RefTlv> ref = ReparseHeader(f);
  const Bytes fields = b.first(hs - symwire::kHeaderCrcSize);
  size_t i = 0;
  bool deadline = false, trace_parent = false, trace_state = false,
       method = false;
  uint32_t metadata = 0;
  std::vector<symwire::MetadataEntry> meta;
  std::vector<symwire::RawExtension> other;
  int rank = 0;
  bool encoder_order = true;
  for (const symwire::RawExtension& e : f.extensions()) {
    FUZZ_CHECK(i < ref.size());
    FUZZ_CHECK(e.type == ref[i].type);
    FUZZ_CHECK(e.value.data() == ref[i].value.data() &&
               e.value.size() == ref[i].value.size());
    FUZZ_CHECK(Within(e.value, fields));
    ++i;
    FUZZ_CHECK(e.type != 0);
    FUZZ_CHECK(!symwire::IsCriticalExtension(e.type) ||
               symwire::IsKnownExtension(e.type));
    const int r = EncoderRank(e.type);
    if (r < rank) encoder_order = false;
    rank = r;
    switch (e.type) {
      case symwire::kExtDeadline: {
        FUZZ_CHECK(!deadline);
        deadline = true;
        auto d = symwire::DecodeVarint(e.value);
        FUZZ_CHECK(d.ok() && d->complete && d->size == e.value.size());
        FUZZ_CHECK(f.deadline_us() == d->value);
        break;
      }
      case symwire::kExtTraceParent: {
        FUZZ_CHECK(!trace_parent);
        trace_parent = true;
        FUZZ_CHECK(e.value.size() == symwire::kTraceParentSize);
        const symwire::TraceParent tp = symwire::ParseTraceParentValue(e.value);
        FUZZ_CHECK(f.trace_parent().has_value() && *f.trace_parent() == tp);
        FUZZ_CHECK(tp.version != 0xFF);
        FUZZ_CHECK(std::any_of(tp.trace_id.begin(), tp.trace_id.end(),
                               [](std::byte x) { return x != std::byte{0}; }));
        FUZZ_CHECK(std::any_of(tp.parent_id.begin(), tp.parent_id.end(),
                               [](std::byte x) { return x != std::byte{0}; }));
        break;
      }
      case symwire::kExtMethod: {
        FUZZ_CHECK(!method);
        method = true;
        const absl::string_view m = f.method();
        FUZZ_CHECK(m.data() == AsStringView(e.value).data() &&
                   m.size() == e.value.size());
        FUZZ_CHECK(!m.empty() && m.size() <= symwire::kMaxMethodSize);
        for (char ch : m) FUZZ_CHECK(ch >= 0x21 && ch <= 0x7E);
        break;
      }
      case symwire::kExtTraceState: {
        FUZZ_CHECK(!trace_state);
        trace_state = true;
        const absl::string_view ts = f.trace_state();
        FUZZ_CHECK(ts.data() == AsStringView(e.value).data() &&
                   ts.size() == e.value.size());
        FUZZ_CHECK(!ts.empty() && ts.size() <= symwire::kMaxTraceStateSize);
        for (char ch : ts) FUZZ_CHECK(ch >= 0x20 && ch <= 0x7E);
        break;
      }
      case symwire::kExtMetadata: {
        ++metadata;
        FUZZ_CHECK(!e.value.empty());
        const symwire::MetadataEntry m = symwire::ParseMetadataValue(e.value);
        const absl::string_view whole = AsStringView(e.value);
        FUZZ_CHECK(!m.key.empty());
        FUZZ_CHECK(m.key.data() >= whole.data() &&
                   m.key.data() + m.key.size() <= m.value.data() &&
                   m.value.data() + m.value.size() ==
                       whole.data() + whole.size());
        FUZZ_CHECK(symwire::VarintSize(m.key.size()) + m.key.size() +
                       m.value.size() ==
                   whole.size());
        meta.push_back(m);
        break;
      }
      default:
        other.push_back(e);
        break;
    }
  }
  FUZZ_CHECK(i == ref.size());
  FUZZ_CHECK(f.extension_count() == ref.size());
  FUZZ_CHECK(f.extension_count() <= o.max_extensions);
  FUZZ_CHECK(f.metadata_count() == metadata);
  FUZZ_CHECK(f.deadline_us().has_value() == deadline);
  FUZZ_CHECK(f.trace_parent().has_value() == trace_parent);
  FUZZ_CHECK(!f.trace_state().empty() == trace_state);
  FUZZ_CHECK(!f.method().empty() == method);
  FUZZ_CHECK(f.extensions().empty() == ref.empty());

  // Canonical form (SPEC.md §2): the encoder, given the decoded frame,
  // writes the same bytes. Only when the TLVs are in the encoder's order;
  // CRC and trailer only when they were verified or fixed up.
  if (!encoder_order) return;
  symwire::FrameExtensions ext;
  ext.deadline_us = f.deadline_us();
  ext.trace_parent = f.trace_parent();
  ext.method = f.method();
  ext.trace_state = f.trace_state();
  ext.metadata = meta;
  ext.other = other;
  std::vector<std::byte> out(b.size() + 8);
  auto w =
      symwire::EncodeFrame(f.header(), ext, f.payload(), absl::MakeSpan(out));
  FUZZ_CHECK_MSG(w.ok(), w.status().ToString());
  // header_length does not count its own bytes (SPEC.md §4), so every header
  // has exactly one encoding: the encoder reproduces the length field and
  // every byte up to the CRC, whatever the header size.
  FUZZ_CHECK_MSG(*w == b.size(), absl::StrCat("re-encoded ", *w,
                                              " bytes, frame has ", b.size()));
  const Bytes e(out.data(), *w);
  const size_t crc_pos = hs - symwire::kHeaderCrcSize;
  FUZZ_CHECK_MSG(
      e.first(crc_pos) == b.first(crc_pos),
      "frame   " + HexOf(b.first(hs)) + "\nencoded " + HexOf(e.first(hs)));
  if (o.verify_header_crc || c.fix_crc) {
    FUZZ_CHECK(e.subspan(crc_pos, 4) == b.subspan(crc_pos, 4));
  }
  FUZZ_CHECK(e.subspan(hs, f.payload().size()) == f.payload());
  if (f.has_payload_checksum() &&
      (o.verify_payload_checksum || c.fix_checksum)) {
    FUZZ_CHECK(e.subspan(hs + f.payload().size()) ==
               b.subspan(hs + f.payload().size()));
  }
}

void LogFrame(std::string& log, const FrameView& f) {
  absl::StrAppend(
      &log, "F hs=", f.header_size(), " type=", static_cast<unsigned>(f.type()),
      " flags=", f.flags(), " sid=", f.stream_id(), " seq=", f.sequence(),
      " plen=", f.payload().size(), " ext=", f.extension_count(),
      " meta=", f.metadata_count(), " bytes=", AsStringView(f.bytes()), "\n");
}

// Feeds `stream` in the chunks `split` gives and runs the decode loop.
Run Drive(const Control& c, Bytes stream, uint8_t split) {
  symwire::FrameDecoder dec(c.options);
  std::vector<std::byte> buf;
  Run run;
  Chunker chunker(split);
  const uint64_t max_need = std::max<uint64_t>(
      symwire::kPrefaceSize, c.options.max_header_bytes +
                                 c.options.max_payload_bytes +
                                 symwire::kPayloadChecksumSize);
  uint64_t consumed_total = 0;
  bool saw_preface = false;
  size_t fed = 0;
  do {
    const size_t n = chunker.Next(stream.size() - fed);
    buf.insert(buf.end(), stream.begin() + static_cast<std::ptrdiff_t>(fed),
               stream.begin() + static_cast<std::ptrdiff_t>(fed + n));
    fed += n;
    for (;;) {
      FUZZ_CHECK(dec.stream_offset() == consumed_total);
      FUZZ_CHECK(dec.preface_done() ==
                 (saw_preface || !c.options.expect_preface));
      auto step = dec.Decode(buf);
      if (!step.ok()) {
        CheckError(step.status(), dec, buf, c);
        run.error = step.status();
        run.remaining = buf.size();
        return run;
      }
      FUZZ_CHECK(step->consumed <= buf.size());
      if (step->kind == DecodeStep::Kind::kNeedMore) {
        FUZZ_CHECK(step->consumed == 0);
        FUZZ_CHECK_MSG(step->bytes_needed > buf.size(),
                       absl::StrCat("bytes_needed=", step->bytes_needed,
                                    " buffered=", buf.size()));
        FUZZ_CHECK(step->bytes_needed <= max_need);
        run.last_needed = step->bytes_needed;
        if (c.repeat_need_more) {
          auto again = dec.Decode(buf);
          FUZZ_CHECK(again.ok() && again->kind == DecodeStep::Kind::kNeedMore &&
                     again->bytes_needed == step->bytes_needed);
        }
        if (c.move_buffer) {
          // The old storage is freed here: a decoder that kept a pointer
          // into it is caught by ASan on the next call.
          std::vector<std::byte> moved(buf.begin(), buf.end());
          buf.swap(moved);
        }
        break;
      }
      FUZZ_CHECK(step->consumed > 0);
      if (step->kind == DecodeStep::Kind::kPreface) {
        FUZZ_CHECK(c.options.expect_preface && !saw_preface);
        FUZZ_CHECK(consumed_total == 0);
        FUZZ_CHECK(step->consumed == symwire::kPrefaceSize);
        FUZZ_CHECK(step->wire_version == symwire::kWireVersion);
        FUZZ_CHECK(Bytes(buf).first(symwire::kPrefaceSize) ==
                   Bytes(symwire::kPrefaceBytes));
        saw_preface = true;
        absl::StrAppend(&run.log, "P ", step->wire_version, "\n");
      } else {
        FUZZ_CHECK(step->kind == DecodeStep::Kind::kFrame);
        FUZZ_CHECK(saw_preface || !c.options.expect_preface);
        CheckFrame(step->frame, buf, step->consumed, c);
        LogFrame(run.log, step->frame);
      }
      consumed_total += step->consumed;
      buf.erase(buf.begin(),
                buf.begin() + static_cast<std::ptrdiff_t>(step->consumed));
    }
  } while (fed < stream.size());
  FUZZ_CHECK(dec.status().ok());
  run.remaining = buf.size();
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kControlSize) return 0;
  const Control c = ParseControl(data);
  std::vector<std::byte> stream(
      reinterpret_cast<const std::byte*>(data) + kControlSize,
      reinterpret_cast<const std::byte*>(data) + size);
  if (c.fix_crc || c.fix_checksum) {
    FixUpStream(stream, c.options.expect_preface, c.fix_crc, c.fix_checksum);
  }
  const Run split = Drive(c, stream, c.split);
  const Run whole = Drive(c, stream, 0);
  // The inline fast path must agree exactly with the general path.
  Control general = c;
  general.options.use_fast_path = false;
  const Run slow = Drive(general, stream, 0);
  if (symwire::fuzz::Verbose()) {
    std::fprintf(stderr,
                 "decode_frame: preface=%d crc=%d/%d checksum=%d/%d split=%u "
                 "limits=%u/%llu/%u: %zu records, %s, %zu bytes left\n",
                 c.options.expect_preface, c.options.verify_header_crc,
                 c.fix_crc, c.options.verify_payload_checksum, c.fix_checksum,
                 c.split, c.options.max_header_bytes,
                 static_cast<unsigned long long>(c.options.max_payload_bytes),
                 c.options.max_extensions,
                 static_cast<size_t>(
                     std::count(whole.log.begin(), whole.log.end(), '\n')),
                 whole.error.ToString().c_str(), whole.remaining);
  }
  FUZZ_CHECK_MSG(slow.log == whole.log,
                 "general path:\n" + slow.log + "fast path:\n" + whole.log);
  FUZZ_CHECK_MSG(slow.error == whole.error,
                 slow.error.ToString() + " vs " + whole.error.ToString());
  FUZZ_CHECK(slow.remaining == whole.remaining);
  // Any split yields the same frames and errors (decoder.hpp guarantee).
  FUZZ_CHECK_MSG(split.log == whole.log,
                 "split:\n" + split.log + "whole:\n" + whole.log);
  FUZZ_CHECK_MSG(split.error == whole.error,
                 split.error.ToString() + " vs " + whole.error.ToString());
  if (split.error.ok()) {
    FUZZ_CHECK(split.remaining == whole.remaining);
    FUZZ_CHECK_MSG(split.last_needed == whole.last_needed,
                   absl::StrCat(split.last_needed, " vs ", whole.last_needed));
  }
  return 0;
}
