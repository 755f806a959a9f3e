// File: tests/session/control_test.cpp
// Tests for session/control.hpp, the parameter-list codec of SPEC.md §11:
//   - every vector of tests/vectors/session_payloads.md (written with the
//     independent Python reference, never with this codec) through the C++
//     parsers, its log compared line by line, its error's code, canonical
//     code, parameter and offset checked against the status message, and
//     the encoder's output compared with the bytes marked encoder=same;
//   - Append* -> Parse* round trips at the varint and length boundaries;
//   - every encoder rejection (INVALID_FRAME, nothing appended);
//   - a property test: random mutations and truncations of valid payloads
//     never crash, and either parse (then re-encode and re-parse to the same
//     message) or fail with one of the three §11 codes.
#include "symwire/session/control.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "symwire/error.hpp"
#include "symwire/wire/varint.hpp"
#include "tests/support/control_messages.hpp"
#include "tests/support/vectors.hpp"

namespace symwire {
namespace {

using testing::BaseInit;

using Bytes = std::vector<std::byte>;
using testing::LoadVectorFile;
using testing::SplitLogLine;
using testing::Vector;

constexpr uint64_t kMax30 = (uint64_t{1} << 30) - 1;
constexpr uint64_t kMax32 = (uint64_t{1} << 32) - 1;
constexpr std::byte kSentinel{0xA5};

std::string Hex(absl::Span<const std::byte> b) {
  return testing::ToLogHex(std::span<const std::byte>(b.data(), b.size()));
}
std::string Hex(absl::string_view s) {
  return Hex(absl::Span<const std::byte>(
      reinterpret_cast<const std::byte*>(s.data()), s.size()));
}
template <size_t N>
std::string Hex(const std::optional<std::array<std::byte, N>>& a) {
  return a ? Hex(absl::Span<const std::byte>(*a)) : "-";
}
std::string Num(const std::optional<uint64_t>& v) {
  return v ? absl::StrCat(*v) : "-";
}

// ---------------------------------------------------------------------------
// The log format of session_payloads.md (see its introduction): one
// NAME=VALUE line per field of the message model, in parameter id order.

std::vector<std::string> InitLog(const InitMessage& m) {
  const bool hello = m.phase == InitPhase::kHello;
  const bool welcome = m.phase == InitPhase::kWelcome;
  std::vector<std::string> out;
  auto add = [&](absl::string_view name, const std::string& value) {
    out.push_back(absl::StrCat(name, "=", value));
  };
  add("phase", absl::StrCat(static_cast<unsigned>(m.phase)));
  if (hello) {
    add("min_version", absl::StrCat(m.min_version));
    add("max_version", absl::StrCat(m.max_version));
  }
  if (welcome) add("version", absl::StrCat(m.version));
  if (hello || welcome) {
    add("agent_id", Hex(m.agent_id));
    add("role", absl::StrCat(static_cast<unsigned>(m.role)));
    add("capabilities", absl::StrCat(m.capabilities));
    add("max_payload_bytes", absl::StrCat(m.max_payload_bytes));
    add("max_header_bytes", absl::StrCat(m.max_header_bytes));
    add("max_tasks", absl::StrCat(m.max_tasks));
    add("replay_bytes", absl::StrCat(m.replay_bytes));
    add("replay_frames", absl::StrCat(m.replay_frames));
    add("ping_interval_us", absl::StrCat(m.ping_interval_us));
    add("min_ping_interval_us", absl::StrCat(m.min_ping_interval_us));
  }
  if (hello) {
    add("auth_method", absl::StrCat(static_cast<uint64_t>(m.auth_method)));
  }
  add("auth_data", Hex(m.auth_data));
  if (m.phase != InitPhase::kProof) {
    add("nonce", Hex(absl::Span<const std::byte>(m.nonce)));
  }
  if (hello || welcome) {
    add("session_id", Hex(m.session_id));
    if (welcome) add("resume_token", Hex(m.resume_token));
    add("last_received", Num(m.last_received));
  }
  if (welcome) {
    add("resumed", m.resumed ? "1" : "0");
    add("resume_window_us", absl::StrCat(m.resume_window_us));
  }
  if (welcome || m.phase == InitPhase::kProof) {
    add("resume_proof", Hex(m.resume_proof));
  }
  return out;
}

std::vector<std::string> SyncLog(const SyncMessage& m) {
  return {"ack=" + Num(m.ack), "ping=" + Num(m.ping), "pong=" + Num(m.pong),
          "drain=" + Num(m.drain), m.bye ? "bye=1" : "bye=0"};
}

std::vector<std::string> ErrorLog(const ErrorMessage& m) {
  return {absl::StrCat("code=", static_cast<int>(m.code)),
          "message=" + Hex(m.message),
          m.retryable ? "retryable=1" : "retryable=0",
          absl::StrCat("detail=", static_cast<unsigned>(m.detail))};
}

std::vector<std::string> CancelLog(const CancelMessage& m) {
  return {absl::StrCat("reason=", static_cast<int>(m.reason))};
}

// One parse through the message's parser: the log (or the status) and the
// encoder's output for the parsed message.
struct Outcome {
  absl::Status status;
  std::vector<std::string> log;
  absl::Status encode_status;
  Bytes encoded;
};

template <typename Message>
Outcome Finish(const absl::StatusOr<Message>& parsed,
               std::vector<std::string> (*log)(const Message&),
               absl::Status (*append)(const Message&, Bytes&)) {
  Outcome out;
  out.status = parsed.status();
  if (parsed.ok()) {
    out.log = log(*parsed);
    out.encode_status = append(*parsed, out.encoded);
  }
  return out;
}

Outcome Run(absl::string_view message, absl::Span<const std::byte> payload) {
  if (message == "AGENT_INIT") {
    return Finish<InitMessage>(ParseInit(payload), InitLog, AppendInit);
  }
  if (message == "AGENT_SYNC") {
    return Finish<SyncMessage>(ParseSync(payload), SyncLog, AppendSync);
  }
  if (message == "AGENT_ERROR") {
    return Finish<ErrorMessage>(ParseError(payload), ErrorLog, AppendError);
  }
  REQUIRE(message == "AGENT_CANCEL");
  return Finish<CancelMessage>(ParseCancel(payload), CancelLog, AppendCancel);
}

constexpr std::array<absl::string_view, 4> kMessages = {
    "AGENT_INIT", "AGENT_SYNC", "AGENT_ERROR", "AGENT_CANCEL"};

// Parameter names, for checking that error messages name the parameter.
absl::string_view ParamNameOf(absl::string_view message, uint64_t id) {
  static constexpr std::array<absl::string_view, 24> kInit = {
      "",
      "phase",
      "min_version",
      "max_version",
      "version",
      "agent_id",
      "role",
      "capabilities",
      "max_payload_bytes",
      "max_header_bytes",
      "max_tasks",
      "replay_bytes",
      "replay_frames",
      "ping_interval_us",
      "min_ping_interval_us",
      "auth_method",
      "auth_data",
      "nonce",
      "session_id",
      "resume_token",
      "last_received",
      "resumed",
      "resume_window_us",
      "resume_proof"};
  static constexpr std::array<absl::string_view, 6> kSync = {
      "", "ack", "ping", "pong", "drain", "bye"};
  static constexpr std::array<absl::string_view, 5> kError = {
      "", "code", "message", "retryable", "detail"};
  auto pick = [id](auto& table) -> absl::string_view {
    return id < table.size() && id != 0 ? table[id] : "unknown";
  };
  if (message == "AGENT_INIT") return pick(kInit);
  if (message == "AGENT_SYNC") return pick(kSync);
  if (message == "AGENT_ERROR") return pick(kError);
  return id == 1 ? "reason" : "unknown";
}

// ---------------------------------------------------------------------------
// Golden vectors.

TEST_CASE("session payload vectors", "[control][vectors]") {
  const std::vector<Vector> vectors = LoadVectorFile("session_payloads.md");
  REQUIRE(vectors.size() >= 40);
  size_t valid = 0, invalid = 0, canonical = 0;
  std::vector<std::string> codes_seen;
  for (const Vector& v : vectors) {
    INFO("session_payloads.md: " << v.name);
    const std::optional<std::string> message = testing::GetOption(v, "message");
    REQUIRE(message.has_value());
    const bool same = testing::GetOption(v, "encoder") == "same";
    const Outcome got = Run(*message, v.input);
    if (got.status.ok()) {
      ++valid;
      CHECK(absl::StrJoin(got.log, "\n") == absl::StrJoin(v.log, "\n"));
      // The parsed message is valid, so the encoder accepts it; its bytes
      // are the vector's exactly when the vector says so.
      REQUIRE(got.encode_status.ok());
      CHECK((Hex(got.encoded) == Hex(v.input)) == same);
      canonical += same;
      // And they parse back to the same message.
      const Outcome again = Run(*message, got.encoded);
      REQUIRE(again.status.ok());
      CHECK(again.log == got.log);
      continue;
    }
    ++invalid;
    CHECK_FALSE(same);
    REQUIRE(v.log.size() == 1);
    const testing::LogLine want = SplitLogLine(v.log[0]);
    REQUIRE(want.name == "error");
    const std::string code(ErrorCodeName(GetErrorCode(got.status)));
    INFO("status: " << got.status);
    CHECK(code == *want.Find("code"));
    codes_seen.push_back(code);
    CHECK(got.status.code() == CanonicalCode(GetErrorCode(got.status)));
    const std::string msg(got.status.message());
    CHECK(absl::EndsWith(
        msg, absl::StrCat(" at payload offset ", *want.Find("offset"))));
    CHECK(absl::StartsWith(msg, absl::AsciiStrToLower(*message)));
    const std::string& param = *want.Find("param");
    if (param != "-") {
      const uint64_t id = std::stoull(param);
      CHECK(msg.find(absl::StrCat("param ", id, " (", ParamNameOf(*message, id),
                                  ")")) != std::string::npos);
    }
  }
  INFO(valid << " valid, " << invalid << " invalid, " << canonical
             << " canonical");
  CHECK(valid >= 20);
  CHECK(canonical >= 10);
  for (absl::string_view code :
       {"MALFORMED_PAYLOAD", "UNKNOWN_CRITICAL_PARAM", "MISSING_PARAM"}) {
    CHECK(std::count(codes_seen.begin(), codes_seen.end(), code) > 0);
  }
}

TEST_CASE("parse errors name the parameter, value and offset", "[control]") {
  InitMessage hello;
  hello.phase = InitPhase::kHello;
  hello.min_version = hello.max_version = 1;
  hello.agent_id = "a";
  hello.role = AgentRole::kOrchestrator;
  hello.max_payload_bytes = 1024;
  hello.max_header_bytes = 4096;
  hello.max_tasks = 1;
  hello.replay_bytes = hello.replay_frames = hello.ping_interval_us = 1;
  Bytes payload;
  REQUIRE(AppendInit(hello, payload).ok());
  // phase(3) min(3) max(3) agent_id(3) role(3) max_payload(4) -> the
  // max_header_bytes parameter starts at 19, its value at 21 (`50 00`).
  REQUIRE(Hex(absl::MakeConstSpan(payload).subspan(19, 4)) == "09025000");
  payload[21] = std::byte{0x40};
  payload[22] = std::byte{0x05};  // 5 as a (non-canonical) 2-byte varint
  auto parsed = ParseInit(payload);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message() ==
        "agent_init param 9 (max_header_bytes) value 5 is a non-canonical "
        "2-byte varint at payload offset 21");
  // 5 in canonical form: param_length 1, the range rule.
  payload.erase(payload.begin() + 21);
  payload[20] = std::byte{0x01};
  parsed = ParseInit(payload);
  REQUIRE_FALSE(parsed.ok());
  CHECK(GetErrorCode(parsed.status()) == ErrorCode::kMalformedPayload);
  CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(parsed.status().message() ==
        "agent_init param 9 (max_header_bytes) value 5 out of range "
        "10..16385 at payload offset 21");

  auto sync = ParseSync(testing::FromLogHex("01"));
  CHECK(sync.status().message() ==
        "agent_sync param 1 (ack) param_length is missing: the payload ends "
        "at payload offset 1");
  sync = ParseSync(testing::FromLogHex("0180"));
  CHECK(sync.status().message() ==
        "agent_sync param 1 (ack) param_length: 4-byte varint runs past the "
        "end of the payload (1 bytes left) at payload offset 1");
  sync = ParseSync(testing::FromLogHex("40020100"));
  CHECK(sync.status().message() ==
        "agent_sync param_id 2 (ping) is a non-canonical 2-byte varint at "
        "payload offset 0");
  sync = ParseSync(testing::FromLogHex("010305"));
  CHECK(sync.status().message() ==
        "agent_sync param 1 (ack) value of 3 bytes runs past the end of the "
        "payload (1 bytes left) at payload offset 1");
  sync = ParseSync(testing::FromLogHex("0100"));
  CHECK(sync.status().message() ==
        "agent_sync param 1 (ack) value is empty; expected one varint at "
        "payload offset 2");
  sync = ParseSync(testing::FromLogHex("0b00"));
  CHECK(sync.status().code() == absl::StatusCode::kUnimplemented);
  CHECK(sync.status().message() ==
        "agent_sync param 11 (unknown) is not defined and is critical (odd) "
        "at payload offset 0");
  auto init = ParseInit(testing::FromLogHex("0101001500"));
  CHECK(init.status().message() ==
        "agent_init param 21 (resumed) is not defined in HELLO and is "
        "critical (odd) at payload offset 3");
  auto error = ParseError(testing::FromLogHex("020141"));
  CHECK(error.status().message() ==
        "agent_error is missing required param 1 (code) at payload offset 3");
  auto cancel = ParseCancel(testing::FromLogHex("010102"));
  CHECK(cancel.status().message() ==
        "agent_cancel param 1 (reason) value 2 is not one of 1 4 at payload "
        "offset 2");
  // Byte values are never echoed, only their lengths (tokens are secret).
  init = ParseInit(testing::FromLogHex("010103130373656b"));
  CHECK(init.status().message() ==
        "agent_init param 19 (resume_token) length 3 is not 16 at payload "
        "offset 5");
}

TEST_CASE("parsed views point into the payload", "[control]") {
  ErrorMessage e;
  e.code = absl::StatusCode::kInternal;
  e.message = "boom";
  Bytes out;
  REQUIRE(AppendError(e, out).ok());
  auto parsed = ParseError(out);
  REQUIRE(parsed.ok());
  CHECK(parsed->message == "boom");
  CHECK(reinterpret_cast<const std::byte*>(parsed->message.data()) ==
        out.data() + 5);  // 01 01 0d | 02 04 "boom"
}

// ---------------------------------------------------------------------------
// Round trips.

// The varint boundaries of SPEC.md §2, and their neighbours.
const std::vector<uint64_t>& Boundaries() {
  static const std::vector<uint64_t> values = {
      0,      1,          63,     64,         16383,          16384,
      kMax30, kMax30 + 1, kMax32, kMax32 + 1, kVarintMax - 1, kVarintMax};
  return values;
}

// Appends, checks the parameters come in ascending id order with canonical
// varints, parses back and compares the logs (every field of the phase).
void RoundTripInit(const InitMessage& m) {
  Bytes out = {kSentinel};  // Append* appends: keep what was there
  REQUIRE(AppendInit(m, out).ok());
  REQUIRE(out[0] == kSentinel);
  const absl::Span<const std::byte> payload =
      absl::MakeConstSpan(out).subspan(1);
  uint64_t last_id = 0;
  for (size_t pos = 0; pos < payload.size();) {
    auto id = DecodeVarint(payload.subspan(pos));
    REQUIRE(id.ok());
    REQUIRE(id->complete);
    CHECK(id->value > last_id);
    last_id = id->value;
    pos += id->size;
    auto length = DecodeVarint(payload.subspan(pos));
    REQUIRE(length.ok());
    REQUIRE(length->complete);
    pos += length->size + length->value;
    REQUIRE(pos <= payload.size());
  }
  auto parsed = ParseInit(payload);
  INFO(Hex(payload));
  REQUIRE(parsed.ok());
  CHECK(InitLog(*parsed) == InitLog(m));
}

TEST_CASE("AppendInit/ParseInit round trips", "[control]") {
  for (InitPhase phase : {InitPhase::kHello, InitPhase::kChallenge,
                          InitPhase::kProof, InitPhase::kWelcome}) {
    INFO(InitPhaseName(phase));
    RoundTripInit(BaseInit(phase));
  }
  SECTION("unbounded varints at every boundary") {
    for (uint64_t v : Boundaries()) {
      INFO(v);
      InitMessage hello = BaseInit(InitPhase::kHello);
      hello.capabilities = v;
      hello.min_ping_interval_us = v;
      hello.auth_method = static_cast<AuthMethod>(v);
      hello.max_version = std::max<uint64_t>(v, 1);
      hello.min_version = std::max<uint64_t>(v, 1);
      if (v >= 1) {
        hello.replay_bytes = hello.replay_frames = hello.ping_interval_us = v;
      }
      hello.session_id.emplace();
      hello.last_received = v;
      RoundTripInit(hello);
      InitMessage welcome = BaseInit(InitPhase::kWelcome);
      welcome.version = v;
      welcome.last_received = v;
      welcome.resume_window_us = v;
      welcome.resumed = v % 2 == 1;
      if (welcome.resumed) {
        // A resumed WELCOME proves the token instead of carrying it.
        welcome.resume_token.reset();
        welcome.resume_proof.emplace();
        welcome.resume_proof->fill(std::byte{0x7E});
      }
      RoundTripInit(welcome);
      InitMessage proof = BaseInit(InitPhase::kProof);
      proof.resume_proof.emplace();
      proof.resume_proof->fill(static_cast<std::byte>(v & 0xFF));
      RoundTripInit(proof);
    }
  }
  SECTION("bounded varints at their limits") {
    for (uint64_t v : Boundaries()) {
      InitMessage m = BaseInit(InitPhase::kWelcome);
      if (v <= kMax30) m.max_payload_bytes = v;
      if (v >= 1 && v <= kMax32) m.max_tasks = v;
      if (v >= 10 && v <= 16385) m.max_header_bytes = v;
      RoundTripInit(m);
    }
    InitMessage m = BaseInit(InitPhase::kHello);
    for (uint64_t header :
         std::initializer_list<uint64_t>{10, 63, 64, 16383, 16384, 16385}) {
      m.max_header_bytes = header;
      RoundTripInit(m);
    }
    for (AgentRole role :
         {AgentRole::kOrchestrator, AgentRole::kAgent, AgentRole::kPeer}) {
      m.role = role;
      RoundTripInit(m);
    }
  }
  SECTION("byte strings at their length boundaries") {
    for (size_t n : std::initializer_list<size_t>{1, 63, 64, 255}) {
      const std::string id(n, 'i');
      InitMessage m = BaseInit(InitPhase::kWelcome);
      m.agent_id = id;
      RoundTripInit(m);
    }
    for (size_t n : std::initializer_list<size_t>{0, 1, 63, 64, 1024}) {
      const std::string data(n, 'd');
      for (InitPhase phase : {InitPhase::kHello, InitPhase::kChallenge,
                              InitPhase::kProof, InitPhase::kWelcome}) {
        InitMessage m = BaseInit(phase);
        m.auth_data = data;
        RoundTripInit(m);
      }
    }
  }
}

TEST_CASE("AppendInit writes only the phase's parameters", "[control]") {
  // Fields of other phases are ignored: invalid values there do not matter.
  InitMessage m = BaseInit(InitPhase::kProof);
  m.min_version = 0;
  m.agent_id = "";
  m.max_header_bytes = 1;
  m.session_id.emplace();
  m.resumed = true;
  Bytes out;
  REQUIRE(AppendInit(m, out).ok());
  CHECK(Hex(out) == "010102");  // phase 2, nothing else (no auth_data)
  m.auth_data = "xy";
  out.clear();
  REQUIRE(AppendInit(m, out).ok());
  CHECK(Hex(out) ==
        "0101021002"
        "7879");
  InitMessage challenge = BaseInit(InitPhase::kChallenge);
  out.clear();
  REQUIRE(AppendInit(challenge, out).ok());
  CHECK(out.size() == 3 + 2 + kNonceSize);
}

TEST_CASE("AppendSync/ParseSync round trips", "[control]") {
  for (uint64_t v : Boundaries()) {
    INFO(v);
    for (int mask = 0; mask < 32; ++mask) {
      SyncMessage m;
      if (mask & 1) m.ack = v;
      if (mask & 2) m.ping = v;
      if (mask & 4) m.pong = kVarintMax - v;
      if (mask & 8) m.drain = v;
      m.bye = (mask & 16) != 0;
      Bytes out;
      REQUIRE(AppendSync(m, out).ok());
      CHECK(out.empty() == m.empty());
      auto parsed = ParseSync(out);
      REQUIRE(parsed.ok());
      CHECK(SyncLog(*parsed) == SyncLog(m));
    }
  }
  SyncMessage bye;
  bye.bye = true;
  Bytes out;
  REQUIRE(AppendSync(bye, out).ok());
  CHECK(Hex(out) == "0500");
}

TEST_CASE("AppendError/ParseError round trips", "[control]") {
  for (int code = 1; code <= 16; ++code) {
    for (uint16_t detail : std::initializer_list<uint16_t>{
             0, 1, 63, 64, 126, 16383, 16384, 65535}) {
      for (size_t n : std::initializer_list<size_t>{0, 1, 63, 64, 4096}) {
        const std::string text(n, 'm');
        ErrorMessage m;
        m.code = static_cast<absl::StatusCode>(code);
        m.message = text;
        m.retryable = (static_cast<size_t>(code) + n) % 2 == 0;
        m.detail = static_cast<ErrorCode>(detail);
        Bytes out;
        REQUIRE(AppendError(m, out).ok());
        auto parsed = ParseError(out);
        REQUIRE(parsed.ok());
        CHECK(ErrorLog(*parsed) == ErrorLog(m));
      }
    }
  }
  ErrorMessage minimal;
  minimal.code = absl::StatusCode::kCancelled;
  Bytes out;
  REQUIRE(AppendError(minimal, out).ok());
  CHECK(Hex(out) == "010101");
}

TEST_CASE("AppendCancel writes reason only for DEADLINE_EXCEEDED",
          "[control]") {
  CancelMessage m;
  Bytes out = {kSentinel};
  REQUIRE(AppendCancel(m, out).ok());
  CHECK(Hex(out) == "a5");  // CANCELLED: absent (SPEC.md §11.2)
  auto parsed = ParseCancel(absl::MakeConstSpan(out).subspan(1));
  REQUIRE(parsed.ok());
  CHECK(parsed->reason == absl::StatusCode::kCancelled);
  m.reason = absl::StatusCode::kDeadlineExceeded;
  out.clear();
  REQUIRE(AppendCancel(m, out).ok());
  CHECK(Hex(out) == "010104");
  parsed = ParseCancel(out);
  REQUIRE(parsed.ok());
  CHECK(parsed->reason == absl::StatusCode::kDeadlineExceeded);
}

// ---------------------------------------------------------------------------
// Encoder rejections.

void ExpectRejected(const std::function<absl::Status(Bytes&)>& append,
                    absl::string_view fragment) {
  Bytes out(3, kSentinel);
  const absl::Status s = append(out);
  INFO(s);
  CHECK(GetErrorCode(s) == ErrorCode::kInvalidFrame);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s.message()).find(std::string(fragment)) !=
        std::string::npos);
  CHECK(out == Bytes(3, kSentinel));  // nothing appended
}

TEST_CASE("AppendInit rejects invalid values", "[control]") {
  using Mutate = std::function<void(InitMessage&)>;
  const std::vector<std::tuple<InitPhase, Mutate, absl::string_view>> cases = {
      {InitPhase::kHello,
       [](InitMessage& m) { m.phase = static_cast<InitPhase>(4); },
       "phase 4 is not 0..3"},
      {InitPhase::kHello, [](InitMessage& m) { m.min_version = 0; },
       "param 2 (min_version) value 0 is below 1"},
      {InitPhase::kHello, [](InitMessage& m) { m.max_version = 0; },
       "param 3 (max_version) value 0 is below min_version 1"},
      {InitPhase::kHello,
       [](InitMessage& m) { m.max_version = kVarintMax + 1; },
       "param 3 (max_version) value 4611686018427387904"},
      {InitPhase::kHello, [](InitMessage& m) { m.agent_id = ""; },
       "param 5 (agent_id) length 0 out of range 1..255"},
      {InitPhase::kWelcome,
       [](InitMessage& m) {
         static const std::string long_id(256, 'x');
         m.agent_id = long_id;
       },
       "param 5 (agent_id) length 256"},
      {InitPhase::kHello,
       [](InitMessage& m) { m.role = static_cast<AgentRole>(3); },
       "param 6 (role) value 3 out of range 0..2"},
      {InitPhase::kWelcome,
       [](InitMessage& m) { m.capabilities = kVarintMax + 1; },
       "param 7 (capabilities)"},
      {InitPhase::kHello,
       [](InitMessage& m) { m.max_payload_bytes = kMax30 + 1; },
       "param 8 (max_payload_bytes) value 1073741824 out of range"},
      {InitPhase::kHello, [](InitMessage& m) { m.max_header_bytes = 9; },
       "param 9 (max_header_bytes) value 9 out of range 10..16385"},
      {InitPhase::kWelcome, [](InitMessage& m) { m.max_header_bytes = 16386; },
       "param 9 (max_header_bytes) value 16386"},
      {InitPhase::kHello, [](InitMessage& m) { m.max_tasks = 0; },
       "param 10 (max_tasks) value 0"},
      {InitPhase::kWelcome, [](InitMessage& m) { m.max_tasks = kMax32 + 1; },
       "param 10 (max_tasks) value 4294967296"},
      {InitPhase::kHello, [](InitMessage& m) { m.replay_bytes = 0; },
       "param 11 (replay_bytes) value 0 is below 1"},
      {InitPhase::kWelcome, [](InitMessage& m) { m.replay_frames = 0; },
       "param 12 (replay_frames) value 0 is below 1"},
      {InitPhase::kHello, [](InitMessage& m) { m.ping_interval_us = 0; },
       "param 13 (ping_interval_us) value 0 is below 1"},
      {InitPhase::kHello,
       [](InitMessage& m) { m.min_ping_interval_us = kVarintMax + 1; },
       "param 14 (min_ping_interval_us)"},
      {InitPhase::kHello,
       [](InitMessage& m) {
         m.auth_method = static_cast<AuthMethod>(kVarintMax + 1);
       },
       "param 15 (auth_method)"},
      {InitPhase::kProof,
       [](InitMessage& m) {
         static const std::string data(1025, 'd');
         m.auth_data = data;
       },
       "param 16 (auth_data) length 1025 out of range 0..1024"},
      {InitPhase::kHello, [](InitMessage& m) { m.session_id.emplace(); },
       "only one of session_id and last_received"},
      {InitPhase::kHello, [](InitMessage& m) { m.last_received = 1; },
       "only one of session_id and last_received"},
      {InitPhase::kHello,
       [](InitMessage& m) {
         m.session_id.emplace();
         m.last_received = kVarintMax + 1;
       },
       "param 20 (last_received)"},
      {InitPhase::kWelcome, [](InitMessage& m) { m.session_id.reset(); },
       "WELCOME needs param 18 (session_id)"},
      {InitPhase::kWelcome, [](InitMessage& m) { m.resume_token.reset(); },
       "WELCOME needs param 19 (resume_token)"},
      {InitPhase::kWelcome, [](InitMessage& m) { m.resumed = true; },
       "resumed WELCOME needs param 23 (resume_proof)"},
      {InitPhase::kWelcome, [](InitMessage& m) { m.last_received.reset(); },
       "WELCOME needs param 20 (last_received)"},
      {InitPhase::kWelcome, [](InitMessage& m) { m.version = kVarintMax + 1; },
       "param 4 (version)"},
      {InitPhase::kWelcome,
       [](InitMessage& m) { m.resume_window_us = kVarintMax + 1; },
       "param 22 (resume_window_us)"},
  };
  for (const auto& [phase, mutate, fragment] : cases) {
    INFO(fragment);
    InitMessage m = BaseInit(phase);
    mutate(m);
    ExpectRejected([&m](Bytes& out) { return AppendInit(m, out); }, fragment);
  }
}

TEST_CASE("AppendSync/AppendError/AppendCancel reject invalid values",
          "[control]") {
  for (int field = 0; field < 4; ++field) {
    SyncMessage m;
    m.ack = 1;
    std::optional<uint64_t>* fields[] = {&m.ack, &m.ping, &m.pong, &m.drain};
    *fields[field] = kVarintMax + 1;
    ExpectRejected([&m](Bytes& out) { return AppendSync(m, out); },
                   "value 4611686018427387904");
  }
  for (int code : {0, 17, -1, 1000}) {
    ErrorMessage m;
    m.code = static_cast<absl::StatusCode>(code);
    ExpectRejected([&m](Bytes& out) { return AppendError(m, out); },
                   "agent_error param 1 (code)");
  }
  {
    ErrorMessage m;
    m.code = absl::StatusCode::kInternal;
    const std::string text(4097, 'm');
    m.message = text;
    ExpectRejected([&m](Bytes& out) { return AppendError(m, out); },
                   "param 2 (message) length 4097 out of range 0..4096");
  }
  for (absl::StatusCode reason :
       {absl::StatusCode::kOk, absl::StatusCode::kUnknown,
        absl::StatusCode::kInternal, absl::StatusCode::kUnavailable}) {
    CancelMessage m;
    m.reason = reason;
    ExpectRejected([&m](Bytes& out) { return AppendCancel(m, out); },
                   "agent_cancel param 1 (reason)");
  }
}

// ---------------------------------------------------------------------------
// Property test.

bool IsParseCode(ErrorCode code) {
  return code == ErrorCode::kMalformedPayload ||
         code == ErrorCode::kUnknownCriticalParam ||
         code == ErrorCode::kMissingParam;
}

TEST_CASE("mutated payloads parse or fail with a §11 code", "[control]") {
  // Seeds: every valid vector, plus a few encoder outputs.
  std::vector<std::pair<std::string, Bytes>> seeds;
  for (const Vector& v : LoadVectorFile("session_payloads.md")) {
    const std::string message = *testing::GetOption(v, "message");
    if (Run(message, v.input).status.ok()) seeds.emplace_back(message, v.input);
  }
  {
    Bytes out;
    REQUIRE(AppendInit(BaseInit(InitPhase::kWelcome), out).ok());
    seeds.emplace_back("AGENT_INIT", out);
  }
  REQUIRE(seeds.size() >= 20);

  std::mt19937_64 rng(0x5e55'10f1);
  auto pick = [&rng](size_t n) {
    return static_cast<size_t>(rng() % static_cast<uint64_t>(n));
  };
  size_t ok = 0, failed = 0;
  for (int iteration = 0; iteration < 30000; ++iteration) {
    const auto& [seed_message, seed] = seeds[pick(seeds.size())];
    Bytes data = seed;
    const int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits; ++e) {
      switch (pick(5)) {
        case 0:  // overwrite a byte
          if (!data.empty()) data[pick(data.size())] = std::byte(rng());
          break;
        case 1:  // flip a bit
          if (!data.empty()) {
            data[pick(data.size())] ^= std::byte(1u << pick(8));
          }
          break;
        case 2:  // truncate
          data.resize(pick(data.size() + 1));
          break;
        case 3: {  // insert a byte (sequenced: the same on every compiler)
          const size_t at = pick(data.size() + 1);
          data.insert(data.begin() + static_cast<std::ptrdiff_t>(at),
                      std::byte(rng()));
          break;
        }
        default:  // delete a byte
          if (!data.empty()) {
            data.erase(data.begin() +
                       static_cast<std::ptrdiff_t>(pick(data.size())));
          }
          break;
      }
    }
    // Usually through its own parser, sometimes through another one.
    const absl::string_view message = pick(4) == 0
                                          ? kMessages[pick(kMessages.size())]
                                          : absl::string_view(seed_message);
    INFO(message << " " << Hex(data));
    const Outcome got = Run(message, data);
    if (got.status.ok()) {
      ++ok;
      // A parsed message is valid: it re-encodes and parses back the same.
      REQUIRE(got.encode_status.ok());
      const Outcome again = Run(message, got.encoded);
      REQUIRE(again.status.ok());
      CHECK(again.log == got.log);
    } else {
      ++failed;
      REQUIRE(IsParseCode(GetErrorCode(got.status)));
      CHECK(got.status.code() == CanonicalCode(GetErrorCode(got.status)));
      CHECK(absl::StrContains(got.status.message(), " at payload offset "));
    }
  }
  INFO(ok << " parsed, " << failed << " failed");
  CHECK(ok > 100);
  CHECK(failed > 100);
}

TEST_CASE("every truncation of a valid payload is handled", "[control]") {
  for (const Vector& v : LoadVectorFile("session_payloads.md")) {
    const std::string message = *testing::GetOption(v, "message");
    INFO(v.name);
    for (size_t n = 0; n <= v.input.size(); ++n) {
      const Outcome got = Run(message, absl::MakeConstSpan(v.input.data(), n));
      if (!got.status.ok()) {
        CHECK(IsParseCode(GetErrorCode(got.status)));
      }
    }
  }
}

TEST_CASE("role and phase names", "[control]") {
  CHECK(AgentRoleName(AgentRole::kOrchestrator) == "orchestrator");
  CHECK(AgentRoleName(AgentRole::kAgent) == "agent");
  CHECK(AgentRoleName(AgentRole::kPeer) == "peer");
  CHECK(AgentRoleName(static_cast<AgentRole>(9)) == "unknown");
  CHECK(InitPhaseName(InitPhase::kHello) == "HELLO");
  CHECK(InitPhaseName(InitPhase::kChallenge) == "CHALLENGE");
  CHECK(InitPhaseName(InitPhase::kProof) == "PROOF");
  CHECK(InitPhaseName(InitPhase::kWelcome) == "WELCOME");
  CHECK(InitPhaseName(static_cast<InitPhase>(4)) == "UNKNOWN");
  CHECK(RoleSendsTasks(AgentRole::kOrchestrator));
  CHECK_FALSE(RoleSendsTasks(AgentRole::kAgent));
  CHECK(RoleRunsTasks(AgentRole::kPeer));
}

}  // namespace
}  // namespace symwire
