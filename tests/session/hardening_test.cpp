// Hostile-peer regressions of the session layer (issue #11): memory before
// authentication (SPEC.md §15.2), no-op control-frame floods (§14.1), frames
// dripped byte by byte (§14.1), and what a task's terminal event says when
// the session ends before the peer acknowledged it (§16.3). Deterministic:
// a simulated clock and tests/support/session_pair.hpp.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "symwire/error.hpp"
#include "symwire/session/control.hpp"
#include "symwire/session/session.hpp"
#include "symwire/wire/encoder.hpp"
#include "tests/support/session_pair.hpp"

namespace symwire {
namespace {

using testing::AcceptorConfig;
using testing::AsBytes;
using testing::Dir;
using testing::FastTimers;
using testing::InitiatorConfig;
using testing::PairOptions;
using testing::SessionPair;
using testing::Side;

PairOptions Fast() {
  PairOptions o;
  o.initiator = FastTimers(InitiatorConfig());
  o.acceptor = FastTimers(AcceptorConfig());
  return o;
}

std::vector<std::byte> Bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

// Encodes one frame (no preface).
std::vector<std::byte> Frame(MessageType type, uint64_t stream, uint64_t seq,
                             absl::Span<const std::byte> payload = {},
                             uint8_t flags = 0) {
  FrameHeader h;
  h.type = type;
  h.flags = flags;
  h.stream_id = stream;
  h.sequence = seq;
  std::vector<std::byte> out(*EncodedSize(h, payload.size()));
  REQUIRE(EncodeFrame(h, payload, absl::MakeSpan(out)).ok());
  return out;
}

[[maybe_unused]] std::vector<std::byte> SyncFrame(const SyncMessage& m) {
  std::vector<std::byte> p;
  REQUIRE(AppendSync(m, p).ok());
  return Frame(MessageType::kAgentSync, 0, 0, p, p.empty() ? 0 : kFlagChecksum);
}

[[maybe_unused]] absl::Status Inject(SessionPair& pair, Side side,
                                     const std::vector<std::byte>& bytes) {
  return pair.Do(
      side, [&](Session& s, absl::Time now) { return s.Receive(bytes, now); });
}

std::unique_ptr<Session> Connected(SessionConfig config, absl::Time now) {
  auto s = *Session::Create(std::move(config), now);
  REQUIRE(s->TransportConnected(now).ok());
  while (!s->PollTransmit().empty()) {
  }
  return s;
}

// ---------------------------------------------------------------------------
// Item 1: memory before authentication (SPEC.md §15.2)

// The bytes of issue #11: the preface, then an AGENT_INIT header (CRC
// valid) declaring a payload of 16,777,215 bytes. payload_length is the
// 4-byte varint at stream offset 13.
const std::vector<std::byte> kHugeInit =
    Bytes({0x89, 0x53, 0x59, 0x4d, 0x57, 0x0d, 0x0a, 0x01, 0x0c, 0x00, 0x00,
           0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0x10, 0x62, 0xcd, 0x42});

void CheckHugeInitError(const absl::Status& s) {
  CHECK(GetErrorCode(s) == ErrorCode::kPayloadTooLarge);
  CHECK(s.code() == absl::StatusCode::kResourceExhausted);
  const std::string m(s.message());
  CHECK_THAT(m, Catch::Contains("16777215"));
  CHECK_THAT(m, Catch::Contains("8192"));
  CHECK_THAT(m, Catch::Contains("offset 13"));
  CHECK_THAT(m, Catch::Contains("before the handshake completes"));
}

TEST_CASE("an unauthenticated peer cannot make the acceptor buffer a huge INIT",
          "[session][handshake][hardening]") {
  const absl::Time now = absl::UnixEpoch();
  SECTION("whole") {
    auto a = Connected(AcceptorConfig(), now);
    absl::Status s = a->Receive(kHugeInit, now);
    CheckHugeInitError(s);
    CHECK(a->state() == SessionState::kFailed);
    CHECK(a->ConnectionClosing());
    CHECK(a->receive_buffered_bytes() == 0);
    // More bytes are refused; nothing is buffered.
    std::vector<std::byte> more(65536, std::byte{0});
    CHECK_FALSE(a->Receive(more, now).ok());
    CHECK(a->receive_buffered_bytes() == 0);
  }
  SECTION("byte by byte: the header's last (CRC) byte decides") {
    auto a = Connected(AcceptorConfig(), now);
    for (size_t i = 0; i + 1 < kHugeInit.size(); ++i) {
      REQUIRE(a->Receive(absl::MakeConstSpan(&kHugeInit[i], 1), now).ok());
      CHECK(a->receive_buffered_bytes() <= kHugeInit.size());
    }
    CheckHugeInitError(a->Receive(
        absl::MakeConstSpan(&kHugeInit[kHugeInit.size() - 1], 1), now));
    CHECK(a->state() == SessionState::kFailed);
  }
  SECTION("the connection's counters record it") {
    auto a = Connected(AcceptorConfig(), now);
    (void)a->Receive(kHugeInit, now);
    CHECK(a->counters().errors_by_code[static_cast<size_t>(
              ErrorCode::kPayloadTooLarge)] == 1);
  }
}

TEST_CASE("the initiator holds the pre-handshake limit too",
          "[session][handshake][hardening]") {
  const absl::Time now = absl::UnixEpoch();
  auto i = Connected(InitiatorConfig(), now);
  CheckHugeInitError(i->Receive(kHugeInit, now));
  // Only the connection ends (§15.2): the initiator will dial again.
  CHECK(i->state() == SessionState::kDisconnected);
  CHECK(i->ConnectionClosing());
}

TEST_CASE("before the handshake a payload of 8192 bytes is buffered, 8193 not",
          "[session][handshake][hardening]") {
  const absl::Time now = absl::UnixEpoch();
  auto frame_of = [](size_t payload_size) {
    std::vector<std::byte> payload(payload_size, std::byte{0x41});
    std::vector<std::byte> in(kPrefaceBytes.begin(), kPrefaceBytes.end());
    auto f = Frame(MessageType::kAgentInit, 0, 0, payload, kFlagChecksum);
    in.insert(in.end(), f.begin(), f.end());
    return in;
  };
  SECTION("8192: accepted by the decoder, held while it arrives") {
    auto a = Connected(AcceptorConfig(), now);
    const auto in = frame_of(8192);
    const size_t part = in.size() - 100;
    REQUIRE(a->Receive(absl::MakeConstSpan(in).first(part), now).ok());
    CHECK(a->receive_buffered_bytes() == part - kPrefaceSize);
    CHECK(a->state() == SessionState::kHandshaking);
  }
  SECTION("8193: refused at its header, nothing of it buffered") {
    auto a = Connected(AcceptorConfig(), now);
    const auto in = frame_of(8193);
    absl::Status s = a->Receive(absl::MakeConstSpan(in).first(40), now);
    CHECK(GetErrorCode(s) == ErrorCode::kPayloadTooLarge);
    CHECK_THAT(std::string(s.message()), Catch::Contains("8193"));
    CHECK(a->receive_buffered_bytes() == 0);
  }
}

TEST_CASE(
    "once established, payloads up to max_payload_bytes arrive, also "
    "after a resume",
    "[session][handshake][resume][hardening]") {
  PairOptions o = Fast();
  o.acceptor.max_payload_bytes = 100'000;
  o.initiator.max_payload_bytes = 100'000;
  SessionPair pair(o);
  REQUIRE(pair.Handshake());
  const std::string big(60'000, 'x');
  auto t1 = pair.Submit(Side::kInitiator, big);
  REQUIRE(t1.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 1; }));
  REQUIRE(pair.Respond(Side::kAcceptor, *t1, big, true).ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<ResponseReceived>(Side::kInitiator) == 1; }));
  // Cut; the resumed connection (AdoptConnection on the acceptor) gets the
  // full limit once its handshake completes.
  pair.Cut();
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<Established>(Side::kInitiator) == 2; }));
  auto t2 = pair.Submit(Side::kInitiator, big);
  REQUIRE(t2.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 2; }));
  REQUIRE(pair.Respond(Side::kAcceptor, *t2, big, true).ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<ResponseReceived>(Side::kInitiator) == 2; }));
  CHECK(pair.Count<SessionFailed>(Side::kAcceptor) == 0);
  CHECK(pair.Count<SessionFailed>(Side::kInitiator) == 0);
  CHECK(pair.problems().empty());
}

}  // namespace
}  // namespace symwire
