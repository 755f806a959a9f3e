// File: tests/support/feed.hpp
// Test support for layer 1 (frame codec). Runs a FrameDecoder over an input
// the way a real driver would - whole, one byte at a time, split in two at
// every split point, or split at seeded random points - and records what it
// decoded as a Transcript (preface, frames with every field copied out,
// the final error or the bytes left over), so a test can require that every
// feeding mode yields the identical transcript (picohttpparser's test.c and
// llhttp's vectors do the same).
//
// While feeding, the driver checks the decoder's contract (decoder.hpp) and
// records every violation in FeedResult::problems:
//   - kNeedMore consumes nothing, and its bytes_needed hint is larger than
//     the bytes buffered, never shrinks while one preface/frame is pending,
//     grows once the buffer has reached it (the next call "progresses"),
//     and never exceeds the size of the preface/frame that completes next
//     (or the decoder's per-frame limit when none completes);
//   - a frame's views point into the caller's buffer at the right places,
//     its sizes add up, its typed extension accessors agree with the raw
//     TLVs, and stream_offset() advances by `consumed`;
//   - an error carries a symwire ErrorCode whose canonical code it has,
//     names an offset inside the bytes the decoder was given, and is sticky.
// The driver keeps its unconsumed bytes in a std::vector that it appends to
// and erases from, and (for small buffers) copies to a fresh allocation
// after each append while poisoning and freeing the old one, so a decoder
// that kept a pointer into an earlier buffer reads garbage or trips ASan.
//
// Everything lives in namespace symwire::testing. The Catch2-facing entry
// point is DecodeAllWays().
#ifndef SYMWIRE_TESTS_SUPPORT_FEED_HPP_
#define SYMWIRE_TESTS_SUPPORT_FEED_HPP_

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "symwire/error.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"
#include "symwire/wire/varint.hpp"

namespace symwire::testing {

// ExtensionRecord
// One TLV of a decoded frame, copied out of the decoder's buffer.
struct ExtensionRecord {
  uint64_t type = 0;
  std::vector<std::byte> value;

  friend bool operator==(const ExtensionRecord&,
                         const ExtensionRecord&) = default;
};

// StepRecord
// One entry of a transcript. Only the fields of its kind are set.
struct StepRecord {
  enum class Kind : uint8_t {
    kPreface,     // the preface was accepted
    kFrame,       // a frame was decoded
    kError,       // Decode failed (always the last entry)
    kIncomplete,  // input ended with unconsumed bytes (always the last entry)
  };
  Kind kind = Kind::kIncomplete;
  // kPreface/kFrame/kIncomplete: stream offset of the step's first byte.
  // kError: the offset named by the error message ("at offset N").
  uint64_t offset = 0;
  // kPreface/kFrame: DecodeStep::consumed. kIncomplete: bytes left over.
  size_t consumed = 0;

  // kPreface
  uint8_t wire_version = 0;

  // kFrame
  FrameHeader header;
  size_t header_size = 0;
  std::vector<std::byte> header_bytes;
  std::vector<std::byte> payload;
  std::vector<std::byte> trailer;  // checksum trailer, 0 or 8 bytes
  std::optional<uint64_t> deadline_us;
  std::optional<TraceParent> trace_parent;
  std::string trace_state;
  std::string method;                       // METHOD (SPEC.md §5.1)
  std::vector<ExtensionRecord> extensions;  // every TLV, wire order
  std::vector<std::pair<std::string, std::string>> metadata;  // wire order
  uint32_t extension_count = 0;
  uint32_t metadata_count = 0;

  // kError
  absl::StatusCode status_code = absl::StatusCode::kOk;
  ErrorCode error = ErrorCode::kOk;
  std::string message;

  // kIncomplete: the last bytes_needed hint.
  size_t bytes_needed = 0;

  friend bool operator==(const StepRecord&, const StepRecord&) = default;
};

using Transcript = std::vector<StepRecord>;

// FeedResult
// A transcript plus the contract violations seen while producing it.
struct FeedResult {
  Transcript steps;
  std::vector<std::string> problems;
  size_t decode_calls = 0;
};

// ---------------------------------------------------------------------------
// Rendering (for failure messages).

inline std::string HexPreview(absl::Span<const std::byte> bytes,
                              size_t max_bytes = 48) {
  const size_t shown = std::min(bytes.size(), max_bytes);
  std::string out = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes.data()), shown));
  if (shown < bytes.size()) {
    absl::StrAppend(&out, "...(", bytes.size(), " bytes)");
  }
  return out;
}

inline std::string ToString(const StepRecord& s) {
  switch (s.kind) {
    case StepRecord::Kind::kPreface:
      return absl::StrCat("preface @", s.offset, " version=", s.wire_version,
                          " consumed=", s.consumed);
    case StepRecord::Kind::kFrame: {
      std::string out = absl::StrCat(
          "frame @", s.offset, " ", MessageTypeName(s.header.type),
          " type=", static_cast<unsigned>(s.header.type),
          " flags=", static_cast<unsigned>(s.header.flags),
          " stream=", s.header.stream_id, " seq=", s.header.sequence,
          " header_size=", s.header_size, " consumed=", s.consumed,
          " header=", HexPreview(s.header_bytes, 64),
          " payload=", HexPreview(s.payload),
          " trailer=", HexPreview(s.trailer), " ext_count=", s.extension_count,
          " meta_count=", s.metadata_count);
      if (s.deadline_us) absl::StrAppend(&out, " deadline_us=", *s.deadline_us);
      if (s.trace_parent) {
        absl::StrAppend(&out, " traceparent(version=", s.trace_parent->version,
                        ")");
      }
      if (!s.trace_state.empty()) {
        absl::StrAppend(&out, " tracestate=\"", absl::CHexEscape(s.trace_state),
                        "\"");
      }
      if (!s.method.empty()) {
        absl::StrAppend(&out, " method=\"", absl::CHexEscape(s.method), "\"");
      }
      for (const ExtensionRecord& e : s.extensions) {
        absl::StrAppend(&out, " ext{", e.type, ":", HexPreview(e.value, 16),
                        "}");
      }
      return out;
    }
    case StepRecord::Kind::kError:
      return absl::StrCat("error @", s.offset, " ",
                          absl::StatusCodeToString(s.status_code), " ",
                          ErrorCodeName(s.error), ": ", s.message);
    case StepRecord::Kind::kIncomplete:
      return absl::StrCat("incomplete @", s.offset, " unconsumed=", s.consumed,
                          " bytes_needed=", s.bytes_needed);
  }
  return "?";
}

inline std::string ToString(const Transcript& t) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    absl::StrAppend(&out, "  [", i, "] ", ToString(t[i]), "\n");
  }
  return out;
}

// DiffTranscripts
// "" if `a` and `b` are identical, else a description of the first
// difference.
inline std::string DiffTranscripts(const Transcript& a, const Transcript& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (!(a[i] == b[i])) {
      return absl::StrCat("step ", i, " differs:\n  expected: ", ToString(a[i]),
                          "\n  actual:   ", ToString(b[i]));
    }
  }
  if (a.size() != b.size()) {
    return absl::StrCat(
        "transcripts have ", a.size(), " and ", b.size(),
        " steps; first extra step: ", ToString(a.size() > n ? a[n] : b[n]));
  }
  return "";
}

// The offset named by an error message ("... at offset N"), if any.
inline std::optional<uint64_t> OffsetInMessage(absl::string_view message) {
  constexpr absl::string_view kAt = "at offset ";
  const size_t at = message.rfind(kAt);
  if (at == absl::string_view::npos) return std::nullopt;
  size_t i = at + kAt.size();
  if (i >= message.size() || message[i] < '0' || message[i] > '9') {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (; i < message.size() && message[i] >= '0' && message[i] <= '9'; ++i) {
    value = value * 10 + static_cast<uint64_t>(message[i] - '0');
  }
  return value;
}

// ---------------------------------------------------------------------------
// The driver.

// Buffers up to this size are copied to a fresh allocation after every
// append (the old one is poisoned and freed); larger ones move only when
// the vector grows, which keeps byte-at-a-time feeding of big frames linear.
inline constexpr size_t kRelocateLimit = 4096;

class FeedDriver {
 public:
  // `batch` 0: one Decode per step; otherwise DecodeBatch into an array of
  // `batch` views, recorded frame by frame so the transcript must equal the
  // single-step one.
  explicit FeedDriver(const DecoderOptions& options, size_t batch = 0)
      : decoder_(options), options_(options), views_(batch) {}

  bool failed() const { return failed_; }

  // Appends `chunk` to the unconsumed bytes and decodes until kNeedMore or
  // an error.
  void Push(absl::Span<const std::byte> chunk) {
    if (failed_) return;
    buffer_.insert(buffer_.end(), chunk.begin(), chunk.end());
    if (buffer_.size() <= kRelocateLimit) Relocate();
    if (views_.empty()) {
      Drain();
    } else {
      DrainBatch();
    }
  }

  // Ends the input: records the leftover bytes, if any.
  FeedResult Finish() && {
    if (!failed_ && !buffer_.empty()) {
      StepRecord s;
      s.kind = StepRecord::Kind::kIncomplete;
      s.offset = decoder_.stream_offset();
      s.consumed = buffer_.size();
      s.bytes_needed = last_hint_;
      result_.steps.push_back(std::move(s));
    }
    return std::move(result_);
  }

 private:
  void Problem(std::string what) {
    // One problem is enough to fail; a handful helps to understand it.
    if (result_.problems.size() < 16) {
      result_.problems.push_back(absl::StrCat(
          what, " (call ", result_.decode_calls, ", stream offset ",
          decoder_.stream_offset(), ", buffered ", buffer_.size(), ")"));
    }
  }

  void Relocate() {
    std::vector<std::byte> moved(buffer_.begin(), buffer_.end());
    std::fill(buffer_.begin(), buffer_.end(), std::byte{0xEE});
    buffer_.swap(moved);
  }

  // The most a decoder may ask for to complete one preface or frame.
  uint64_t HintBound(bool in_preface) const {
    if (in_preface) return kPrefaceSize;
    return uint64_t{options_.max_header_bytes} + options_.max_payload_bytes +
           kPayloadChecksumSize;
  }

  void Drain() {
    for (;;) {
      const bool in_preface = !decoder_.preface_done();
      const uint64_t offset_before = decoder_.stream_offset();
      const absl::StatusOr<DecodeStep> r =
          decoder_.Decode(absl::Span<const std::byte>(buffer_));
      ++result_.decode_calls;
      if (!r.ok()) {
        RecordError(r.status(), offset_before);
        return;
      }
      switch (r->kind) {
        case DecodeStep::Kind::kNeedMore:
          CheckHint(*r, in_preface, offset_before);
          return;
        case DecodeStep::Kind::kPreface:
          RecordPreface(*r, in_preface, offset_before, true);
          break;
        case DecodeStep::Kind::kFrame:
          RecordFrame(*r, in_preface, offset_before, buffer_.data(),
                      buffer_.size(), true);
          break;
      }
      const size_t consumed = std::min(r->consumed, buffer_.size());
      if (consumed == 0) {
        Problem("a preface/frame step consumed 0 bytes");
        failed_ = true;  // would loop forever
        return;
      }
      buffer_.erase(buffer_.begin(),
                    buffer_.begin() + static_cast<std::ptrdiff_t>(consumed));
      // A new element starts: its hints are judged afresh.
      max_hint_ = 0;
      last_hint_ = 0;
    }
  }

  // Drain with DecodeBatch: each call's preface and frames are recorded as
  // the single steps they stand for, at their place in the buffer.
  void DrainBatch() {
    for (;;) {
      const bool in_preface = !decoder_.preface_done();
      const uint64_t offset_before = decoder_.stream_offset();
      const absl::StatusOr<BatchResult> r = decoder_.DecodeBatch(
          absl::Span<const std::byte>(buffer_), absl::MakeSpan(views_));
      ++result_.decode_calls;
      if (!r.ok()) {
        RecordError(r.status(), offset_before);
        return;
      }
      if (r->frames > views_.size() || r->consumed > buffer_.size()) {
        Problem(absl::StrCat("batch of ", r->frames, " frames consumed ",
                             r->consumed, " of ", buffer_.size()));
        failed_ = true;
        return;
      }
      size_t pos = 0;
      bool preface = in_preface;
      if (r->wire_version != 0) {
        if (!in_preface) Problem("batch reports a preface after the preface");
        DecodeStep step;
        step.kind = DecodeStep::Kind::kPreface;
        step.consumed = kPrefaceSize;
        step.wire_version = r->wire_version;
        RecordPreface(step, in_preface, offset_before, false);
        pos += kPrefaceSize;
        max_hint_ = 0;
        preface = false;
      }
      for (size_t i = 0; i < r->frames && !failed_; ++i) {
        DecodeStep step;
        step.kind = DecodeStep::Kind::kFrame;
        step.frame = views_[i];
        step.consumed = views_[i].size();
        RecordFrame(step, preface, offset_before + pos, buffer_.data() + pos,
                    buffer_.size() - pos, false);
        pos += step.consumed;
        max_hint_ = 0;
      }
      if (failed_) return;
      if (pos != r->consumed) {
        Problem(absl::StrCat("batch consumed ", r->consumed,
                             " but its steps add up to ", pos));
      }
      if (decoder_.stream_offset() != offset_before + r->consumed) {
        Problem("stream_offset() did not advance by the batch's consumed");
      }
      buffer_.erase(buffer_.begin(),
                    buffer_.begin() + static_cast<std::ptrdiff_t>(
                                          std::min(pos, buffer_.size())));
      if (pos != 0) last_hint_ = 0;
      if (r->bytes_needed != 0) {
        DecodeStep step;
        step.kind = DecodeStep::Kind::kNeedMore;
        step.bytes_needed = r->bytes_needed;
        CheckHint(step, !decoder_.preface_done(), decoder_.stream_offset());
        return;
      }
      if (r->frames < views_.size() && decoder_.status().ok()) {
        Problem(absl::StrCat("batch stopped after ", r->frames, " of ",
                             views_.size(),
                             " frames with no error and no kNeedMore"));
        failed_ = true;
        return;
      }
    }
  }

  void CheckHint(const DecodeStep& step, bool in_preface,
                 uint64_t offset_before) {
    const size_t hint = step.bytes_needed;
    if (step.consumed != 0) {
      Problem(absl::StrCat("kNeedMore with consumed=", step.consumed));
    }
    if (decoder_.stream_offset() != offset_before) {
      Problem("kNeedMore moved stream_offset()");
    }
    if (hint <= buffer_.size()) {
      Problem(absl::StrCat("bytes_needed ", hint,
                           " is not larger than the buffered ",
                           buffer_.size()));
    }
    if (hint > HintBound(in_preface)) {
      Problem(absl::StrCat("bytes_needed ", hint, " exceeds the bound ",
                           HintBound(in_preface)));
    }
    if (last_hint_ != 0) {
      if (hint < last_hint_) {
        Problem(absl::StrCat("bytes_needed shrank from ", last_hint_, " to ",
                             hint, " while the same element was pending"));
      }
      if (buffer_.size() >= last_hint_ && hint <= last_hint_) {
        Problem(absl::StrCat("given the ", last_hint_,
                             " bytes it asked for, the decoder asked for ",
                             hint, " again instead of progressing"));
      }
    }
    last_hint_ = hint;
    max_hint_ = std::max(max_hint_, hint);
  }

  void CheckCompletes(size_t consumed) {
    if (max_hint_ > consumed) {
      Problem(absl::StrCat("bytes_needed ", max_hint_,
                           " exceeded the size of the element that "
                           "completed, ",
                           consumed));
    }
  }

  // `check_offset`: the decoder's stream_offset() must be right after this
  // step (single steps; a batch is checked as a whole).
  void RecordPreface(const DecodeStep& step, bool in_preface,
                     uint64_t offset_before, bool check_offset) {
    if (!in_preface) Problem("kPreface after the preface was done");
    if (step.consumed != kPrefaceSize) {
      Problem(absl::StrCat("kPreface consumed ", step.consumed));
    }
    if (!decoder_.preface_done()) Problem("preface_done() false after it");
    if (check_offset &&
        decoder_.stream_offset() != offset_before + step.consumed) {
      Problem("stream_offset() did not advance by the preface");
    }
    CheckCompletes(step.consumed);
    StepRecord s;
    s.kind = StepRecord::Kind::kPreface;
    s.offset = offset_before;
    s.consumed = step.consumed;
    s.wire_version = step.wire_version;
    result_.steps.push_back(std::move(s));
  }

  // The frame starts at `at`, followed by `avail` buffered bytes.
  void RecordFrame(const DecodeStep& step, bool in_preface,
                   uint64_t offset_before, const std::byte* at, size_t avail,
                   bool check_offset) {
    const FrameView& f = step.frame;
    if (in_preface) Problem("kFrame before the preface");
    if (step.consumed > avail) {
      Problem(absl::StrCat("consumed ", step.consumed, " > buffered ", avail));
      failed_ = true;
      return;
    }
    CheckCompletes(step.consumed);
    if (check_offset &&
        decoder_.stream_offset() != offset_before + step.consumed) {
      Problem("stream_offset() did not advance by consumed");
    }
    if (f.bytes().data() != at) {
      Problem("frame.bytes() does not start at the input");
    }
    if (f.size() != step.consumed || f.bytes().size() != step.consumed) {
      Problem(absl::StrCat("frame size ", f.size(), "/", f.bytes().size(),
                           " != consumed ", step.consumed));
    }
    const size_t trailer_size =
        f.has_payload_checksum() ? kPayloadChecksumSize : 0;
    if (f.header_size() < kMinHeaderSize ||
        f.header_size() > options_.max_header_bytes) {
      Problem(absl::StrCat("header_size ", f.header_size(), " out of range"));
    }
    if (f.header_size() + f.payload().size() + trailer_size != step.consumed) {
      Problem(absl::StrCat("header ", f.header_size(), " + payload ",
                           f.payload().size(), " + trailer ", trailer_size,
                           " != consumed ", step.consumed));
      failed_ = true;  // the copies below would read out of bounds
      return;
    }
    if (f.payload().data() != at + f.header_size()) {
      Problem("payload() does not follow the header in the input");
    }
    if (f.payload().size() > options_.max_payload_bytes) {
      Problem("payload larger than max_payload_bytes was accepted");
    }
    if (f.header() !=
        FrameHeader{f.type(), f.flags(), f.stream_id(), f.sequence()}) {
      Problem("header() disagrees with the field accessors");
    }
    if (f.is_final() != ((f.flags() & kFlagFinal) != 0)) {
      Problem("is_final() disagrees with flags()");
    }

    StepRecord s;
    s.kind = StepRecord::Kind::kFrame;
    s.offset = offset_before;
    s.consumed = step.consumed;
    s.header = f.header();
    s.header_size = f.header_size();
    const std::byte* base = at;
    s.header_bytes.assign(base, base + f.header_size());
    s.payload.assign(f.payload().begin(), f.payload().end());
    s.trailer.assign(base + f.header_size() + f.payload().size(),
                     base + step.consumed);
    s.deadline_us = f.deadline_us();
    s.trace_parent = f.trace_parent();
    s.trace_state = std::string(f.trace_state());
    s.method = std::string(f.method());
    s.extension_count = f.extension_count();
    s.metadata_count = f.metadata_count();

    // The raw TLVs, and the typed accessors checked against them.
    const std::byte* ext_lo = base;
    const std::byte* ext_hi = base + f.header_size() - kHeaderCrcSize;
    std::optional<uint64_t> raw_deadline;
    std::optional<TraceParent> raw_trace_parent;
    std::string raw_trace_state;
    std::string raw_method;
    uint32_t metadata = 0;
    for (const RawExtension& e : f.extensions()) {
      if (e.value.data() < ext_lo || e.value.data() + e.value.size() > ext_hi) {
        Problem(absl::StrCat("extension ", e.type,
                             " value lies outside the header"));
        failed_ = true;
        return;
      }
      s.extensions.push_back(
          ExtensionRecord{e.type, {e.value.begin(), e.value.end()}});
      if (e.type == kExtDeadline) {
        auto v = DecodeVarint(e.value);
        if (v.ok() && v->complete && v->size == e.value.size()) {
          raw_deadline = v->value;
        } else {
          Problem("accepted DEADLINE value is not one varint");
        }
      } else if (e.type == kExtTraceParent && e.value.size() == 26) {
        raw_trace_parent = ParseTraceParentValue(e.value);
      } else if (e.type == kExtTraceState) {
        raw_trace_state.assign(reinterpret_cast<const char*>(e.value.data()),
                               e.value.size());
      } else if (e.type == kExtMethod) {
        raw_method.assign(reinterpret_cast<const char*>(e.value.data()),
                          e.value.size());
      } else if (e.type == kExtMetadata) {
        ++metadata;
        const MetadataEntry m = ParseMetadataValue(e.value);
        s.metadata.emplace_back(std::string(m.key), std::string(m.value));
      }
    }
    if (s.extensions.size() != f.extension_count()) {
      Problem(absl::StrCat("extension_count() ", f.extension_count(),
                           " but extensions() yields ", s.extensions.size()));
    }
    if (metadata != f.metadata_count()) {
      Problem(absl::StrCat("metadata_count() ", f.metadata_count(),
                           " but extensions() yields ", metadata));
    }
    // metadata() yields exactly the METADATA TLVs, split, in wire order.
    {
      size_t i = 0;
      for (const MetadataEntry& m : f.metadata()) {
        if (i >= s.metadata.size() || m.key != s.metadata[i].first ||
            m.value != s.metadata[i].second) {
          Problem(absl::StrCat("metadata() entry ", i,
                               " disagrees with the METADATA TLVs"));
          break;
        }
        ++i;
      }
      if (i != s.metadata.size()) {
        Problem(absl::StrCat("metadata() yields ", i, " entries, the TLVs ",
                             s.metadata.size()));
      }
      if (f.metadata().empty() != s.metadata.empty()) {
        Problem("metadata().empty() disagrees with the METADATA TLVs");
      }
    }
    if (raw_deadline != s.deadline_us) {
      Problem("deadline_us() disagrees with the DEADLINE TLV");
    }
    if (raw_trace_parent != s.trace_parent) {
      Problem("trace_parent() disagrees with the TRACEPARENT TLV");
    }
    if (raw_trace_state != s.trace_state) {
      Problem("trace_state() disagrees with the TRACESTATE TLV");
    }
    if (raw_method != s.method) {
      Problem("method() disagrees with the METHOD TLV");
    }
    result_.steps.push_back(std::move(s));
  }

  void RecordError(const absl::Status& status, uint64_t offset_before) {
    failed_ = true;
    StepRecord s;
    s.kind = StepRecord::Kind::kError;
    s.status_code = status.code();
    s.error = GetErrorCode(status);
    s.message = std::string(status.message());
    if (s.error == ErrorCode::kOk) {
      Problem(absl::StrCat("error without a symwire ErrorCode: ",
                           status.ToString()));
    } else {
      if (CanonicalCode(s.error) != status.code()) {
        Problem(absl::StrCat("error ", ErrorCodeName(s.error), " has code ",
                             absl::StatusCodeToString(status.code())));
      }
      if (!IsFatal(s.error)) {
        Problem(absl::StrCat("decoder returned non-fatal ",
                             ErrorCodeName(s.error)));
      }
    }
    const std::optional<uint64_t> at = OffsetInMessage(s.message);
    if (!at) {
      Problem(absl::StrCat("error message names no offset: ", s.message));
    } else {
      s.offset = *at;
      // The offending field's first byte was given to the decoder. (An
      // empty TLV value is named at the position where it would start,
      // which is at most the end of the header, still inside the input.)
      if (*at < offset_before || *at >= offset_before + buffer_.size()) {
        Problem(absl::StrCat("error offset ", *at,
                             " is outside the input given, [", offset_before,
                             ", ", offset_before + buffer_.size(), ")"));
      }
    }
    if (decoder_.status() != status) {
      Problem("status() is not the returned error");
    }
    // Sticky: the same status again, whatever the input.
    const absl::StatusOr<DecodeStep> again =
        decoder_.Decode(absl::Span<const std::byte>(buffer_));
    const absl::StatusOr<DecodeStep> empty =
        decoder_.Decode(absl::Span<const std::byte>());
    if (again.status() != status || empty.status() != status) {
      Problem("the error is not sticky");
    }
    result_.steps.push_back(std::move(s));
  }

  FrameDecoder decoder_;
  DecoderOptions options_;
  std::vector<FrameView> views_;   // DecodeBatch's output; empty: Decode
  std::vector<std::byte> buffer_;  // received, not yet consumed
  FeedResult result_;
  bool failed_ = false;
  size_t last_hint_ = 0;  // last bytes_needed of the pending element
  size_t max_hint_ = 0;
};

// FeedChunks
// Feeds `input` in chunks whose sizes `next_chunk(remaining)` returns (each
// in 1..remaining).
inline FeedResult FeedChunks(absl::Span<const std::byte> input,
                             const DecoderOptions& options,
                             const std::function<size_t(size_t)>& next_chunk,
                             size_t batch = 0) {
  FeedDriver driver(options, batch);
  size_t pos = 0;
  while (pos < input.size() && !driver.failed()) {
    const size_t n = std::clamp<size_t>(next_chunk(input.size() - pos), 1,
                                        input.size() - pos);
    driver.Push(input.subspan(pos, n));
    pos += n;
  }
  if (input.empty()) driver.Push(input);  // one call on empty input
  return std::move(driver).Finish();
}

// FeedWhole: the whole input in one call. (`batch`: see FeedDriver.)
inline FeedResult FeedWhole(absl::Span<const std::byte> input,
                            const DecoderOptions& options = {},
                            size_t batch = 0) {
  return FeedChunks(
      input, options, [](size_t remaining) { return remaining; }, batch);
}

// FeedBytewise: the buffer grows one byte at a time.
inline FeedResult FeedBytewise(absl::Span<const std::byte> input,
                               const DecoderOptions& options = {},
                               size_t batch = 0) {
  return FeedChunks(
      input, options, [](size_t) { return size_t{1}; }, batch);
}

// FeedSplit: two parts, [0, split) and [split, size). split may be 0.
inline FeedResult FeedSplit(absl::Span<const std::byte> input, size_t split,
                            const DecoderOptions& options = {},
                            size_t batch = 0) {
  FeedDriver driver(options, batch);
  driver.Push(input.first(std::min(split, input.size())));
  driver.Push(input.subspan(std::min(split, input.size())));
  return std::move(driver).Finish();
}

// FeedRandomSplits: chunk sizes drawn from a seeded mix of tiny, small,
// medium and large sizes (and now and then the whole remainder).
inline FeedResult FeedRandomSplits(absl::Span<const std::byte> input,
                                   uint64_t seed,
                                   const DecoderOptions& options = {}) {
  std::mt19937_64 rng(seed);
  auto next = [&rng](size_t remaining) -> size_t {
    const auto pick = [&rng](size_t lo, size_t hi) {
      return std::uniform_int_distribution<size_t>(lo, hi)(rng);
    };
    switch (pick(0, 9)) {
      case 0:
        return remaining;
      case 1:
      case 2:
      case 3:
        return pick(1, 3);
      case 4:
      case 5:
        return pick(1, 64);
      case 6:
      case 7:
        return pick(1, 4096);
      default:
        return pick(1, 96 * 1024);
    }
  };
  return FeedChunks(input, options, next);
}

// TestSeed
// The seed of a randomized test: SYMWIRE_TEST_SEED from the environment if
// set (decimal or 0x-hex), else `default_seed`.
inline uint64_t TestSeed(uint64_t default_seed) {
  if (const char* env = std::getenv("SYMWIRE_TEST_SEED");
      env != nullptr && *env != '\0') {
    return std::strtoull(env, nullptr, 0);
  }
  return default_seed;
}

// AllWaysOptions
// Which feeding modes DecodeAllWays runs.
struct AllWaysOptions {
  bool bytewise = true;
  // Split at every point only for inputs up to this size (quadratic).
  size_t every_split_limit = 1024;
  int random_runs = 3;
  uint64_t seed = 1;
  // Also decode with DecodeBatch (whole, byte by byte, every split point).
  bool batch = true;
};

// DecodeAllWays
// Decodes `input` whole, byte by byte, split in two at every split point
// (small inputs) and at random split points, and whole and byte by byte
// with DecoderOptions::use_fast_path flipped; REQUIREs that no feeding mode
// saw a contract violation and that all produced the whole-input
// transcript, which it returns.
inline Transcript DecodeAllWays(absl::Span<const std::byte> input,
                                const DecoderOptions& options = {},
                                const AllWaysOptions& ways = {}) {
  auto require_clean = [](const std::string& mode, const FeedResult& r) {
    if (!r.problems.empty()) {
      std::string all;
      for (const std::string& p : r.problems) absl::StrAppend(&all, "\n  ", p);
      FAIL(mode << ": decoder contract violated:" << all << "\ntranscript:\n"
                << ToString(r.steps));
    }
  };
  FeedResult whole = FeedWhole(input, options);
  require_clean("whole", whole);
  auto require_same = [&](const std::string& mode, const FeedResult& r) {
    require_clean(mode, r);
    const std::string diff = DiffTranscripts(whole.steps, r.steps);
    if (!diff.empty()) {
      FAIL(mode << " differs from whole-input decoding: " << diff
                << "\nwhole transcript:\n"
                << ToString(whole.steps) << mode << " transcript:\n"
                << ToString(r.steps));
    }
  };
  // The inline fast path and the general path must agree on every input.
  {
    DecoderOptions general = options;
    general.use_fast_path = !options.use_fast_path;
    require_same(
        general.use_fast_path ? "whole, fast path on" : "whole, fast path off",
        FeedWhole(input, general));
    require_same("byte-by-byte, other path", FeedBytewise(input, general));
  }
  if (ways.bytewise) require_same("byte-by-byte", FeedBytewise(input, options));
  if (input.size() <= ways.every_split_limit) {
    for (size_t split = 0; split <= input.size(); ++split) {
      require_same(absl::StrCat("split at ", split),
                   FeedSplit(input, split, options));
    }
  }
  // DecodeBatch must yield the single-step transcript: whole (arrays of 1,
  // 2 and 64 views), byte by byte, and at every split point.
  if (ways.batch) {
    for (const size_t batch : {size_t{1}, size_t{2}, size_t{64}}) {
      require_same(absl::StrCat("whole, batches of ", batch),
                   FeedWhole(input, options, batch));
    }
    require_same("byte-by-byte, batches of 64",
                 FeedBytewise(input, options, 64));
    if (input.size() <= ways.every_split_limit) {
      for (size_t split = 0; split <= input.size(); ++split) {
        require_same(absl::StrCat("split at ", split, ", batches of 64"),
                     FeedSplit(input, split, options, 64));
      }
    }
  }
  for (int run = 0; run < ways.random_runs; ++run) {
    const uint64_t seed = ways.seed + static_cast<uint64_t>(run);
    require_same(absl::StrCat("random splits, seed ", seed),
                 FeedRandomSplits(input, seed, options));
  }
  return std::move(whole.steps);
}

}  // namespace symwire::testing

#endif  // SYMWIRE_TESTS_SUPPORT_FEED_HPP_
