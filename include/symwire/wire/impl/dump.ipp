// File: symwire/wire/impl/dump.ipp
// Out-of-line bodies of dump.hpp.
#ifndef SYMWIRE_WIRE_IMPL_DUMP_IPP_
#define SYMWIRE_WIRE_IMPL_DUMP_IPP_

#include <algorithm>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "symwire/wire/dump.hpp"

namespace symwire {
namespace detail {

inline void AppendBytes(std::string& out, absl::Span<const std::byte> bytes,
                        size_t max_bytes) {
  const size_t shown = std::min(bytes.size(), max_bytes);
  const absl::string_view text(reinterpret_cast<const char*>(bytes.data()),
                               shown);
  const bool printable = std::all_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u >= 0x20 && u < 0x7F) || c == '\n' || c == '\t' || c == '\r';
  });
  if (printable) {
    absl::StrAppend(&out, "\"", absl::CHexEscape(text), "\"");
  } else {
    absl::StrAppend(&out, "0x", absl::BytesToHexString(text));
  }
  if (shown < bytes.size()) out += "...";
}

}  // namespace detail

SYMWIRE_DECL std::string FormatFlags(uint8_t flags) {
  if (flags == 0) return "0";
  std::string out;
  auto add = [&out](absl::string_view name) {
    if (!out.empty()) out += '|';
    absl::StrAppend(&out, name);
  };
  if ((flags & kFlagFinal) != 0) add("FINAL");
  if ((flags & kFlagChecksum) != 0) add("CHECKSUM");
  const unsigned rest = flags & kFlagsReserved;
  if (rest != 0) add(absl::StrCat("0x", absl::Hex(rest, absl::kZeroPad2)));
  return out;
}

SYMWIRE_DECL std::string FormatFrame(const FrameView& frame,
                                     size_t max_payload_bytes) {
  std::string out = absl::StrCat(
      MessageTypeName(frame.type()), " stream=", frame.stream_id(),
      " seq=", frame.sequence(), " flags=", FormatFlags(frame.flags()),
      " len=", frame.payload().size());
  if (!frame.payload().empty()) {
    out += ' ';
    detail::AppendBytes(out, frame.payload(), max_payload_bytes);
  }
  if (auto deadline = frame.deadline_us()) {
    absl::StrAppend(&out, " deadline_us=", *deadline);
  }
  if (!frame.method().empty()) {
    absl::StrAppend(&out, " method=\"", absl::CHexEscape(frame.method()), "\"");
  }
  if (auto tp = frame.trace_parent()) {
    auto hex = [](absl::Span<const std::byte> b) {
      return absl::BytesToHexString(
          absl::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    };
    absl::StrAppend(&out,
                    " traceparent=", absl::Hex(tp->version, absl::kZeroPad2),
                    "-", hex(tp->trace_id), "-", hex(tp->parent_id), "-",
                    absl::Hex(tp->trace_flags, absl::kZeroPad2));
  }
  if (!frame.trace_state().empty()) {
    absl::StrAppend(&out, " tracestate=\"",
                    absl::CHexEscape(frame.trace_state()), "\"");
  }
  bool meta_open = false;
  for (const MetadataEntry& m : frame.metadata()) {
    absl::StrAppend(&out, meta_open ? " " : " meta{", absl::CHexEscape(m.key),
                    "=\"", absl::CHexEscape(m.value), "\"");
    meta_open = true;
  }
  std::string unknown;
  for (const RawExtension& ext : frame.extensions()) {
    if (!IsKnownExtension(ext.type)) {
      absl::StrAppend(&unknown, unknown.empty() ? " ext{" : " ", ext.type, ":");
      detail::AppendBytes(unknown, ext.value, 16);
    }
  }
  if (meta_open) out += '}';
  if (!unknown.empty()) absl::StrAppend(&out, unknown, "}");
  return out;
}

}  // namespace symwire

#endif  // SYMWIRE_WIRE_IMPL_DUMP_IPP_
