// File: tests/session/shared_payload_test.cpp
// Tests for payloads handed over by reference (symwire/shared_payload.hpp,
// Session::SubmitTask / SendResponse taking a SharedPayload): the frames are
// byte for byte those of the copying calls, on first send and when replayed
// after a resume; the replay store references the payload instead of
// copying it and lets go of it once acknowledged; the send window counts
// referenced bytes exactly like copied ones.
#include "symwire/shared_payload.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "symwire/error.hpp"
#include "symwire/session/session.hpp"
#include "tests/support/session_pair.hpp"

namespace symwire {
namespace {

using testing::PairOptions;
using testing::SessionPair;
using testing::Side;

PairOptions Fast() { return testing::FastPairOptions(); }

std::string Bytes(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>(static_cast<size_t>(seed) + i * 7);
  return s;
}

// Everything the session has to send now, as PollTransmit returns it.
struct Drained {
  std::vector<std::byte> bytes;
  std::vector<absl::Span<const std::byte>> spans;
};
Drained Drain(Session& s) {
  Drained d;
  for (;;) {
    std::shared_ptr<const void> owner;
    absl::Span<const std::byte> out = s.PollTransmit(&owner, 0);
    if (out.empty()) break;
    d.spans.push_back(out);
    d.bytes.insert(d.bytes.end(), out.begin(), out.end());
  }
  return d;
}

TEST_CASE("shared payload: owns its bytes, cheap copies, moved-from empty",
          "[session][shared_payload]") {
  std::string text = Bytes(3000, 'a');
  const char* where = text.data();
  SharedPayload p(std::move(text));
  CHECK(p.size() == 3000);
  CHECK(p.view() == Bytes(3000, 'a'));
  CHECK(p.view().data() == where);  // taken over, not copied
  SharedPayload q = p;
  CHECK(q.bytes().data() == p.bytes().data());
  CHECK(p.owner().use_count() == 2);
  SharedPayload r = std::move(q);
  CHECK(q.empty());  // NOLINT(bugprone-use-after-move): specified state
  CHECK(r.view() == p.view());
  CHECK(SharedPayload::Copy(std::string_view("xyz")).view() == "xyz");
  CHECK(SharedPayload(std::string()).empty());
}

// Two identical pairs (same seeds): one sends by copy, one by reference;
// the bytes each initiator hands to its transport, and the frames its peer
// receives after a resume replays them, must be identical.
TEST_CASE("shared payload: frames and their replay are byte-identical",
          "[session][shared_payload][resume]") {
  SessionPair copying(Fast());
  SessionPair sharing(Fast());
  REQUIRE(copying.Handshake());
  REQUIRE(sharing.Handshake());
  REQUIRE(copying.now() == sharing.now());

  // Around kMinReferencedPayload, empty, and larger than a store block is
  // not needed (blocks are tested in replay_store_test).
  const size_t sizes[] = {0,
                          1,
                          Session::kMinReferencedPayload - 1,
                          Session::kMinReferencedPayload,
                          5000,
                          40000};
  std::vector<SharedPayload> payloads;
  std::vector<TaskId> ids;
  const MetadataEntry metadata[] = {{"k", "v"}};
  TaskOptions options;
  options.metadata = metadata;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    const std::string text = Bytes(sizes[i], static_cast<char>('A' + i));
    payloads.emplace_back(text);
    auto a = copying.initiator().SubmitTask(testing::AsBytes(text), options,
                                            copying.now());
    auto b =
        sharing.initiator().SubmitTask(payloads.back(), options, sharing.now());
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a == *b);
    ids.push_back(*b);
  }
  // Taken straight from the sessions: these bytes never reach the peer.
  const Drained a = Drain(copying.initiator());
  const Drained b = Drain(sharing.initiator());
  REQUIRE(!a.bytes.empty());
  CHECK(a.bytes == b.bytes);
  // The large payloads went out from the caller's buffer, not a copy.
  for (const SharedPayload& p : payloads) {
    bool referenced = false;
    for (absl::Span<const std::byte> span : b.spans) {
      referenced |= span.data() == p.bytes().data();
    }
    CHECK(referenced == (p.size() >= Session::kMinReferencedPayload));
  }
  // The caller lets go of its payloads: the store's references keep them.
  payloads.clear();

  // The connection dies with everything unsent: the resume replays it all.
  copying.Cut();
  sharing.Cut();
  auto received = [&](SessionPair& pair) {
    return pair.Count<TaskReceived>(Side::kAcceptor) == std::size(sizes);
  };
  REQUIRE(copying.RunUntil([&] { return received(copying); }));
  REQUIRE(sharing.RunUntil([&] { return received(sharing); }));
  const auto& ca = copying.Find<TaskReceived>(Side::kAcceptor);
  const auto& sa = sharing.Find<TaskReceived>(Side::kAcceptor);
  REQUIRE(ca.size() == sa.size());
  for (size_t i = 0; i < ca.size(); ++i) {
    CHECK(sa[i]->frame_bytes == ca[i]->frame_bytes);
    CHECK(sa[i]->payload == Bytes(sizes[i], static_cast<char>('A' + i)));
    // The replayed frame is the one first sent.
    const std::vector<std::byte>& f = sa[i]->frame_bytes;
    CHECK(std::search(b.bytes.begin(), b.bytes.end(), f.begin(), f.end()) !=
          b.bytes.end());
  }
}

TEST_CASE("shared payload: responses by reference, released once acked",
          "[session][shared_payload]") {
  SessionPair pair(Fast());
  REQUIRE(pair.Handshake());
  auto task = pair.Submit(Side::kInitiator, "go");
  REQUIRE(task.ok());
  REQUIRE(pair.RunUntil(
      [&] { return pair.Count<TaskReceived>(Side::kAcceptor) == 1; }));
  const SharedPayload part(Bytes(20000, 'p'));
  const SharedPayload last(Bytes(4096, 'q'));
  // The same buffer twice: each send is its own frame (and checksum).
  for (int i = 0; i < 2; ++i) {
    REQUIRE(pair.Do(Side::kAcceptor,
                    [&](Session& s, absl::Time now) {
                      return s.SendResponse(*task, part, false, now);
                    })
                .ok());
  }
  REQUIRE(pair.Do(Side::kAcceptor,
                  [&](Session& s, absl::Time now) {
                    return s.SendResponse(*task, last, true, now);
                  })
              .ok());
  CHECK(part.owner().use_count() > 1);  // the replay store holds it
  REQUIRE(pair.RunUntil([&] {
    return pair.FindTask<ResponseReceived>(Side::kInitiator, *task).size() == 3;
  }));
  const auto responses =
      pair.FindTask<ResponseReceived>(Side::kInitiator, *task);
  CHECK(responses[0]->payload == part.view());
  CHECK(responses[1]->payload == part.view());
  CHECK(responses[2]->payload == last.view());
  // Acknowledged: the store dropped its references.
  REQUIRE(pair.RunUntil(
      [&] { return pair.acceptor()->replay_frames_in_use() == 0; }));
  CHECK(part.owner().use_count() == 1);
  CHECK(last.owner().use_count() == 1);
}

// replay_bytes bounds referenced payloads exactly as copied ones: both
// paths accept the same frames, count the same bytes, refuse the same one.
TEST_CASE("shared payload: the send window counts referenced bytes",
          "[session][shared_payload][flow]") {
  PairOptions o = Fast();
  o.initiator.replay_bytes = 20000;
  for (const bool shared : {false, true}) {
    INFO("shared " << shared);
    SessionPair pair(o);
    REQUIRE(pair.Handshake());
    // The peer receives nothing, so nothing is acknowledged.
    pair.link()->Stall(testing::Dir::kToAcceptor,
                       pair.now() + absl::Seconds(1));
    const SharedPayload payload(Bytes(6000, 's'));
    int accepted = 0;
    absl::Status refused;
    for (int i = 0; i < 10 && refused.ok(); ++i) {
      auto id = pair.Do(Side::kInitiator, [&](Session& s, absl::Time now) {
        return shared ? s.SubmitTask(payload, {}, now)
                      : s.SubmitTask(payload.bytes(), {}, now);
      });
      if (id.ok()) {
        ++accepted;
      } else {
        refused = id.status();
      }
    }
    CHECK(accepted == 3);
    CHECK(GetErrorCode(refused) == ErrorCode::kReplayBufferFull);
    const uint64_t in_use = pair.initiator().replay_bytes_in_use();
    CHECK(in_use > 3 * 6000);
    CHECK(in_use <= 20000);
    // A refused frame leaves no reference behind.
    CHECK(payload.owner().use_count() == (shared ? 1 + accepted : 1));
    REQUIRE(pair.RunUntil(
        [&] { return pair.initiator().replay_frames_in_use() == 0; }));
    CHECK(payload.owner().use_count() == 1);
  }
}

}  // namespace
}  // namespace symwire
