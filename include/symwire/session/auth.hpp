// File: symwire/session/auth.hpp
// Layer 2 (session). Pluggable authentication of the handshake (SPEC.md
// §12.3): the Authenticator interface and the three methods of version 1 —
// none, shared token, and HMAC-SHA256 challenge-response (OpenSSL's
// libcrypto; the secret never crosses the wire). Pure computations over
// bytes: no I/O, no clock; nonces come from the session's injected random
// source through AuthContext.
#ifndef SYMWIRE_SESSION_AUTH_HPP_
#define SYMWIRE_SESSION_AUTH_HPP_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "symwire/config.hpp"
#include "symwire/session/control.hpp"

namespace symwire {

// AuthContext
// What both sides know when a method computes or checks auth_data: the
// initiator's nonce (HELLO), the acceptor's nonce (CHALLENGE / WELCOME;
// all-zero until the acceptor chose it) and the initiator's agent_id.
struct AuthContext {
  Nonce client_nonce{};
  Nonce server_nonce{};
  absl::string_view initiator_agent_id;
};

// AuthDecision
// The acceptor's answer to a HELLO: accept at once (WELCOME carries
// `data` as its auth_data) or challenge (CHALLENGE carries `data`).
struct AuthDecision {
  enum class Kind : uint8_t { kAccept, kChallenge };
  Kind kind = Kind::kAccept;
  std::string data;
};

// Authenticator
// One authentication method, used by both sides of a handshake:
//
//   initiator: ClientHello() -> HELLO.auth_data
//   acceptor : ServerHello(HELLO.auth_data) -> accept | challenge
//   initiator: ClientProof(CHALLENGE.auth_data) -> PROOF.auth_data
//   acceptor : ServerVerifyProof(PROOF.auth_data) -> WELCOME.auth_data
//   initiator: ClientVerifyWelcome(WELCOME.auth_data)
//
// Methods without a challenge round (none, token) answer ClientProof and
// ServerVerifyProof with UNAUTHENTICATED: the session never calls them for
// those methods, and a peer that sends CHALLENGE/PROOF anyway is refused.
//
// Every check that fails returns UNAUTHENTICATED (kUnauthenticated, error
// code 105) with a lowercase message that never contains secret material
// (a size may appear; key, token and expected proofs never do). No method
// returns any other error. Implementations must be thread-safe for
// concurrent const calls: one instance is shared by every session of a
// server. auth_data values are at most 1024 bytes. Arguments are not kept
// past the call.
class Authenticator {
 public:
  virtual ~Authenticator() = default;

  // The method id sent in HELLO (SPEC.md §12.3).
  virtual AuthMethod method() const = 0;

  // HasChallenge
  // True if ServerHello answers with a challenge (kChallenge), so that the
  // initiator computes ClientProof on a CHALLENGE. A resuming handshake
  // always has a CHALLENGE round (SPEC.md §16.2); for a method without
  // one (the default, as for none and token) the PROOF of that round
  // carries no auth_data and neither ClientProof nor ServerVerifyProof is
  // called. A method that challenges must override this.
  virtual bool HasChallenge() const { return false; }

  virtual absl::StatusOr<std::string> ClientHello(
      const AuthContext& context) const = 0;
  virtual absl::StatusOr<AuthDecision> ServerHello(
      absl::Span<const std::byte> auth_data,
      const AuthContext& context) const = 0;
  virtual absl::StatusOr<std::string> ClientProof(
      absl::Span<const std::byte> challenge,
      const AuthContext& context) const = 0;
  virtual absl::StatusOr<std::string> ServerVerifyProof(
      absl::Span<const std::byte> proof, const AuthContext& context) const = 0;
  virtual absl::Status ClientVerifyWelcome(
      absl::Span<const std::byte> auth_data,
      const AuthContext& context) const = 0;
};

// NoAuthenticator
// Method 0: no credentials. ClientHello returns empty; ServerHello accepts
// an empty auth_data at once (WELCOME without auth_data) and rejects any
// other (a peer that sends credentials expected them checked);
// ClientVerifyWelcome requires an empty auth_data. Returns one shared,
// stateless instance.
SYMWIRE_DECL std::shared_ptr<const Authenticator> NoAuthenticator();

// TokenAuthenticator
// Method 1: ClientHello returns `token`; ServerHello compares HELLO's
// auth_data with its own token (lengths first, then contents in time
// independent of where they differ: detail::ConstantTimeEquals) and
// accepts with an empty WELCOME auth_data, or fails with "token mismatch";
// ClientVerifyWelcome requires an empty auth_data. The token crosses the
// wire: use it over TLS or a local channel only. The instance keeps a copy
// of the token and wipes it when destroyed.
// REQUIRES: 1 <= token.size() <= 1024.
SYMWIRE_DECL std::shared_ptr<const Authenticator> TokenAuthenticator(
    std::string token);

// HmacAuthenticator
// Method 2: HMAC-SHA256 challenge-response with mutual proof (SPEC.md
// §12.3). The nonces travel in the nonce parameter of HELLO and CHALLENGE,
// not in auth_data, and reach the method through AuthContext:
//   ClientHello         -> empty
//   ServerHello         requires empty auth_data -> kChallenge, empty data
//   ClientProof         requires empty challenge auth_data -> 32 bytes
//                       HMAC-SHA256(key, "symwire-hmac-v1 client" || Nc ||
//                       Ns || initiator_agent_id)
//   ServerVerifyProof   requires that proof (compared in constant time)
//                       -> 32 bytes, the same HMAC with the label
//                       "symwire-hmac-v1 server"
//   ClientVerifyWelcome requires that server proof (constant time)
// A proof of the wrong size, a mismatch, or a non-empty auth_data where an
// empty one is expected is UNAUTHENTICATED. The instance keeps a copy of
// the key and wipes it when destroyed.
// REQUIRES: !key.empty() (32 random bytes or more is advised) and
// key.size() <= INT_MAX.
SYMWIRE_DECL std::shared_ptr<const Authenticator> HmacAuthenticator(
    std::string key);

// AuthenticatorFromSpec
// The authentication method named by a one-line text, for programs that take
// it from a flag or an environment variable (the stdio examples read
// SYMWIRE_STDIO_AUTH), so that both ends of a connection agree:
//   ""  or "none"      NoAuthenticator()
//   "token:SECRET"     TokenAuthenticator(SECRET), 1..1024 bytes
//   "hmac:KEY"         HmacAuthenticator(KEY), at least 1 byte
// Anything else is INVALID_ARGUMENT with a message naming the method prefix,
// the byte offset of the problem and the secret's size, never the secret
// itself (a spec without a known prefix is named only by its size: it may
// be a secret pasted without its prefix). Thread-safe.
SYMWIRE_DECL absl::StatusOr<std::shared_ptr<const Authenticator>>
AuthenticatorFromSpec(absl::string_view spec);

// ComputeResumeProof
// The proof of possession of a session's resume token (SPEC.md §16.2):
//   HMAC-SHA256(token, label || Nc || Ns || session_id || L)
// where label is the ASCII "symwire-resume-v1 client" (the initiator's
// PROOF, L its last_received) or "symwire-resume-v1 server" (the resumed
// WELCOME, L the acceptor's last_received), Nc and Ns are the connection's
// nonces and L is 8 bytes big-endian. Every part has a fixed size, so the
// input needs no separators. Errors: UNAUTHENTICATED only if libcrypto
// cannot compute HMAC-SHA256. Thread-safe.
enum class ResumeProofSide : uint8_t { kClient, kServer };
SYMWIRE_DECL absl::StatusOr<ResumeProof> ComputeResumeProof(
    const ResumeToken& token, ResumeProofSide side, const Nonce& client_nonce,
    const Nonce& server_nonce, const SessionId& session_id,
    uint64_t last_received);

namespace detail {
// ConstantTimeEquals
// True if `a` and `b` hold the same bytes. False at once if their sizes
// differ (a size is not a secret); otherwise the time taken depends on the
// size only, not on the contents (CRYPTO_memcmp). Empty spans are equal.
// Does not allocate. Thread-safe.
SYMWIRE_DECL bool ConstantTimeEquals(absl::Span<const std::byte> a,
                                     absl::Span<const std::byte> b) noexcept;
}  // namespace detail

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/session/impl/auth.ipp"
#endif

#endif  // SYMWIRE_SESSION_AUTH_HPP_
