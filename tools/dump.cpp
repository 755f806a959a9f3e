// File: tools/dump.cpp
// symwire-dump: decodes symwire byte streams (SPEC.md §1-§9, and the control
// payloads of §11) from a binary file, hex text or a pcap capture, and prints
// one line per preface, frame, error and resynchronisation, as readable text
// or as JSON lines. Layer 4: public headers only.
//
// Usage:
//   symwire-dump [--hex | --pcap [--port N] [--reorder-bytes N]] [--json]
//                [--payload-bytes N] [--no-preface] [--max-header-bytes N]
//                [--max-payload-bytes N] [--quiet] [FILE | -]
//
// Input (FILE, or standard input when FILE is "-" or absent):
//   default  the raw bytes of one direction of a connection;
//   --hex    the same as hex text: whitespace is ignored, and so is
//            everything from '#' to the end of a line (so the hex blocks of
//            tests/vectors/*.md can be pasted as they are);
//   --pcap   a classic libpcap capture (not pcapng; both byte orders,
//            microsecond or nanosecond timestamps) with link type Ethernet
//            (1, VLAN tags skipped), Linux cooked SLL (113) or SLL2 (276),
//            BSD loopback/null (0, 108) or raw IP (101, 12, 228, 229);
//            IPv4 and IPv6; TCP. Each TCP connection's two directions are
//            reassembled in sequence order (the SYN sets the initial
//            sequence; retransmitted and duplicate bytes are dropped,
//            out-of-order segments wait in a buffer of --reorder-bytes,
//            default 4 MiB, beyond which the missing bytes count as a gap),
//            and each direction is decoded as a stream of its own; lines
//            start with the direction ("127.0.0.1:40000 -> 127.0.0.1:7000").
//            --port N keeps the connections with N as either port (none:
//            exit 2, naming the ports the capture holds). A
//            direction whose capture starts after its SYN has no known
//            start: it is decoded without a preface from the first header
//            found.
//
// Output: per stream, the preface, then a line per frame with its offset in
// the stream, type, stream id, sequence, flags, payload length, payload
// (printable text quoted, other bytes in hex, at most --payload-bytes bytes,
// default 32), extensions, and for AGENT_INIT, AGENT_SYNC, AGENT_ERROR and
// AGENT_CANCEL the fields of the parameter list (session/control.hpp). The
// secrets of AGENT_INIT (auth_data, resume_token, resume_proof) are shown by
// length only.
// --json prints the same as one JSON object per line ("kind": capture,
// stream, preface, frame, error, resync, truncated, summary). A summary line
// (frames per type, errors, bytes) ends the output unless --quiet.
//
// Errors: every decoder or payload error is printed with its ErrorCode name
// and its absolute offset in the stream. After a framing error the tool
// resynchronises as SPEC.md §7.2 (informative) describes: if the damaged
// frame's header CRC matched (the error lies after the header CRC check) and
// its flags are known, its length is trusted and decoding goes on after it
// when a valid header follows; otherwise it scans forward byte by byte for
// the next position where a complete header has a matching CRC32C. A stream
// that ends inside a frame is reported as "truncated", not as an error
// (SPEC.md §7.1).
//
// The decoder limits default to SPEC.md §8's (--max-header-bytes 4096,
// --max-payload-bytes 16 MiB); a capture of peers that announced larger
// limits needs the same here.
//
// Exit status: 0 if everything decoded cleanly, 1 if any error was reported,
// 2 on a usage error (tools/cli/args.hpp; --help lists the flags and their
// defaults) or an input that cannot be read as the requested format (a pcap
// file given without --pcap is refused with "use --pcap").
#include "symwire/wire/dump.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "cli/args.hpp"
#include "symwire/error.hpp"
#include "symwire/session/control.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"
#include "symwire/wire/scan.hpp"

namespace {

using Bytes = absl::Span<const std::byte>;

// ---- options ----------------------------------------------------------------

enum class InputFormat : uint8_t { kBinary, kHex, kPcap };

struct Options {
  InputFormat format = InputFormat::kBinary;
  std::string path = "-";
  bool json = false;
  bool quiet = false;
  bool preface = true;
  std::optional<uint16_t> port;
  size_t payload_bytes = 32;
  size_t reorder_bytes = size_t{4} << 20;
  uint32_t max_header_bytes = symwire::kDefaultMaxHeaderSize;
  uint64_t max_payload_bytes = symwire::kDefaultMaxPayloadSize;
};

// ParseArgs: the command line into `o`; exits 0 after --help and 2 on a
// usage error (tools/cli/args.hpp).
void ParseArgs(int argc, char** argv, Options& o) {
  symwire_cli::Args args(
      "symwire-dump",
      "[--hex | --pcap [--port N] [--reorder-bytes N]] [--json] [flags] "
      "[FILE | -]",
      "Decodes a symwire byte stream (raw bytes, hex text or a pcap capture)\n"
      "into one line per frame, error and resynchronisation.");
  bool hex = false;
  bool pcap = false;
  uint16_t port = 0;
  args.Positional("FILE", &o.path, "the input; \"-\" is standard input")
      .Switch("--hex", &hex,
              "the input is hex text ('#' to the end of a line is a comment)")
      .Switch("--pcap", &pcap,
              "the input is a classic pcap capture (TCP, both directions)")
      .Int<uint16_t>("--port", &port, "N",
                     "--pcap: keep the connections with N as either port", 1,
                     65535)
      .Default("all ports")
      .Int<size_t>("--reorder-bytes", &o.reorder_bytes, "N",
                   "--pcap: out-of-order bytes buffered per direction before "
                   "they count as a gap",
                   0, size_t{1} << 32)
      .Default("4194304 (4 MiB)")
      .Switch("--json", &o.json, "one JSON object per line")
      .Int<size_t>("--payload-bytes", &o.payload_bytes, "N",
                   "payload bytes shown per frame", 0, size_t{1} << 30)
      .Switch("--no-preface", &o.preface,
              "the stream starts with a frame, not the 8-byte preface", false)
      .Int<uint32_t>("--max-header-bytes", &o.max_header_bytes, "N",
                     "the decoder's header size limit",
                     static_cast<uint32_t>(symwire::kMinHeaderSize),
                     static_cast<uint32_t>(symwire::kMaxHeaderSizeLimit))
      .Int<uint64_t>("--max-payload-bytes", &o.max_payload_bytes, "N",
                     "the decoder's payload size limit", 0,
                     symwire::kMaxPayloadSizeLimit)
      .Switch("--quiet", &o.quiet, "no summary line at the end")
      .Epilogue(
          "Exit status: 0 clean, 1 errors reported, 2 usage or unreadable "
          "input.");
  args.Parse(argc, argv);
  if (hex && pcap) args.Fail("--hex and --pcap exclude each other");
  if (hex) o.format = InputFormat::kHex;
  if (pcap) o.format = InputFormat::kPcap;
  if (args.Seen("--port")) {
    if (!pcap) args.Fail("--port needs --pcap");
    o.port = port;
  }
}

// ---- rendering helpers -----------------------------------------------------

absl::string_view AsText(Bytes b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string Hex(Bytes b) { return absl::BytesToHexString(AsText(b)); }

// A JSON string literal for `s`. Valid UTF-8 passes through; a byte that is
// not part of a valid UTF-8 sequence becomes the code point of the same
// value (\u00XX), so the output is always valid JSON (and valid UTF-8).
std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // The length of a well-formed UTF-8 sequence starting here, or 0.
    size_t n = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      cp = c & 0x07u;
    }
    bool valid = n != 0 && i + n <= s.size();
    for (size_t k = 1; valid && k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      valid = (cc & 0xC0u) == 0x80u;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    // Reject overlong forms, surrogates and values above U+10FFFF.
    if (valid && ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
                  (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)) {
      valid = false;
    }
    if (valid) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
      ++i;
    }
  }
  out += '"';
  return out;
}

// Line
// One output line, built once for both renderings: text parts joined by
// spaces, and JSON members joined into one object.
class Line {
 public:
  // Text only.
  Line& T(std::string text) {
    if (!text.empty()) text_.push_back(std::move(text));
    return *this;
  }
  // JSON only; `json` is an already encoded JSON value.
  Line& J(absl::string_view key, absl::string_view json) {
    json_.push_back(absl::StrCat(JsonString(key), ":", json));
    return *this;
  }
  Line& Num(absl::string_view key, uint64_t v) {
    T(absl::StrCat(key, "=", v));
    return J(key, absl::StrCat(v));
  }
  // A string value: quoted and C-escaped in text.
  Line& Str(absl::string_view key, absl::string_view v) {
    T(absl::StrCat(key, "=\"", absl::CHexEscape(v), "\""));
    return J(key, JsonString(v));
  }
  // A word (a name): bare in text, a string in JSON.
  Line& Word(absl::string_view key, absl::string_view v) {
    T(absl::StrCat(key, "=", v));
    return J(key, JsonString(v));
  }
  // A flag parameter: its name in text when set, a boolean in JSON.
  Line& Flag(absl::string_view key, bool v) {
    if (v) T(std::string(key));
    return J(key, v ? "true" : "false");
  }
  // A nested group: "key{...}" in text, a nested object in JSON.
  Line& Sub(absl::string_view key, const Line& sub) {
    T(absl::StrCat(key, "{", sub.Text(), "}"));
    return J(key, sub.Json());
  }
  std::string Text() const {
    std::string out;
    for (const std::string& part : text_) {
      if (!out.empty()) out += ' ';
      out += part;
    }
    return out;
  }
  std::string Json() const {
    std::string out = "{";
    for (const std::string& member : json_) {
      if (out.size() > 1) out += ',';
      out += member;
    }
    out += '}';
    return out;
  }

 private:
  std::vector<std::string> text_;
  std::vector<std::string> json_;
};

// True if every byte is printable ASCII or \t \n \r (FormatFrame's rule).
bool IsPrintable(Bytes b) {
  return std::all_of(b.begin(), b.end(), [](std::byte x) {
    const auto u = static_cast<unsigned>(x);
    return (u >= 0x20 && u < 0x7F) || u == '\n' || u == '\t' || u == '\r';
  });
}

// Adds a payload or value of `b` shown up to `max` bytes: quoted text when
// printable, hex otherwise, "..." (JSON: "<key>_truncated") when cut.
void AddBytes(Line& line, absl::string_view key, Bytes b, size_t max,
              bool text_key) {
  const Bytes shown = b.first(std::min(b.size(), max));
  const bool cut = shown.size() < b.size();
  const std::string more = cut ? "..." : "";
  const std::string prefix = text_key ? absl::StrCat(key, "=") : "";
  if (IsPrintable(shown)) {
    line.T(absl::StrCat(prefix, "\"", absl::CHexEscape(AsText(shown)), "\"",
                        more));
    line.J(key, JsonString(AsText(shown)));
  } else {
    line.T(absl::StrCat(prefix, "0x", Hex(shown), more));
    line.J(absl::StrCat(key, "_hex"), JsonString(Hex(shown)));
  }
  if (cut) line.J(absl::StrCat(key, "_truncated"), "true");
}

// ---- control payloads (SPEC.md §11) ----------------------------------------

absl::string_view AuthMethodName(symwire::AuthMethod m) {
  switch (m) {
    case symwire::AuthMethod::kNone:
      return "none";
    case symwire::AuthMethod::kToken:
      return "token";
    case symwire::AuthMethod::kHmacSha256:
      return "hmac-sha256";
  }
  return "";
}

void AddInitFields(const symwire::InitMessage& m, Line& f) {
  using symwire::InitPhase;
  f.Word("phase", symwire::InitPhaseName(m.phase));
  const bool hello = m.phase == InitPhase::kHello;
  const bool welcome = m.phase == InitPhase::kWelcome;
  if (hello) {
    f.T(absl::StrCat("versions=", m.min_version, "..", m.max_version));
    f.J("min_version", absl::StrCat(m.min_version));
    f.J("max_version", absl::StrCat(m.max_version));
  }
  if (welcome) f.Num("version", m.version);
  if (hello || welcome) {
    f.Str("agent_id", m.agent_id);
    f.Word("role", symwire::AgentRoleName(m.role));
    f.Num("capabilities", m.capabilities);
    f.Num("max_payload_bytes", m.max_payload_bytes);
    f.Num("max_header_bytes", m.max_header_bytes);
    f.Num("max_tasks", m.max_tasks);
    f.Num("replay_bytes", m.replay_bytes);
    f.Num("replay_frames", m.replay_frames);
    f.Num("ping_interval_us", m.ping_interval_us);
    f.Num("min_ping_interval_us", m.min_ping_interval_us);
  }
  if (hello) {
    const absl::string_view name = AuthMethodName(m.auth_method);
    if (name.empty()) {
      f.Num("auth_method", static_cast<uint64_t>(m.auth_method));
    } else {
      f.Word("auth_method", name);
    }
  }
  // auth_data (a token or an HMAC) is a credential: its length only.
  if (!m.auth_data.empty()) f.Num("auth_data_len", m.auth_data.size());
  if (m.phase != InitPhase::kProof) {
    f.Word("nonce", Hex(m.nonce));
  }
  if (m.session_id) f.Word("session_id", Hex(*m.session_id));
  // The resume token proves ownership of the session (SPEC.md §16.2).
  if (m.resume_token) f.Num("resume_token_len", m.resume_token->size());
  if (m.last_received) f.Num("last_received", *m.last_received);
  if (welcome) {
    f.Flag("resumed", m.resumed);
    f.Num("resume_window_us", m.resume_window_us);
  }
  // The proof of the resume token (SPEC.md §16.2), a credential like
  // auth_data: its length only.
  if (m.resume_proof) f.Num("resume_proof_len", m.resume_proof->size());
}

void AddSyncFields(const symwire::SyncMessage& m, Line& f) {
  if (m.ack) f.Num("ack", *m.ack);
  if (m.ping) f.Num("ping", *m.ping);
  if (m.pong) f.Num("pong", *m.pong);
  if (m.drain) f.Num("drain", *m.drain);
  if (m.bye) f.Flag("bye", true);
  if (m.empty()) f.T("empty");
}

void AddErrorFields(const symwire::ErrorMessage& m, Line& f) {
  f.Word("code", absl::StatusCodeToString(m.code));
  if (!m.message.empty()) f.Str("message", m.message);
  if (m.retryable) f.Flag("retryable", true);
  if (m.detail != symwire::ErrorCode::kOk) {
    f.Word("detail", symwire::ErrorCodeName(m.detail));
    f.J("detail_code", absl::StrCat(static_cast<unsigned>(m.detail)));
  }
}

// Parses the control payload of `frame` into `f`; returns the parse error
// (OK for frames without a parameter list).
absl::Status AddControlFields(const symwire::FrameView& frame, Line& f) {
  using symwire::MessageType;
  const Bytes payload = frame.payload();
  switch (frame.type()) {
    case MessageType::kAgentInit: {
      auto m = symwire::ParseInit(payload);
      if (!m.ok()) return m.status();
      AddInitFields(*m, f);
      return absl::OkStatus();
    }
    case MessageType::kAgentSync: {
      auto m = symwire::ParseSync(payload);
      if (!m.ok()) return m.status();
      AddSyncFields(*m, f);
      return absl::OkStatus();
    }
    case MessageType::kAgentError: {
      auto m = symwire::ParseError(payload);
      if (!m.ok()) return m.status();
      AddErrorFields(*m, f);
      return absl::OkStatus();
    }
    case MessageType::kAgentCancel: {
      auto m = symwire::ParseCancel(payload);
      if (!m.ok()) return m.status();
      f.Word("reason", absl::StatusCodeToString(m->reason));
      return absl::OkStatus();
    }
    case MessageType::kAgentTask:
    case MessageType::kAgentResponse:
      break;
  }
  return absl::OkStatus();
}

bool IsControl(symwire::MessageType t) {
  return t == symwire::MessageType::kAgentInit ||
         t == symwire::MessageType::kAgentSync ||
         t == symwire::MessageType::kAgentError ||
         t == symwire::MessageType::kAgentCancel;
}

void AddExtensions(const symwire::FrameView& frame, size_t max_bytes,
                   Line& line) {
  if (frame.extension_count() == 0) return;
  Line ext;
  if (auto deadline = frame.deadline_us()) ext.Num("deadline_us", *deadline);
  if (!frame.method().empty()) ext.Str("method", frame.method());
  if (auto tp = frame.trace_parent()) {
    ext.Word("traceparent",
             absl::StrCat(absl::Hex(tp->version, absl::kZeroPad2), "-",
                          Hex(tp->trace_id), "-", Hex(tp->parent_id), "-",
                          absl::Hex(tp->trace_flags, absl::kZeroPad2)));
  }
  if (!frame.trace_state().empty()) {
    ext.Str("tracestate", frame.trace_state());
  }
  std::vector<std::string> meta_text;
  std::vector<std::string> meta_json;
  std::vector<std::string> other_text;
  std::vector<std::string> other_json;
  for (const symwire::MetadataEntry& m : frame.metadata()) {
    meta_text.push_back(absl::StrCat(absl::CHexEscape(m.key), "=\"",
                                     absl::CHexEscape(m.value), "\""));
    meta_json.push_back(absl::StrCat("{\"key\":", JsonString(m.key),
                                     ",\"value\":", JsonString(m.value), "}"));
  }
  for (const symwire::RawExtension& e : frame.extensions()) {
    if (!symwire::IsKnownExtension(e.type)) {
      Line one;
      one.J("type", absl::StrCat(e.type));
      AddBytes(one, "value", e.value, max_bytes, false);
      other_text.push_back(absl::StrCat(e.type, ":", one.Text()));
      other_json.push_back(one.Json());
    }
  }
  auto join = [](const std::vector<std::string>& v, absl::string_view sep) {
    std::string out;
    for (const std::string& s : v) {
      if (!out.empty()) absl::StrAppend(&out, sep);
      out += s;
    }
    return out;
  };
  if (!meta_text.empty()) {
    ext.T(absl::StrCat("meta{", join(meta_text, " "), "}"));
    ext.J("metadata", absl::StrCat("[", join(meta_json, ","), "]"));
  }
  if (!other_text.empty()) {
    ext.T(absl::StrCat("ext{", join(other_text, " "), "}"));
    ext.J("unknown", absl::StrCat("[", join(other_json, ","), "]"));
  }
  // Text: the extensions follow the frame fields directly, as in
  // FormatFrame; JSON: one "ext" object.
  line.T(ext.Text());
  line.J("ext", ext.Json());
}

// ---- streams and statistics ------------------------------------------------

// Chunk: a contiguous run of a stream's bytes starting at `offset`. A stream
// reassembled from a capture with missing segments has several.
struct Chunk {
  uint64_t offset = 0;
  std::vector<std::byte> bytes;
};

// StreamInput: one direction of a connection, or the whole input.
struct StreamInput {
  std::string label;  // "" outside pcap mode
  std::vector<Chunk> chunks;
  bool known_start = true;  // false: the capture missed the SYN
  // Reassembly counters (pcap mode).
  uint64_t segments = 0;
  uint64_t duplicates = 0;
  uint64_t out_of_order = 0;
  bool syn = false;
  bool fin = false;
  bool rst = false;
};

struct Stats {
  uint64_t streams = 0;
  uint64_t bytes = 0;
  std::array<uint64_t, symwire::kMaxMessageType + 1> frames{};
  uint64_t errors = 0;
  uint64_t skipped = 0;
  uint64_t resyncs = 0;
  uint64_t truncated = 0;
  uint64_t gaps = 0;
};

class Printer {
 public:
  explicit Printer(bool json) : json_(json) {}
  void Print(const Line& line) {
    const std::string s = json_ ? line.Json() : line.Text();
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fputc('\n', stdout);
  }
  bool json() const { return json_; }

 private:
  bool json_;
};

// If `message` ends with "<marker><number>", returns the number and sets
// `head` to what precedes the marker.
std::optional<uint64_t> TrailingOffset(absl::string_view message,
                                       absl::string_view marker,
                                       absl::string_view& head) {
  const size_t at = message.rfind(marker);
  if (at == absl::string_view::npos) return std::nullopt;
  uint64_t n = 0;
  if (!absl::SimpleAtoi(message.substr(at + marker.size()), &n)) {
    return std::nullopt;
  }
  head = message.substr(0, at);
  return n;
}

// ---- stream decoding -------------------------------------------------------

class StreamDumper {
 public:
  StreamDumper(const Options& options, Printer& printer, Stats& stats,
               const StreamInput& input)
      : options_(options), printer_(printer), stats_(stats), input_(input) {}

  void Run() {
    ++stats_.streams;
    if (!input_.label.empty()) PrintStreamLine();
    for (size_t i = 0; i < input_.chunks.size(); ++i) {
      const Chunk& chunk = input_.chunks[i];
      stats_.bytes += chunk.bytes.size();
      // Bytes the capture lacks: before the first chunk of a stream whose
      // start is known, and between chunks.
      const uint64_t end = i == 0 ? 0
                                  : input_.chunks[i - 1].offset +
                                        input_.chunks[i - 1].bytes.size();
      if (chunk.offset > end && (i > 0 || input_.known_start)) {
        ++stats_.gaps;
        ReportError(end, "CAPTURE_GAP", "",
                    absl::StrCat(chunk.offset - end,
                                 " bytes of the stream are missing from the "
                                 "capture at offset ",
                                 end));
      }
      // The first chunk of a stream whose start was captured begins with
      // the preface; any other begins at an unknown position in the frames.
      // Finding the first header of a capture that started late is not an
      // error; after a gap it is a resynchronisation.
      const bool at_start = i == 0 && input_.known_start && chunk.offset == 0;
      const bool late_start = i == 0 && !input_.known_start;
      DecodeChunk(chunk, at_start && options_.preface, !at_start, late_start,
                  i + 1 < input_.chunks.size());
    }
  }

 private:
  symwire::DecoderOptions DecoderOptionsFor(bool preface) const {
    symwire::DecoderOptions d;
    d.expect_preface = preface;
    d.max_header_bytes = options_.max_header_bytes;
    d.max_payload_bytes = options_.max_payload_bytes;
    return d;
  }

  // Decodes one contiguous chunk. `preface`: it starts with the preface;
  // `scan`: it starts at an unknown position (look for a header first);
  // `quiet_sync`: finding that header is not a resynchronisation;
  // `gap_follows`: a capture gap, not the end of the stream, follows.
  void DecodeChunk(const Chunk& chunk, bool preface, bool scan, bool quiet_sync,
                   bool gap_follows) {
    const Bytes data(chunk.bytes.data(), chunk.bytes.size());
    const uint64_t base = chunk.offset;
    size_t pos = 0;
    size_t scan_from = 0;     // where a scan starts
    size_t skipped_from = 0;  // first byte not decoded (for the report)
    symwire::FrameDecoder decoder(DecoderOptionsFor(preface));
    size_t decoder_base = 0;  // data offset where `decoder` started
    for (;;) {
      if (scan) {
        const std::optional<size_t> found = FindHeader(data, scan_from);
        const size_t sync = found.value_or(data.size());
        const size_t skipped = sync - skipped_from;
        stats_.skipped += skipped;
        if (!found) {
          if (skipped > 0) {
            Line line = StartLine("resync", base + skipped_from);
            line.T(absl::StrCat("no frame header found: skipped ", skipped,
                                " bytes to the end of the stream"));
            line.J("found", "false").J("skipped", absl::StrCat(skipped));
            printer_.Print(line);
          }
          return;
        }
        if (skipped > 0 || !quiet_sync) {
          if (!quiet_sync) ++stats_.resyncs;
          Line line = StartLine("resync", base + sync);
          line.T(absl::StrCat(quiet_sync ? "synchronised" : "resynchronised",
                              " at offset ", base + sync, " after skipping ",
                              skipped, " bytes"));
          line.J("found", "true").J("skipped", absl::StrCat(skipped));
          printer_.Print(line);
        }
        pos = sync;
        decoder = symwire::FrameDecoder(DecoderOptionsFor(false));
        decoder_base = pos;
        scan = false;
        quiet_sync = false;
      }
      auto step = decoder.Decode(data.subspan(pos));
      if (!step.ok()) {
        ReportDecodeError(step.status(), base, pos, decoder_base);
        scan = true;
        skipped_from = pos;
        if (!decoder.preface_done()) {
          scan_from = pos;  // a stream without preface may start with a frame
        } else if (auto next = TrustedNext(data, pos)) {
          scan_from = *next;
        } else {
          scan_from = pos + 1;
        }
        continue;
      }
      switch (step->kind) {
        case symwire::DecodeStep::Kind::kNeedMore:
          if (pos < data.size()) {
            ReportTruncated(base + pos, data.size() - pos, step->bytes_needed,
                            gap_follows);
          }
          return;
        case symwire::DecodeStep::Kind::kPreface: {
          Line line = StartLine("preface", base + pos);
          line.T("preface").Num("version", step->wire_version);
          printer_.Print(line);
          break;
        }
        case symwire::DecodeStep::Kind::kFrame:
          ReportFrame(step->frame, base + pos);
          break;
      }
      pos += step->consumed;
    }
  }

  // After an error on the frame at `pos`: the offset just past it, if its
  // header is genuine (so its length is) and a valid header or the end of
  // the chunk follows there.
  std::optional<size_t> TrustedNext(Bytes data, size_t pos) const {
    const auto header =
        symwire::ProbeFrameHeader(data.subspan(pos), options_.max_header_bytes);
    if (!header || !header->frame_size ||
        *header->frame_size > data.size() - pos) {
      return std::nullopt;
    }
    const auto next = static_cast<size_t>(pos + *header->frame_size);
    if (next == data.size() ||
        symwire::ProbeFrameHeader(data.subspan(next),
                                  options_.max_header_bytes)) {
      return next;
    }
    return std::nullopt;
  }

  // The first position >= from where a complete header has a matching CRC.
  std::optional<size_t> FindHeader(Bytes data, size_t from) const {
    return symwire::FindFrameHeader(data, from, options_.max_header_bytes);
  }

  Line StartLine(absl::string_view kind, uint64_t offset) const {
    Line line;
    line.J("kind", JsonString(kind));
    if (!input_.label.empty()) {
      line.T(input_.label);
      line.J("direction", JsonString(input_.label));
    }
    line.T(absl::StrCat("@", offset));
    line.J("offset", absl::StrCat(offset));
    return line;
  }

  void PrintStreamLine() {
    Line line;
    line.J("kind", "\"stream\"");
    line.J("direction", JsonString(input_.label));
    uint64_t bytes = 0;
    for (const Chunk& c : input_.chunks) bytes += c.bytes.size();
    line.T(absl::StrCat("== ", input_.label, ":"));
    line.Num("bytes", bytes).Num("segments", input_.segments);
    line.Num("retransmitted", input_.duplicates);
    line.Num("out_of_order", input_.out_of_order);
    line.Num("gaps", input_.chunks.empty() ? 0 : input_.chunks.size() - 1);
    line.Flag("syn", input_.syn).Flag("fin", input_.fin);
    line.Flag("rst", input_.rst);
    line.T("==");
    printer_.Print(line);
  }

  // `name`: the ErrorCode name; `status`: the canonical code name ("" for
  // conditions that are not symwire errors, such as a capture gap).
  void ReportError(uint64_t offset, absl::string_view name,
                   absl::string_view status, absl::string_view message,
                   std::optional<uint64_t> frame_offset = std::nullopt) {
    ++stats_.errors;
    Line line = StartLine("error", offset);
    line.T("ERROR");
    line.T(status.empty() ? absl::StrCat(name, ":")
                          : absl::StrCat(name, " (", status, "):"));
    line.T(std::string(message));
    line.J("error", JsonString(name));
    if (!status.empty()) line.J("status", JsonString(status));
    line.J("message", JsonString(message));
    if (frame_offset) {
      line.T(absl::StrCat("[frame at ", *frame_offset, "]"));
      line.J("frame_offset", absl::StrCat(*frame_offset));
    }
    printer_.Print(line);
  }

  // A decoder error: its offset is relative to where `decoder` started
  // (`decoder_base` in the chunk); report it against the stream.
  void ReportDecodeError(const absl::Status& status, uint64_t base, size_t pos,
                         size_t decoder_base) {
    const symwire::ErrorCode code = symwire::GetErrorCode(status);
    const absl::string_view message = status.message();
    absl::string_view head = message;
    const std::optional<uint64_t> rel =
        TrailingOffset(message, " at offset ", head);
    const uint64_t offset = rel ? base + decoder_base + *rel : base + pos;
    std::string text =
        rel ? absl::StrCat(head, " at offset ", offset) : std::string(message);
    ReportError(offset, symwire::ErrorCodeName(code),
                absl::StatusCodeToString(status.code()), text,
                base + pos != offset ? std::optional<uint64_t>(base + pos)
                                     : std::nullopt);
  }

  void ReportTruncated(uint64_t offset, size_t have, uint64_t needed,
                       bool gap_follows) {
    ++stats_.truncated;
    Line line = StartLine("truncated", offset);
    line.T(absl::StrCat(gap_follows ? "a capture gap interrupts a frame: "
                                    : "stream ends inside a frame: ",
                        have, " bytes, at least ", needed, " needed"));
    line.J("have", absl::StrCat(have)).J("needed", absl::StrCat(needed));
    printer_.Print(line);
  }

  void ReportFrame(const symwire::FrameView& frame, uint64_t offset) {
    ++stats_.frames[static_cast<size_t>(frame.type())];
    Line line = StartLine("frame", offset);
    const absl::string_view type = symwire::MessageTypeName(frame.type());
    line.T(std::string(type)).J("type", JsonString(type));
    line.Num("stream", frame.stream_id()).Num("seq", frame.sequence());
    line.Word("flags", symwire::FormatFlags(frame.flags()));
    line.J("flag_bits", absl::StrCat(frame.flags()));
    line.T(absl::StrCat("len=", frame.payload().size()));
    line.J("payload_len", absl::StrCat(frame.payload().size()));
    line.J("header_len", absl::StrCat(frame.header_size()));
    line.J("frame_len", absl::StrCat(frame.size()));
    Line fields;
    absl::Status parsed = absl::OkStatus();
    const bool control = IsControl(frame.type());
    if (control) parsed = AddControlFields(frame, fields);
    // Data payloads, and control payloads that do not parse, as bytes.
    if ((!control || !parsed.ok()) && !frame.payload().empty() &&
        options_.payload_bytes > 0) {
      AddBytes(line, "payload", frame.payload(), options_.payload_bytes, false);
    }
    AddExtensions(frame, options_.payload_bytes, line);
    if (control && parsed.ok()) {
      line.T(absl::StrCat("{", fields.Text(), "}"));
      line.J("fields", fields.Json());
    }
    printer_.Print(line);
    if (!parsed.ok()) {
      // Parameter-list errors name a payload offset (SPEC.md §11).
      const absl::string_view message = parsed.message();
      absl::string_view head = message;
      const std::optional<uint64_t> rel =
          TrailingOffset(message, " at payload offset ", head);
      const uint64_t payload_at = offset + frame.header_size();
      const uint64_t at = rel ? payload_at + *rel : payload_at;
      ReportError(at, symwire::ErrorCodeName(symwire::GetErrorCode(parsed)),
                  absl::StatusCodeToString(parsed.code()),
                  rel ? absl::StrCat(message, " (stream offset ", at, ")")
                      : std::string(message),
                  offset);
    }
  }

  const Options& options_;
  Printer& printer_;
  Stats& stats_;
  const StreamInput& input_;
};

// ---- input -----------------------------------------------------------------

bool ReadAll(const std::string& path, std::vector<std::byte>& out) {
  std::FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "symwire-dump: cannot open %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return false;
  }
  std::array<std::byte, 65536> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n));
  }
  const bool ok = std::ferror(f) == 0;
  if (!ok) {
    std::fprintf(stderr, "symwire-dump: cannot read %s\n", path.c_str());
  }
  if (f != stdin) std::fclose(f);
  return ok;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Hex text to bytes: whitespace ignored, '#' starts a comment to the end of
// the line.
bool ParseHex(Bytes text, std::vector<std::byte>& out) {
  int high = -1;
  size_t line = 1;
  bool comment = false;
  for (const std::byte b : text) {
    const auto c = static_cast<char>(b);
    if (c == '\n') {
      ++line;
      comment = false;
      continue;
    }
    if (comment || c == ' ' || c == '\t' || c == '\r' || c == '\f' ||
        c == '\v') {
      continue;
    }
    if (c == '#') {
      comment = true;
      continue;
    }
    const int d = HexDigit(c);
    if (d < 0) {
      std::fprintf(stderr,
                   "symwire-dump: invalid hex character 0x%02x on line %zu\n",
                   static_cast<unsigned>(b), line);
      return false;
    }
    if (high < 0) {
      high = d;
    } else {
      out.push_back(static_cast<std::byte>((high << 4) | d));
      high = -1;
    }
  }
  if (high >= 0) {
    std::fprintf(stderr, "symwire-dump: odd number of hex digits\n");
    return false;
  }
  return true;
}

// ---- pcap ------------------------------------------------------------------

// Endpoint: an IPv4 or IPv6 address and a TCP port.
struct Endpoint {
  std::array<uint8_t, 16> addr{};
  bool v6 = false;
  uint16_t port = 0;

  std::string Key() const {
    std::string k(reinterpret_cast<const char*>(addr.data()), v6 ? 16 : 4);
    k += static_cast<char>(port >> 8);
    k += static_cast<char>(port & 0xFF);
    return k;
  }
  std::string Label() const {
    std::array<char, INET6_ADDRSTRLEN> buf{};
    inet_ntop(v6 ? AF_INET6 : AF_INET, addr.data(), buf.data(),
              static_cast<socklen_t>(buf.size()));
    return v6 ? absl::StrCat("[", buf.data(), "]:", port)
              : absl::StrCat(buf.data(), ":", port);
  }
};

struct TcpSegment {
  Endpoint src;
  Endpoint dst;
  uint32_t seq = 0;
  bool syn = false;
  bool ack = false;
  bool fin = false;
  bool rst = false;
  Bytes payload;
};

uint16_t Big16(Bytes b, size_t at) {
  return static_cast<uint16_t>((static_cast<unsigned>(b[at]) << 8) |
                               static_cast<unsigned>(b[at + 1]));
}
uint32_t Big32(Bytes b, size_t at) {
  return (static_cast<uint32_t>(b[at]) << 24) |
         (static_cast<uint32_t>(b[at + 1]) << 16) |
         (static_cast<uint32_t>(b[at + 2]) << 8) |
         static_cast<uint32_t>(b[at + 3]);
}
uint32_t Load32(Bytes b, size_t at, bool big) {
  const uint32_t v = Big32(b, at);
  if (big) return v;
  return ((v & 0xFFu) << 24) | ((v & 0xFF00u) << 8) | ((v >> 8) & 0xFF00u) |
         (v >> 24);
}

// Parses a TCP segment inside an IP packet; false if it is not one.
bool ParseTcp(Bytes tcp, Endpoint src, Endpoint dst, TcpSegment& out) {
  if (tcp.size() < 20) return false;
  const size_t data_offset = (static_cast<size_t>(tcp[12]) >> 4) * 4;
  if (data_offset < 20 || data_offset > tcp.size()) return false;
  src.port = Big16(tcp, 0);
  dst.port = Big16(tcp, 2);
  out.src = src;
  out.dst = dst;
  out.seq = Big32(tcp, 4);
  const auto flags = static_cast<unsigned>(tcp[13]);
  out.fin = (flags & 0x01u) != 0;
  out.syn = (flags & 0x02u) != 0;
  out.rst = (flags & 0x04u) != 0;
  out.ack = (flags & 0x10u) != 0;
  out.payload = tcp.subspan(data_offset);
  return true;
}

// Parses an IPv4 or IPv6 packet (by its version nibble) carrying TCP.
bool ParseIp(Bytes ip, TcpSegment& out) {
  if (ip.empty()) return false;
  const unsigned version = static_cast<unsigned>(ip[0]) >> 4;
  Endpoint src;
  Endpoint dst;
  if (version == 4) {
    if (ip.size() < 20) return false;
    const size_t ihl = (static_cast<size_t>(ip[0]) & 0x0F) * 4;
    const size_t total = Big16(ip, 2);
    if (ihl < 20 || total < ihl || ip.size() < ihl) return false;
    // Fragments (MF set or a fragment offset) are not reassembled.
    if ((Big16(ip, 6) & 0x3FFFu) != 0) return false;
    if (static_cast<unsigned>(ip[9]) != 6) return false;
    std::memcpy(src.addr.data(), ip.data() + 12, 4);
    std::memcpy(dst.addr.data(), ip.data() + 16, 4);
    // The IP length, not the frame's, ends the packet (Ethernet pads short
    // frames); a snapped packet keeps what was captured.
    const size_t end = std::min(total, ip.size());
    return ParseTcp(ip.subspan(ihl, end - ihl), src, dst, out);
  }
  if (version == 6) {
    if (ip.size() < 40) return false;
    src.v6 = dst.v6 = true;
    std::memcpy(src.addr.data(), ip.data() + 8, 16);
    std::memcpy(dst.addr.data(), ip.data() + 24, 16);
    const size_t end = std::min(size_t{40} + Big16(ip, 4), ip.size());
    auto next = static_cast<unsigned>(ip[6]);
    size_t pos = 40;
    // Skip hop-by-hop (0), routing (43), destination options (60) and AH
    // (51) headers; a fragment (44) is not reassembled.
    while (next == 0 || next == 43 || next == 60 || next == 51) {
      if (pos + 8 > end) return false;
      const size_t len = next == 51
                             ? (static_cast<size_t>(ip[pos + 1]) + 2) * 4
                             : (static_cast<size_t>(ip[pos + 1]) + 1) * 8;
      next = static_cast<unsigned>(ip[pos]);
      pos += len;
    }
    if (next != 6 || pos > end) return false;
    return ParseTcp(ip.subspan(pos, end - pos), src, dst, out);
  }
  return false;
}

// The IP packet inside a link-layer frame, or an empty span.
Bytes LinkPayload(uint32_t link_type, Bytes frame) {
  auto ether_type_ok = [](unsigned t) { return t == 0x0800 || t == 0x86DD; };
  switch (link_type) {
    case 0:    // BSD loopback: 4-byte address family in the writer's order
    case 108:  // OpenBSD loopback: the same, big-endian
      return frame.size() > 4 ? frame.subspan(4) : Bytes();
    case 1: {  // Ethernet, with any number of 802.1Q/802.1ad tags
      size_t pos = 12;
      while (pos + 2 <= frame.size()) {
        const unsigned type = Big16(frame, pos);
        if (type == 0x8100 || type == 0x88A8 || type == 0x9100) {
          pos += 4;
          continue;
        }
        if (!ether_type_ok(type)) return {};
        return frame.subspan(pos + 2);
      }
      return {};
    }
    case 113:  // Linux cooked capture v1: protocol at 14, 16-byte header
      if (frame.size() < 16 || !ether_type_ok(Big16(frame, 14))) return {};
      return frame.subspan(16);
    case 276:  // Linux cooked capture v2: protocol at 0, 20-byte header
      if (frame.size() < 20 || !ether_type_ok(Big16(frame, 0))) return {};
      return frame.subspan(20);
    case 12:   // raw IP (some BSDs)
    case 101:  // raw IP
    case 228:  // raw IPv4
    case 229:  // raw IPv6
      return frame;
    default:
      return {};
  }
}

absl::string_view LinkTypeName(uint32_t link_type) {
  switch (link_type) {
    case 0:
      return "null";
    case 1:
      return "ethernet";
    case 108:
      return "loop";
    case 113:
      return "linux-sll";
    case 276:
      return "linux-sll2";
    case 12:
    case 101:
    case 228:
    case 229:
      return "raw-ip";
    default:
      return "";
  }
}

// TcpDirection: reassembly state of one direction of a connection.
class TcpDirection {
 public:
  explicit TcpDirection(size_t reorder_limit) : reorder_limit_(reorder_limit) {}

  void Add(const TcpSegment& s) {
    ++input_.segments;
    input_.fin = input_.fin || s.fin;
    input_.rst = input_.rst || s.rst;
    uint32_t data_seq = s.seq;
    if (s.syn) {
      data_seq = s.seq + 1;  // the SYN takes one sequence number
      if (!started_) {
        input_.syn = true;
        isn_ = s.seq;
        next_seq_ = data_seq;
        started_ = true;
      } else {
        ++input_.duplicates;  // a retransmitted (or stray) SYN
      }
    }
    if (s.payload.empty()) return;
    if (!started_) {
      // The capture starts after the SYN: the first byte seen is offset 0
      // and the stream's start is unknown.
      input_.known_start = false;
      next_seq_ = data_seq;
      started_ = true;
    }
    // Sequence numbers wrap; the offset is taken relative to the next
    // expected byte, so segments within 2 GiB of it place correctly.
    const auto delta = static_cast<int32_t>(data_seq - next_seq_);
    const int64_t off = static_cast<int64_t>(next_offset_) + delta;
    Bytes bytes = s.payload;
    int64_t begin = off;
    if (begin < 0) {  // before the first byte seen: nothing to place it in
      if (static_cast<uint64_t>(-begin) >= bytes.size()) {
        ++input_.duplicates;
        return;
      }
      bytes = bytes.subspan(static_cast<size_t>(-begin));
      begin = 0;
    }
    Insert(static_cast<uint64_t>(begin), bytes);
  }

  // Ends reassembly: buffered segments after a hole are placed after a gap.
  void Finish() {
    while (!pending_.empty()) {
      Skip(pending_.begin()->first);
      Drain();
    }
  }

  bool client() const { return client_; }
  void set_client() { client_ = true; }
  bool started() const { return started_; }
  uint32_t isn() const { return isn_; }
  bool has_syn() const { return input_.syn; }
  StreamInput& input() { return input_; }

 private:
  void Insert(uint64_t off, Bytes bytes) {
    const uint64_t end = off + bytes.size();
    if (end <= next_offset_) {
      ++input_.duplicates;
      return;
    }
    if (off <= next_offset_) {
      if (off < next_offset_) ++input_.duplicates;  // partly retransmitted
      Append(bytes.subspan(static_cast<size_t>(next_offset_ - off)));
      Drain();
      return;
    }
    ++input_.out_of_order;
    std::vector<std::byte>& slot = pending_[off];
    if (slot.size() < bytes.size()) {
      pending_bytes_ += bytes.size() - slot.size();
      slot.assign(bytes.begin(), bytes.end());
    }
    // Bounded buffer: beyond the limit the missing bytes are declared lost.
    while (pending_bytes_ > reorder_limit_ && !pending_.empty()) {
      Skip(pending_.begin()->first);
      Drain();
    }
  }

  void Append(Bytes bytes) {
    if (bytes.empty()) return;
    std::vector<Chunk>& chunks = input_.chunks;
    if (chunks.empty() ||
        chunks.back().offset + chunks.back().bytes.size() != next_offset_) {
      chunks.push_back(Chunk{next_offset_, {}});
    }
    chunks.back().bytes.insert(chunks.back().bytes.end(), bytes.begin(),
                               bytes.end());
    next_offset_ += bytes.size();
    next_seq_ += static_cast<uint32_t>(bytes.size());
  }

  // Gives up on the bytes before `offset` (lost or never captured).
  void Skip(uint64_t offset) {
    if (offset <= next_offset_) return;
    next_seq_ += static_cast<uint32_t>(offset - next_offset_);
    next_offset_ = offset;
  }

  void Drain() {
    while (!pending_.empty() && pending_.begin()->first <= next_offset_) {
      auto node = pending_.extract(pending_.begin());
      pending_bytes_ -= node.mapped().size();
      const uint64_t end = node.key() + node.mapped().size();
      if (end > next_offset_) {
        Append(Bytes(node.mapped())
                   .subspan(static_cast<size_t>(next_offset_ - node.key())));
      }
    }
  }

  size_t reorder_limit_;
  StreamInput input_;
  bool started_ = false;
  bool client_ = false;
  uint32_t isn_ = 0;
  uint32_t next_seq_ = 0;     // sequence number of next_offset_
  uint64_t next_offset_ = 0;  // stream offset of the next expected byte
  std::map<uint64_t, std::vector<std::byte>> pending_;  // out of order
  size_t pending_bytes_ = 0;
};

// Conversation: one TCP connection; dirs_[0] is the first direction seen.
struct Conversation {
  std::string key0;  // source endpoint key of dirs[0]
  std::vector<TcpDirection> dirs;
  std::array<std::string, 2> labels;
};

class PcapReader {
 public:
  PcapReader(const Options& options, Printer& printer, Stats& stats)
      : options_(options), printer_(printer), stats_(stats) {}

  // Reads the capture into streams. Returns false if `file` is not a
  // classic pcap file, or if --port matches none of its TCP segments (then
  // the message lists the ports the capture holds): usage-level failures.
  // Damage after the file header is reported as an error and what was read
  // is kept.
  bool Read(Bytes file, std::vector<StreamInput>& streams) {
    if (file.size() < 24) {
      std::fprintf(stderr, "symwire-dump: not a pcap file (too short)\n");
      return false;
    }
    const uint32_t magic = Big32(file, 0);
    bool big = false;
    bool nano = false;
    switch (magic) {
      case 0xA1B2C3D4:
        big = true;
        break;
      case 0xD4C3B2A1:
        break;
      case 0xA1B23C4D:
        big = true;
        nano = true;
        break;
      case 0x4D3CB2A1:
        nano = true;
        break;
      case 0x0A0D0D0A:
        std::fprintf(stderr,
                     "symwire-dump: pcapng is not supported; convert with "
                     "`editcap -F pcap in.pcapng out.pcap`\n");
        return false;
      default:
        std::fprintf(stderr, "symwire-dump: not a pcap file (magic 0x%08x)\n",
                     magic);
        return false;
    }
    // The low 16 bits are the link type; the upper ones may hold FCS info.
    const uint32_t link_type = Load32(file, 20, big) & 0xFFFFu;
    if (LinkTypeName(link_type).empty()) {
      std::fprintf(stderr, "symwire-dump: unsupported pcap link type %u\n",
                   link_type);
      return false;
    }
    size_t pos = 24;
    uint64_t packets = 0;
    uint64_t tcp = 0;
    uint64_t ignored = 0;
    uint64_t truncated_packets = 0;
    std::set<uint16_t> ports_seen;  // of every TCP segment, for --port
    while (pos < file.size()) {
      if (file.size() - pos < 16) {
        ReportCaptureError(pos, "capture ends inside a record header");
        break;
      }
      const uint32_t incl = Load32(file, pos + 8, big);
      const uint32_t orig = Load32(file, pos + 12, big);
      if (incl > file.size() - pos - 16) {
        ReportCaptureError(pos, absl::StrCat("record of ", incl,
                                             " bytes runs past the end of "
                                             "the capture"));
        break;
      }
      const Bytes frame = file.subspan(pos + 16, incl);
      pos += 16 + size_t{incl};
      ++packets;
      if (incl < orig) ++truncated_packets;
      TcpSegment segment;
      if (!ParseIp(LinkPayload(link_type, frame), segment)) {
        ++ignored;
        continue;
      }
      ports_seen.insert(segment.src.port);
      ports_seen.insert(segment.dst.port);
      if (options_.port && segment.src.port != *options_.port &&
          segment.dst.port != *options_.port) {
        ++ignored;
        continue;
      }
      ++tcp;
      AddSegment(segment);
    }
    if (options_.port && tcp == 0) {
      std::string held = "the capture holds no TCP segment";
      if (!ports_seen.empty()) {
        held = "ports in the capture: ";
        for (const uint16_t p : ports_seen) {
          absl::StrAppend(&held, p == *ports_seen.begin() ? "" : ", ", p);
        }
      }
      std::fprintf(stderr, "symwire-dump: no TCP segment with port %u; %s\n",
                   unsigned{*options_.port}, held.c_str());
      return false;
    }
    Line line;
    line.J("kind", "\"capture\"");
    line.T("== capture:");
    line.Word("format",
              absl::StrCat(big ? "pcap-be" : "pcap-le", nano ? "-ns" : "-us"));
    line.Word("link", LinkTypeName(link_type));
    line.Num("packets", packets).Num("tcp_segments", tcp);
    line.Num("ignored", ignored);
    if (truncated_packets > 0) line.Num("snapped", truncated_packets);
    line.Num("connections", conversations_.size());
    line.T("==");
    printer_.Print(line);
    for (Conversation& c : conversations_) {
      // The client (the side that sent a SYN without ACK) first.
      const bool swap =
          c.dirs.size() == 2 && c.dirs[1].client() && !c.dirs[0].client();
      for (size_t k = 0; k < c.dirs.size(); ++k) {
        const size_t i = swap ? 1 - k : k;
        c.dirs[i].Finish();
        StreamInput input = std::move(c.dirs[i].input());
        input.label = c.labels[i];
        streams.push_back(std::move(input));
      }
    }
    return true;
  }

 private:
  void ReportCaptureError(size_t file_offset, absl::string_view message) {
    ++stats_.errors;
    Line line;
    line.J("kind", "\"error\"");
    line.T("ERROR PCAP:").T(std::string(message));
    line.T(absl::StrCat("(file offset ", file_offset, ")"));
    line.J("error", "\"PCAP\"").J("message", JsonString(message));
    line.J("file_offset", absl::StrCat(file_offset));
    printer_.Print(line);
  }

  void AddSegment(const TcpSegment& s) {
    const std::string src = s.src.Key();
    const std::string dst = s.dst.Key();
    const std::string key = src < dst ? src + dst : dst + src;
    auto it = index_.find(key);
    size_t idx = 0;
    if (it != index_.end()) {
      idx = it->second;
      // A new SYN (with a new initial sequence) on a known 4-tuple opens a
      // new connection: the port was reused.
      Conversation& c = conversations_[idx];
      const size_t d = c.key0 == src ? 0 : 1;
      if (s.syn && !s.ack && d < c.dirs.size() && c.dirs[d].has_syn() &&
          c.dirs[d].isn() != s.seq) {
        idx = NewConversation(key, s);
      }
    } else {
      idx = NewConversation(key, s);
    }
    Conversation& c = conversations_[idx];
    size_t d = c.key0 == src ? 0 : 1;
    if (d == 1 && c.dirs.size() == 1) {
      c.dirs.emplace_back(options_.reorder_bytes);
      c.labels[1] = absl::StrCat(s.src.Label(), " -> ", s.dst.Label());
    }
    if (s.syn && !s.ack) c.dirs[d].set_client();
    c.dirs[d].Add(s);
  }

  size_t NewConversation(const std::string& key, const TcpSegment& s) {
    Conversation c;
    c.key0 = s.src.Key();
    c.dirs.emplace_back(options_.reorder_bytes);
    c.labels[0] = absl::StrCat(s.src.Label(), " -> ", s.dst.Label());
    conversations_.push_back(std::move(c));
    index_[key] = conversations_.size() - 1;
    return conversations_.size() - 1;
  }

  const Options& options_;
  Printer& printer_;
  Stats& stats_;
  std::vector<Conversation> conversations_;
  std::map<std::string, size_t> index_;
};

void PrintSummary(const Stats& s, Printer& printer) {
  Line line;
  line.J("kind", "\"summary\"");
  line.T("summary:");
  line.Num("streams", s.streams).Num("bytes", s.bytes);
  uint64_t frames = 0;
  for (uint64_t n : s.frames) frames += n;
  line.Num("frames", frames);
  Line by_type;
  for (size_t t = 0; t < s.frames.size(); ++t) {
    const absl::string_view name =
        symwire::MessageTypeName(static_cast<symwire::MessageType>(t));
    by_type.J(name, absl::StrCat(s.frames[t]));
    if (s.frames[t] > 0) by_type.T(absl::StrCat(name, "=", s.frames[t]));
  }
  if (frames > 0) line.T(absl::StrCat("(", by_type.Text(), ")"));
  line.J("frames_by_type", by_type.Json());
  line.Num("errors", s.errors).Num("resyncs", s.resyncs);
  line.Num("skipped_bytes", s.skipped).Num("truncated", s.truncated);
  if (s.gaps > 0) line.Num("gaps", s.gaps);
  printer.Print(line);
}

}  // namespace

// LooksLikePcap: the file starts with a pcap magic number (either byte
// order, microsecond or nanosecond timestamps) or a pcapng block type. A
// symwire stream starts with the preface "\x89SYM" or a frame header, never
// with these.
bool LooksLikePcap(Bytes file) {
  if (file.size() < 4) return false;
  const uint32_t magic = Big32(file, 0);
  return magic == 0xA1B2C3D4 || magic == 0xD4C3B2A1 || magic == 0xA1B23C4D ||
         magic == 0x4D3CB2A1 || magic == 0x0A0D0D0A;
}

int main(int argc, char** argv) {
  Options options;
  ParseArgs(argc, argv, options);
  std::vector<std::byte> raw;
  if (!ReadAll(options.path, raw)) return 2;
  if (options.format != InputFormat::kPcap && LooksLikePcap(Bytes(raw))) {
    std::fprintf(stderr,
                 "symwire-dump: %s: this looks like a pcap file; use --pcap\n",
                 options.path.c_str());
    return 2;
  }
  Printer printer(options.json);
  Stats stats;
  std::vector<StreamInput> streams;
  switch (options.format) {
    case InputFormat::kBinary: {
      StreamInput in;
      in.chunks.push_back(Chunk{0, std::move(raw)});
      streams.push_back(std::move(in));
      break;
    }
    case InputFormat::kHex: {
      StreamInput in;
      in.chunks.emplace_back();
      if (!ParseHex(Bytes(raw), in.chunks.back().bytes)) return 2;
      streams.push_back(std::move(in));
      break;
    }
    case InputFormat::kPcap: {
      PcapReader reader(options, printer, stats);
      if (!reader.Read(Bytes(raw), streams)) return 2;
      break;
    }
  }
  for (const StreamInput& in : streams) {
    StreamDumper(options, printer, stats, in).Run();
  }
  if (!options.quiet) PrintSummary(stats, printer);
  std::fflush(stdout);
  return stats.errors > 0 ? 1 : 0;
}
