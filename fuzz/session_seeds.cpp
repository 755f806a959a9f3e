// File: fuzz/session_seeds.cpp
// Writes the gen-* seeds of fuzz/corpus/session_handshake/: real handshakes
// between two sessions, recorded. It builds exactly the sessions the target
// builds (same configs, seeds and clock; fuzz/session_fuzz.hpp), lets them
// talk, and stores what each side received, so that replaying a seed makes
// the target's sessions go through the same complete handshake (fresh, or a
// resume with replay) before the fuzzer mutates it. Seeds only: the golden
// vectors are never generated from the code under test (STYLE.md §6).
// Usage: fuzz_session_seeds CORPUS_DIR (writes CORPUS_DIR/session_handshake/
// gen-* and CORPUS_DIR/endpoint/gen-*; make_seeds.py --session BINARY runs
// it).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "session_fuzz.hpp"
#include "symwire/session/endpoint.hpp"
#include "symwire/session/session.hpp"

namespace {

using symwire::SessionSide;
using symwire::fuzz::AuthKind;
using symwire::fuzz::CheckedSession;

struct Conversation {
  std::vector<std::byte> to_acceptor;
  std::vector<std::byte> to_initiator;
};

void Append(std::vector<std::byte>& to, const std::vector<std::byte>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

// Runs initiator <-> a fresh acceptor accepted by `server` (connection
// `handle`) like session_handshake.cpp: the acceptor's bytes go through the
// Endpoint until it decides; a resume moves the connection to the
// registered session `registered`.
Conversation Converse(CheckedSession& init, CheckedSession& fresh,
                      symwire::fuzz::FuzzServer& server,
                      symwire::ConnectionHandle handle,
                      CheckedSession* registered, absl::Time now) {
  Conversation c;
  init.set_capture(true);
  fresh.set_capture(true);
  if (registered != nullptr) registered->set_capture(true);
  CheckedSession* acceptor = &fresh;
  bool handshaking = true;
  for (int i = 0; i < 64; ++i) {
    std::vector<std::byte> to_init = fresh.TakeOutput();
    if (acceptor != &fresh) Append(to_init, acceptor->TakeOutput());
    const std::vector<std::byte> to_acc = init.TakeOutput();
    if (to_init.empty() && to_acc.empty()) break;
    if (!to_acc.empty()) {
      Append(c.to_acceptor, to_acc);
      if (!handshaking) {
        acceptor->Receive(to_acc, now);
      } else {
        if (registered != nullptr) {
          // What the registered session wrote before belongs to its old
          // connection.
          registered->TakeOutput();
        }
        const symwire::ConnectionOutcome o =
            fresh.ReceiveRouted(server.endpoint(), handle, to_acc, now);
        handshaking = std::holds_alternative<symwire::HandshakeRunning>(o);
        if (const auto* r = std::get_if<symwire::ConnectionRejected>(&o)) {
          std::fprintf(stderr, "rejected: %s\n", r->status.ToString().c_str());
          std::exit(1);
        }
        if (std::holds_alternative<symwire::SessionResumed>(o)) {
          fresh.Drain(now);
          registered->TakeConnectionFrom(fresh);
          registered->Drain(now);
          acceptor = registered;
        }
      }
    }
    if (!to_init.empty()) {
      Append(c.to_initiator, to_init);
      init.Receive(to_init, now);
    }
  }
  return c;
}

bool Write(const std::string& dir, const std::string& name, uint8_t mode,
           uint8_t split, const Conversation& c) {
  std::vector<std::byte> file;
  const size_t n = c.to_acceptor.size();
  if (n > 0xFFFF) return false;
  for (uint8_t b : {mode, split, uint8_t{0}, static_cast<uint8_t>(n >> 8),
                    static_cast<uint8_t>(n & 0xFF)}) {
    file.push_back(static_cast<std::byte>(b));
  }
  Append(file, c.to_acceptor);
  Append(file, c.to_initiator);
  const std::string path = dir + "/gen-" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const size_t w = std::fwrite(file.data(), 1, file.size(), f);
  return std::fclose(f) == 0 && w == file.size();
}

const char* AuthName(AuthKind a) {
  switch (a) {
    case AuthKind::kToken:
      return "token";
    case AuthKind::kHmac:
      return "hmac";
    case AuthKind::kNone:
      break;
  }
  return "none";
}

const char* RolesName(unsigned r) {
  switch (r) {
    case 1:
      return "agent-orch";
    case 2:
      return "peer-peer";
    default:
      return "orch-agent";
  }
}

}  // namespace

// The endpoint target's seeds: operation lists (layout at the top of
// fuzz/endpoint.cpp). The target computes proofs itself, so these need no
// recorded bytes.
bool WriteEndpointSeeds(const std::string& dir, int* written) {
  struct Seed {
    const char* name;
    std::vector<uint8_t> ops;
  };
  // 0 accept (8: on shard 1 when sharded); 2 k last: HELLO (10: unknown
  // id); 3 k how: PROOF (0 token, 1 forged, 2 zero); 4 ms: clock; 5 k:
  // lost; 6: Remove; 7: expire. Control byte: 1 half-open, 4 sharded.
  const std::vector<Seed> seeds = {
      {"resume", {0, 0, 2, 0, 7, 3, 0, 0, 4, 5}},
      {"resume-half-open", {1, 0, 2, 0, 7, 3, 0, 0, 4, 5}},
      {"race", {0, 0, 0, 2, 0, 7, 2, 1, 7, 3, 0, 0, 3, 1, 0}},
      {"race-reversed", {0, 0, 0, 2, 0, 7, 2, 1, 7, 3, 1, 0, 3, 0, 0}},
      {"supersede-twice", {1, 0, 2, 0, 7, 3, 0, 0, 0, 2, 1, 7, 3, 1, 0}},
      {"forged", {0, 0, 2, 0, 7, 3, 0, 1, 0, 2, 1, 7, 3, 1, 0}},
      {"zero-token", {0, 0, 2, 0, 7, 3, 0, 2}},
      {"expired", {0, 7, 0, 2, 0, 7, 3, 0, 0}},
      {"removed", {0, 6, 0, 2, 0, 7, 3, 0, 0}},
      {"unknown", {0, 0, 10, 0, 7, 3, 0, 0}},
      {"lost-then-resume", {0, 0, 2, 0, 7, 5, 0, 0, 2, 1, 7, 3, 1, 0}},
      // Sharded (control bit 2; 8: accept on shard 1): resumes handed
      // from shard 1 to shard 0, one racing a resume on shard 0.
      {"sharded-resume", {4, 8, 2, 0, 7, 3, 0, 0, 4, 5}},
      {"sharded-race", {4, 8, 0, 2, 0, 7, 2, 1, 7, 3, 0, 0, 3, 1, 0}},
      {"sharded-race-reversed", {4, 8, 0, 2, 0, 7, 2, 1, 7, 3, 1, 0, 3, 0, 0}},
      {"sharded-supersede", {5, 8, 2, 0, 7, 3, 0, 0}},
      {"sharded-forged", {4, 8, 2, 0, 7, 3, 0, 1, 8, 10, 1, 7, 3, 1, 0}},
      {"flood",
       {0, 0,    0,    0, 0,   0, 0,   1, 0,   3, 0x89, 0x53, 0x59, 1, 1,
        2, 0x89, 0x53, 4, 200, 4, 200, 4, 200, 4, 200,  4,    200,  0, 0}},
  };
  for (const Seed& seed : seeds) {
    const std::string path = dir + "/gen-" + seed.name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return false;
    const size_t w = std::fwrite(seed.ops.data(), 1, seed.ops.size(), f);
    if (std::fclose(f) != 0 || w != seed.ops.size()) return false;
    ++*written;
  }
  return true;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = std::string(argv[1]) + "/session_handshake";
  bool ok = true;
  int written = 0;
  for (unsigned auth = 0; auth < 3; ++auth) {
    for (unsigned roles = 0; roles < 3; ++roles) {
      const AuthKind a = symwire::fuzz::AuthFor(auth);
      const auto r = symwire::fuzz::RolesFor(roles);
      const uint8_t base = static_cast<uint8_t>(auth | (roles << 2));
      const std::string stem = absl::StrCat(AuthName(a), "-", RolesName(roles));
      // A new session: the target's initiator and first fresh acceptor.
      {
        const absl::Time now = symwire::fuzz::FuzzEpoch();
        CheckedSession init(
            symwire::fuzz::FuzzConfig(SessionSide::kInitiator, r.initiator, a,
                                      symwire::fuzz::kInitiatorSeed),
            now);
        init.set_capture(true);
        init.TransportConnected(now);
        symwire::fuzz::FuzzServer server(r.acceptor, a, true);
        symwire::ConnectionHandle handle = 0;
        auto fresh = server.Accept(symwire::fuzz::kFreshSeed, now, &handle);
        fresh->set_capture(true);
        fresh->NewConnection();
        fresh->Drain(now);
        const Conversation c =
            Converse(init, *fresh, server, handle, nullptr, now);
        ok = ok && Write(dir, "new-" + stem, base, 0, c);
        ok = ok && Write(dir, "new-" + stem + "-bytewise", base, 1, c);
        written += 2;
      }
      // A resume (both sides told of the loss, or the acceptor half-open).
      for (const bool half_open : {false, true}) {
        symwire::fuzz::PairSpec spec;
        spec.roles = r;
        spec.auth = a;
        symwire::fuzz::FuzzServer server(r.acceptor, a, true);
        symwire::fuzz::Pair p = symwire::fuzz::BuildPair(spec, &server);
        p.initiator->set_capture(true);
        symwire::fuzz::Reconnect(p, half_open);
        symwire::ConnectionHandle handle = 0;
        auto fresh = server.Accept(symwire::fuzz::kFreshSeed, p.now, &handle);
        fresh->set_capture(true);
        fresh->NewConnection();
        fresh->Drain(p.now);
        const Conversation c = Converse(*p.initiator, *fresh, server, handle,
                                        p.acceptor.get(), p.now);
        const uint8_t mode =
            static_cast<uint8_t>(base | 0x10 | (half_open ? 0x20 : 0));
        const std::string name =
            absl::StrCat("resume-", stem, half_open ? "-half-open" : "");
        // Byte by byte, HELLO ends a Receive call, as with a real peer
        // (which waits for WELCOME before it replays). Whole, the replayed
        // frames reach the fresh session with HELLO and it refuses them
        // (SPEC.md §12.1): the error path.
        ok = ok && Write(dir, name, mode, 1, c);
        ok = ok && Write(dir, name + "-whole", mode, 0, c);
        written += 2;
      }
    }
  }
  ok = ok && WriteEndpointSeeds(std::string(argv[1]) + "/endpoint", &written);
  if (!ok) {
    std::fprintf(stderr, "fuzz_session_seeds: cannot write to %s\n",
                 dir.c_str());
    return 1;
  }
  std::printf("fuzz_session_seeds: %d seeds in %s\n", written, dir.c_str());
  return 0;
}
