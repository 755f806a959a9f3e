// Golden handshake transcripts (tests/vectors/session_transcripts.md): real
// Sessions, configured and seeded as each vector says, replay the vector's
// steps on a clock that never moves; every byte they write is compared
// with the bytes the independent reference (tools/vectors_ref.py, written
// from SPEC.md) computed, and every event with the vector's. Each `in` is
// fed whole, one byte at a time, and split in two at every offset.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "symwire/error.hpp"
#include "symwire/session/auth.hpp"
#include "symwire/session/config.hpp"
#include "symwire/session/event.hpp"
#include "symwire/session/session.hpp"
#include "tests/support/vectors.hpp"

namespace symwire {
namespace {

using testing::FromLogHex;
using testing::LoadVectorFile;
using testing::LogLine;
using testing::SplitLogLine;
using testing::ToLogHex;
using testing::Vector;

constexpr char kFile[] = "session_transcripts.md";

// The one instant every call happens at (the sessions' clocks never move).
absl::Time T0() { return absl::FromUnixSeconds(1'700'000'000); }

uint64_t ParseU64(const std::string& text) {
  size_t used = 0;
  const uint64_t v = std::stoull(text, &used, 0);
  if (used != text.size()) throw std::runtime_error("not a number: " + text);
  return v;
}

uint32_t ParseU32(const std::string& text) {
  const uint64_t v = ParseU64(text);
  if (v > std::numeric_limits<uint32_t>::max()) {
    throw std::runtime_error("out of range: " + text);
  }
  return static_cast<uint32_t>(v);
}

absl::Duration Micros(const std::string& text) {
  return absl::Microseconds(static_cast<int64_t>(ParseU64(text)));
}

std::string AsString(const std::vector<std::byte>& bytes) {
  std::string out;
  for (std::byte b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

// The configurations of the sides a vector's options describe (see the
// file's header). Throws on an unknown option or a missing field.
std::map<std::string, SessionConfig> Configs(const Vector& v) {
  struct Partial {
    SessionConfig config;
    std::string auth = "none";
    std::string secret;
    size_t fields = 0;
  };
  std::map<std::string, Partial> sides;
  for (const auto& [key, value] : v.options) {
    const size_t dot = key.find('.');
    const std::string side = key.substr(0, dot);
    const std::string field =
        dot == std::string::npos ? "" : key.substr(dot + 1);
    if (side != "initiator" && side != "acceptor") {
      throw std::runtime_error("unknown option " + key);
    }
    Partial& p = sides[side];
    SessionConfig& c = p.config;
    c.side =
        side == "initiator" ? SessionSide::kInitiator : SessionSide::kAcceptor;
    ++p.fields;
    if (field == "seed") {
      c.random = SeededRandom(ParseU64(value));
    } else if (field == "role") {
      if (value == "orchestrator") {
        c.role = AgentRole::kOrchestrator;
      } else if (value == "agent") {
        c.role = AgentRole::kAgent;
      } else if (value == "peer") {
        c.role = AgentRole::kPeer;
      } else {
        throw std::runtime_error("unknown role " + value);
      }
    } else if (field == "agent_id") {
      c.agent_id = value;
    } else if (field == "min_version") {
      c.min_version = ParseU64(value);
    } else if (field == "max_version") {
      c.max_version = ParseU64(value);
    } else if (field == "auth") {
      p.auth = value;
    } else if (field == "auth_secret") {
      p.secret = AsString(FromLogHex(value));
    } else if (field == "capabilities") {
      c.capabilities = ParseU64(value);
    } else if (field == "payload_checksums") {
      c.payload_checksums = ParseU64(value) != 0;
    } else if (field == "max_tasks") {
      c.max_tasks = ParseU32(value);
    } else if (field == "max_payload_bytes") {
      c.max_payload_bytes = ParseU64(value);
    } else if (field == "max_header_bytes") {
      c.max_header_bytes = ParseU32(value);
    } else if (field == "max_extensions") {
      c.max_extensions = ParseU32(value);
    } else if (field == "replay_bytes") {
      c.replay_bytes = ParseU64(value);
    } else if (field == "replay_frames") {
      c.replay_frames = ParseU64(value);
    } else if (field == "handshake_timeout_us") {
      c.handshake_timeout = Micros(value);
    } else if (field == "ping_interval_us") {
      c.ping_interval = Micros(value);
    } else if (field == "min_peer_ping_interval_us") {
      c.min_peer_ping_interval = Micros(value);
    } else if (field == "dead_peer_timeout_us") {
      c.dead_peer_timeout = Micros(value);
    } else if (field == "ack_delay_us") {
      c.ack_delay = Micros(value);
    } else if (field == "resume_window_us") {
      c.resume_window = Micros(value);
    } else if (field == "max_ping_strikes") {
      c.max_ping_strikes = ParseU32(value);
    } else if (field == "error_message" || field == "fresh_seed") {
      --p.fields;  // informative: it is in the expected bytes / FreshSeed
    } else {
      throw std::runtime_error("unknown option " + key);
    }
  }
  std::map<std::string, SessionConfig> out;
  for (auto& [side, p] : sides) {
    constexpr size_t kFields = 22;  // every field of the header's table
    if (p.fields != kFields) {
      throw std::runtime_error(
          absl::StrCat(side, ": ", p.fields, " options, need ", kFields));
    }
    if (p.auth == "none") {
      p.config.authenticator = NoAuthenticator();
    } else if (p.auth == "token") {
      p.config.authenticator = TokenAuthenticator(p.secret);
    } else if (p.auth == "hmac") {
      p.config.authenticator = HmacAuthenticator(p.secret);
    } else {
      throw std::runtime_error("unknown auth " + p.auth);
    }
    out.emplace(side, std::move(p.config));
  }
  return out;
}

// The seed of the k-th fresh acceptor session (k from 0) the server creates
// for a connection after the first: acceptor.fresh_seed + k.
uint64_t FreshSeed(const Vector& v, size_t k) {
  for (const auto& [key, value] : v.options) {
    if (key == "acceptor.fresh_seed") return ParseU64(value) + k;
  }
  throw std::runtime_error(
      "a second acceptor connection needs "
      "acceptor.fresh_seed");
}

// A byte range of the hex block: "OFFSET+LENGTH" or "-".
struct Range {
  size_t offset = 0;
  size_t length = 0;
};

Range ParseRange(const std::string& text) {
  if (text == "-") return {};
  const size_t plus = text.find('+');
  if (plus == std::string::npos) throw std::runtime_error("bad range " + text);
  return {static_cast<size_t>(ParseU64(text.substr(0, plus))),
          static_cast<size_t>(ParseU64(text.substr(plus + 1)))};
}

std::string EventLine(const std::string& side, const Event& event,
                      const Session& session) {
  std::string out = absl::StrCat("event side=", side, " type=");
  if (const auto* e = std::get_if<Established>(&event)) {
    const PeerInfo& p = session.peer();
    absl::StrAppend(&out, "Established resumed=", e->resumed ? 1 : 0,
                    " replayed=", e->replayed_frames, " peer_agent_id=",
                    ToLogHex(absl::MakeConstSpan(
                        reinterpret_cast<const std::byte*>(p.agent_id.data()),
                        p.agent_id.size())),
                    " peer_role=", static_cast<int>(p.role),
                    " version=", p.version,
                    " negotiated_capabilities=", p.negotiated_capabilities,
                    " session_id=", ToLogHex(session.session_id()));
  } else if (const auto* t = std::get_if<TaskReceived>(&event)) {
    absl::StrAppend(
        &out, "TaskReceived task=", t->task,
        " payload=", ToLogHex(t->payload()), " deadline_us=",
        t->deadline
            ? absl::StrCat(absl::ToInt64Microseconds(*t->deadline - T0()))
            : "-");
  } else if (const auto* r = std::get_if<ResponseReceived>(&event)) {
    absl::StrAppend(&out, "ResponseReceived task=", r->task,
                    " final=", r->final ? 1 : 0,
                    " payload=", ToLogHex(r->payload));
  } else if (const auto* l = std::get_if<ConnectionLost>(&event)) {
    absl::StrAppend(
        &out, "ConnectionLost error=", ErrorCodeName(GetErrorCode(l->status)));
  } else if (const auto* q = std::get_if<ResumeRequested>(&event)) {
    absl::StrAppend(&out,
                    "ResumeRequested session_id=", ToLogHex(q->session_id));
  } else if (const auto* d = std::get_if<PeerDraining>(&event)) {
    absl::StrAppend(&out, "PeerDraining last_accepted=", d->last_accepted);
  } else if (const auto* c = std::get_if<TaskCancelled>(&event)) {
    absl::StrAppend(&out, "TaskCancelled task=", c->task,
                    " status=", absl::StatusCodeToString(c->status.code()));
  } else if (const auto* f = std::get_if<SessionFailed>(&event)) {
    absl::StrAppend(
        &out,
        "SessionFailed status=", absl::StatusCodeToString(f->status.code()),
        " error=", ErrorCodeName(GetErrorCode(f->status)), " affected=",
        f->affected_tasks.empty() ? "-"
                                  : absl::StrJoin(f->affected_tasks, ","));
  } else {
    absl::StrAppend(&out, EventName(event));
  }
  return out;
}

// How the `in` bytes of the receive steps are cut into Receive calls.
struct Feeding {
  bool bytewise = false;
  // Receive step `step` (counted from 0) is split in two at `at`.
  size_t step = std::numeric_limits<size_t>::max();
  size_t at = 0;

  std::string Describe() const {
    if (bytewise) return "byte by byte";
    if (step == std::numeric_limits<size_t>::max()) return "whole";
    return absl::StrCat("receive step ", step, " split at ", at);
  }
};

// Replays the steps of `v` on real sessions and returns the log they
// produce, in the vector's format: a step line repeats the vector's `out`
// range when the bytes written are exactly the range's, and gives the
// written bytes in hex otherwise.
//
// The acceptor side is a server, as the file's header describes: its first
// connection goes to the "acceptor" session itself; every later one to a
// fresh acceptor session (seeded acceptor.fresh_seed + k), which, once it
// reports ResumeRequested, the server answers at once with the hand-over an
// Endpoint makes (detail::SessionHandover::Adopt(acceptor, fresh)) — or
// RejectUnknown(fresh) after a `forget` step (the session is unknown). Steps of
// side=acceptor go to the session at the acceptor end of the current
// connection.
std::vector<std::string> Replay(const Vector& v, const Feeding& feeding) {
  std::map<std::string, std::unique_ptr<Session>> sessions;
  std::optional<SessionConfig> acceptor_config;
  for (auto& [side, config] : Configs(v)) {
    if (side == "acceptor") acceptor_config = config;
    auto s = Session::Create(std::move(config), T0());
    if (!s.ok()) throw std::runtime_error(s.status().ToString());
    sessions.emplace(side, *std::move(s));
  }
  std::vector<std::unique_ptr<Session>> fresh;
  Session* acceptor_end = nullptr;
  bool forgotten = false;
  std::vector<std::string> log;
  size_t receive_steps = 0;
  for (const std::string& text : v.log) {
    const LogLine want = SplitLogLine(text);
    if (want.name == "event") continue;
    const std::string side = *want.Find("side");
    auto it = sessions.find(side);
    if (it == sessions.end()) throw std::runtime_error("no session: " + text);
    Session* sp = it->second.get();
    if (side == "acceptor" && acceptor_end != nullptr) sp = acceptor_end;
    std::vector<std::byte> out;
    std::vector<std::string> events;
    std::vector<std::string> fields;
    std::string status = "OK";
    auto drain_session = [&](Session& d) {
      for (auto span = d.PollTransmit(); !span.empty();
           span = d.PollTransmit()) {
        out.insert(out.end(), span.begin(), span.end());
      }
      while (auto e = d.PollEvent()) events.push_back(EventLine(side, *e, d));
    };
    auto drain = [&] { drain_session(*sp); };
    if (want.name == "connect") {
      if (side == "acceptor" && it->second->counters().connections > 0) {
        SessionConfig c = *acceptor_config;
        c.random = SeededRandom(FreshSeed(v, fresh.size()));
        auto f = Session::Create(std::move(c), T0());
        if (!f.ok()) throw std::runtime_error(f.status().ToString());
        fresh.push_back(*std::move(f));
        sp = fresh.back().get();
      }
      if (side == "acceptor") acceptor_end = sp;
      status = sp->TransportConnected(T0()).ToString();
      drain();
    } else if (want.name == "lost") {
      sp->TransportLost(absl::UnavailableError("connection lost"), T0());
      drain();
    } else if (want.name == "forget") {
      forgotten = true;
    } else if (want.name == "close") {
      status = sp->Close(T0()).ToString();
      drain();
    } else if (want.name == "receive") {
      const std::string& in = *want.Find("in");
      fields.push_back("in=" + in);
      const Range r = ParseRange(in);
      const auto bytes =
          absl::MakeConstSpan(v.input).subspan(r.offset, r.length);
      std::vector<absl::Span<const std::byte>> chunks;
      if (feeding.bytewise) {
        for (size_t k = 0; k < bytes.size(); ++k) {
          chunks.push_back(bytes.subspan(k, 1));
        }
      } else if (feeding.step == receive_steps) {
        chunks = {bytes.subspan(0, feeding.at), bytes.subspan(feeding.at)};
      } else {
        chunks = {bytes};
      }
      ++receive_steps;
      absl::Status last;
      bool resume_requested = false;
      for (auto chunk : chunks) {
        last = sp->Receive(chunk, T0());
        const size_t before = events.size();
        drain();
        for (size_t k = before; k < events.size(); ++k) {
          resume_requested =
              resume_requested ||
              events[k].find("ResumeRequested") != std::string::npos;
        }
      }
      // Receive reports the error that ended the session (and keeps
      // returning it): it must be the one SessionFailed carried.
      status = last.ToString();
      if (sp->state() == SessionState::kFailed && sp->status() != last) {
        status += " (differs from the session's status)";
      }
      if (resume_requested) {
        // The server's registry answers (see above).
        Session& registered = *it->second;
        Session& f = *sp;
        if (forgotten) {
          detail::SessionHandover::RejectUnknown(f, T0());
          drain_session(f);
        } else {
          (void)detail::SessionHandover::Adopt(registered, f, false, T0());
          drain_session(f);
          drain_session(registered);
          if (f.state() == SessionState::kClosed) {
            acceptor_end = &registered;
            sp = &registered;
          }
        }
      }
    } else if (want.name == "submit") {
      const std::vector<std::byte> payload = FromLogHex(*want.Find("payload"));
      TaskOptions options;
      const std::string& deadline = *want.Find("deadline_us");
      if (deadline != "-") options.deadline = Micros(deadline);
      auto id = sp->SubmitTask(payload, options, T0());
      fields.push_back(id.ok() ? absl::StrCat("task=", *id)
                               : "task=<" + id.status().ToString() + ">");
      fields.push_back("payload=" + ToLogHex(payload));
      fields.push_back("deadline_us=" + deadline);
      drain();
    } else if (want.name == "respond") {
      const std::vector<std::byte> payload = FromLogHex(*want.Find("payload"));
      const TaskId task = ParseU64(*want.Find("task"));
      const bool final = *want.Find("final") == "1";
      status = sp->SendResponse(task, payload, final, T0()).ToString();
      fields.push_back(absl::StrCat("task=", task));
      fields.push_back(absl::StrCat("final=", final ? 1 : 0));
      fields.push_back("payload=" + ToLogHex(payload));
      drain();
    } else if (want.name == "cancel") {
      const TaskId task = ParseU64(*want.Find("task"));
      status = sp->CancelTask(task, T0()).ToString();
      fields.push_back(absl::StrCat("task=", task));
      drain();
    } else {
      throw std::runtime_error("unknown step: " + text);
    }
    const std::string& want_out = *want.Find("out");
    const Range r = ParseRange(want_out);
    const bool same = r.offset + r.length <= v.input.size() &&
                      absl::MakeConstSpan(v.input).subspan(
                          r.offset, r.length) == absl::MakeConstSpan(out);
    std::string line = absl::StrCat(want.name, " side=", side);
    for (const std::string& f : fields) absl::StrAppend(&line, " ", f);
    absl::StrAppend(&line, " out=", same ? want_out : ToLogHex(out),
                    " closing=", sp->ConnectionClosing() ? 1 : 0);
    log.push_back(line);
    // A failing call is expected only where the session fails.
    const bool failed = sp->state() == SessionState::kFailed;
    if (status != "OK" && !(want.name == "receive" && failed)) {
      log.push_back("unexpected status: " + status);
    }
    log.insert(log.end(), events.begin(), events.end());
  }
  return log;
}

// "" if `got` is the vector's log, else the first difference.
std::string FirstDifference(const std::vector<std::string>& want,
                            const std::vector<std::string>& got) {
  for (size_t k = 0; k < std::max(want.size(), got.size()); ++k) {
    const std::string w = k < want.size() ? want[k] : "(none)";
    const std::string g = k < got.size() ? got[k] : "(none)";
    if (w != g) {
      return absl::StrCat("log line ", k + 1, "\n  vector: ", w,
                          "\n  C++:    ", g);
    }
  }
  return "";
}

// Every way of feeding `v`: whole, byte by byte, and each receive step
// split in two at every offset.
std::vector<Feeding> Feedings(const Vector& v) {
  std::vector<Feeding> out = {Feeding{}, Feeding{.bytewise = true}};
  size_t step = 0;
  for (const std::string& text : v.log) {
    const LogLine line = SplitLogLine(text);
    if (line.name != "receive") continue;
    const Range r = ParseRange(*line.Find("in"));
    for (size_t at = 1; at < r.length; ++at) {
      out.push_back(Feeding{.step = step, .at = at});
    }
    ++step;
  }
  return out;
}

TEST_CASE("session transcript vectors", "[transcript][session]") {
  const std::vector<Vector> vectors = LoadVectorFile(kFile);
  // The transcripts the file must hold (SPEC.md §12, §13, §14.2).
  std::vector<std::string> names;
  for (const Vector& v : vectors) names.push_back(v.name);
  for (const char* required :
       {"new session, auth none", "new session, token auth",
        "new session, HMAC-SHA256", "version mismatch", "incompatible roles",
        "frame before the handshake", "oversized frame before the handshake",
        "one task after the handshake", "empty payloads and a cancel",
        "resume after a lost connection", "resume of an unknown session",
        "resume with a wrong proof", "resume with a stale last_received",
        "close: bye answered by bye"}) {
    INFO("required vector: " << required);
    CHECK(std::find(names.begin(), names.end(), required) != names.end());
  }
  for (const Vector& v : vectors) {
    DYNAMIC_SECTION(v.name) {
      size_t runs = 0;
      std::string first_failure;
      size_t failures = 0;
      for (const Feeding& f : Feedings(v)) {
        ++runs;
        const std::string diff = FirstDifference(v.log, Replay(v, f));
        if (diff.empty()) continue;
        if (++failures == 1) first_failure = f.Describe() + ": " + diff;
      }
      INFO(kFile << ": " << v.name << " (" << runs << " feedings)");
      INFO("first failure: " << first_failure);
      CHECK(failures == 0);
    }
  }
}

TEST_CASE("SeededRandom is the SplitMix64 the transcripts assume",
          "[transcript][session]") {
  // The file header's description: SplitMix64 outputs written
  // little-endian, a draw's last output truncated and the rest of it
  // dropped. Published values of seed 1477776061723855037 (rand_xoshiro's
  // reference test of Vigna's splitmix64.c).
  const uint64_t kPublished[] = {1985237415132408290u, 2979275885539914483u,
                                 13511426838097143398u};
  auto little_endian = [](uint64_t x) {
    std::vector<std::byte> out;
    for (int k = 0; k < 8; ++k) {
      out.push_back(static_cast<std::byte>((x >> (8 * k)) & 0xFF));
    }
    return out;
  };
  std::vector<std::byte> want;
  for (uint64_t x : kPublished) {
    const auto b = little_endian(x);
    want.insert(want.end(), b.begin(), b.end());
  }
  RandomSource whole = SeededRandom(1477776061723855037u);
  std::vector<std::byte> got(24);
  whole(absl::MakeSpan(got));
  CHECK(ToLogHex(got) == ToLogHex(want));

  RandomSource parts = SeededRandom(1477776061723855037u);
  std::vector<std::byte> three(3), next(8);
  parts(absl::MakeSpan(three));
  parts(absl::MakeSpan(next));
  CHECK(ToLogHex(three) == ToLogHex(absl::MakeConstSpan(want).subspan(0, 3)));
  CHECK(ToLogHex(next) == ToLogHex(absl::MakeConstSpan(want).subspan(8, 8)));
}

}  // namespace
}  // namespace symwire
