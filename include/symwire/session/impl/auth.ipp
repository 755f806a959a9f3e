// File: symwire/session/impl/auth.ipp
// Out-of-line bodies of auth.hpp: the three authentication methods of
// SPEC.md §12.3 over OpenSSL's libcrypto (HMAC-SHA256, CRYPTO_memcmp,
// OPENSSL_cleanse). Secrets are held in immutable objects, wiped on
// destruction, and never copied into a status message.
#ifndef SYMWIRE_SESSION_IMPL_AUTH_IPP_
#define SYMWIRE_SESSION_IMPL_AUTH_IPP_

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <climits>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "symwire/error.hpp"
#include "symwire/session/auth.hpp"

namespace symwire {
namespace detail {
// Helpers and the three implementations, in a namespace of their own so
// that they cannot collide with other impl/*.ipp compiled in the same TU.
namespace auth {

inline constexpr size_t kHmacSha256Size = 32;

SYMWIRE_COLD inline absl::Status Unauthenticated(absl::string_view why) {
  return MakeError(ErrorCode::kUnauthenticated, why);
}

inline absl::Span<const std::byte> AsBytes(absl::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// The view of a string's bytes as a span, for ConstantTimeEquals.
inline absl::Span<const std::byte> AsBytes(const std::string& s) {
  return AsBytes(absl::string_view(s.data(), s.size()));
}

// Wipes a string holding a secret before its memory is released;
// OPENSSL_cleanse cannot be optimised away like a plain memset.
inline void Cleanse(std::string& s) noexcept {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

// Methods 0 and 1 have no CHALLENGE/PROOF round (SPEC.md §12.1): an
// acceptor of these methods answers HELLO with WELCOME.
SYMWIRE_COLD inline absl::Status NoChallenge(absl::string_view method) {
  return Unauthenticated(absl::StrCat("method ", method, " has no challenge"));
}

// Methods 0 and 1 send WELCOME without auth_data.
inline absl::Status RequireEmptyWelcome(absl::string_view method,
                                        absl::Span<const std::byte> data) {
  if (data.empty()) return absl::OkStatus();
  return Unauthenticated(absl::StrCat("method ", method,
                                      " expects empty welcome auth_data, got ",
                                      data.size(), " bytes"));
}

// ---------------------------------------------------------------------------
// Method 0: none.
class NoAuthenticatorImpl final : public Authenticator {
 public:
  AuthMethod method() const override { return AuthMethod::kNone; }

  absl::StatusOr<std::string> ClientHello(const AuthContext&) const override {
    return std::string();
  }

  absl::StatusOr<AuthDecision> ServerHello(
      absl::Span<const std::byte> auth_data,
      const AuthContext&) const override {
    // A peer that sends credentials expects them checked: accepting them
    // silently would hide a configuration mismatch.
    if (!auth_data.empty()) {
      return Unauthenticated(
          absl::StrCat("method none expects empty hello auth_data, got ",
                       auth_data.size(), " bytes"));
    }
    return AuthDecision{AuthDecision::Kind::kAccept, std::string()};
  }

  absl::StatusOr<std::string> ClientProof(absl::Span<const std::byte>,
                                          const AuthContext&) const override {
    return NoChallenge("none");
  }

  absl::StatusOr<std::string> ServerVerifyProof(
      absl::Span<const std::byte>, const AuthContext&) const override {
    return NoChallenge("none");
  }

  absl::Status ClientVerifyWelcome(absl::Span<const std::byte> auth_data,
                                   const AuthContext&) const override {
    return RequireEmptyWelcome("none", auth_data);
  }
};

// ---------------------------------------------------------------------------
// Method 1: shared token.
class TokenAuthenticatorImpl final : public Authenticator {
 public:
  explicit TokenAuthenticatorImpl(const std::string& token) : token_(token) {}
  ~TokenAuthenticatorImpl() override { Cleanse(token_); }
  TokenAuthenticatorImpl(const TokenAuthenticatorImpl&) = delete;
  TokenAuthenticatorImpl& operator=(const TokenAuthenticatorImpl&) = delete;

  AuthMethod method() const override { return AuthMethod::kToken; }

  absl::StatusOr<std::string> ClientHello(const AuthContext&) const override {
    return token_;
  }

  absl::StatusOr<AuthDecision> ServerHello(
      absl::Span<const std::byte> auth_data,
      const AuthContext&) const override {
    // SPEC.md §12.3: lengths first (a token's length is not a secret),
    // then contents in time independent of the first difference. The
    // message is the same for both and never echoes either token.
    if (!ConstantTimeEquals(auth_data, AsBytes(token_))) {
      return Unauthenticated("token mismatch");
    }
    return AuthDecision{AuthDecision::Kind::kAccept, std::string()};
  }

  absl::StatusOr<std::string> ClientProof(absl::Span<const std::byte>,
                                          const AuthContext&) const override {
    return NoChallenge("token");
  }

  absl::StatusOr<std::string> ServerVerifyProof(
      absl::Span<const std::byte>, const AuthContext&) const override {
    return NoChallenge("token");
  }

  absl::Status ClientVerifyWelcome(absl::Span<const std::byte> auth_data,
                                   const AuthContext&) const override {
    return RequireEmptyWelcome("token", auth_data);
  }

 private:
  // Not const so that the destructor may wipe it; never modified before.
  std::string token_;
};

// ---------------------------------------------------------------------------
// Method 2: HMAC-SHA256 challenge-response with mutual proof.
inline constexpr absl::string_view kHmacClientLabel = "symwire-hmac-v1 client";
inline constexpr absl::string_view kHmacServerLabel = "symwire-hmac-v1 server";

class HmacAuthenticatorImpl final : public Authenticator {
 public:
  explicit HmacAuthenticatorImpl(const std::string& key) : key_(key) {}
  ~HmacAuthenticatorImpl() override { Cleanse(key_); }
  HmacAuthenticatorImpl(const HmacAuthenticatorImpl&) = delete;
  HmacAuthenticatorImpl& operator=(const HmacAuthenticatorImpl&) = delete;

  AuthMethod method() const override { return AuthMethod::kHmacSha256; }
  bool HasChallenge() const override { return true; }

  // SPEC.md §12.3: HELLO carries only the client nonce (param 17).
  absl::StatusOr<std::string> ClientHello(const AuthContext&) const override {
    return std::string();
  }

  // The server nonce travels in CHALLENGE's nonce parameter, not in its
  // auth_data; the session has put it in context.server_nonce.
  absl::StatusOr<AuthDecision> ServerHello(
      absl::Span<const std::byte> auth_data,
      const AuthContext&) const override {
    if (!auth_data.empty()) {
      return Unauthenticated(
          absl::StrCat("method hmac-sha256 expects empty hello auth_data, got ",
                       auth_data.size(), " bytes"));
    }
    return AuthDecision{AuthDecision::Kind::kChallenge, std::string()};
  }

  absl::StatusOr<std::string> ClientProof(
      absl::Span<const std::byte> challenge,
      const AuthContext& context) const override {
    if (!challenge.empty()) {
      return Unauthenticated(absl::StrCat(
          "method hmac-sha256 expects empty challenge auth_data, got ",
          challenge.size(), " bytes"));
    }
    return Mac(kHmacClientLabel, context);
  }

  absl::StatusOr<std::string> ServerVerifyProof(
      absl::Span<const std::byte> proof,
      const AuthContext& context) const override {
    if (proof.size() != kHmacSha256Size) {
      return Unauthenticated(absl::StrCat("hmac proof of ", proof.size(),
                                          " bytes, expected ",
                                          kHmacSha256Size));
    }
    absl::StatusOr<std::string> expected = Mac(kHmacClientLabel, context);
    if (!expected.ok()) return expected.status();
    const bool match = ConstantTimeEquals(proof, AsBytes(*expected));
    // The expected proof would let whoever reads this memory answer this
    // very challenge: wipe it before it is freed.
    Cleanse(*expected);
    if (!match) return Unauthenticated("hmac proof mismatch");
    return Mac(kHmacServerLabel, context);
  }

  absl::Status ClientVerifyWelcome(absl::Span<const std::byte> auth_data,
                                   const AuthContext& context) const override {
    if (auth_data.size() != kHmacSha256Size) {
      return Unauthenticated(absl::StrCat("hmac server proof of ",
                                          auth_data.size(), " bytes, expected ",
                                          kHmacSha256Size));
    }
    absl::StatusOr<std::string> expected = Mac(kHmacServerLabel, context);
    if (!expected.ok()) return expected.status();
    const bool match = ConstantTimeEquals(auth_data, AsBytes(*expected));
    if (!match) return Unauthenticated("hmac server proof mismatch");
    return absl::OkStatus();
  }

 private:
  // HMAC-SHA256(key, label || Nc || Ns || agent_id_i), SPEC.md §12.3. The
  // label and nonces have fixed sizes and agent_id comes last, so the
  // concatenation is unambiguous without separators. Only public values
  // are concatenated; the key goes to OpenSSL directly.
  absl::StatusOr<std::string> Mac(absl::string_view label,
                                  const AuthContext& context) const {
    std::string message;
    message.reserve(label.size() + 2 * kNonceSize +
                    context.initiator_agent_id.size());
    message.append(label.data(), label.size());
    message.append(reinterpret_cast<const char*>(context.client_nonce.data()),
                   context.client_nonce.size());
    message.append(reinterpret_cast<const char*>(context.server_nonce.data()),
                   context.server_nonce.size());
    message.append(context.initiator_agent_id.data(),
                   context.initiator_agent_id.size());

    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int mac_size = 0;
    // key_.size() <= INT_MAX is checked by HmacAuthenticator().
    if (HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
             reinterpret_cast<const unsigned char*>(message.data()),
             message.size(), mac.data(), &mac_size) == nullptr ||
        mac_size != kHmacSha256Size) {
      // Only if libcrypto cannot provide HMAC-SHA256 (e.g. a restricted
      // provider configuration): fail closed.
      return Unauthenticated("hmac-sha256 unavailable in libcrypto");
    }
    return std::string(reinterpret_cast<const char*>(mac.data()), mac_size);
  }

  // Not const so that the destructor may wipe it; never modified before.
  std::string key_;
};

}  // namespace auth

SYMWIRE_DECL bool ConstantTimeEquals(absl::Span<const std::byte> a,
                                     absl::Span<const std::byte> b) noexcept {
  // Sizes are not secret (SPEC.md §12.3); only the contents are compared
  // in constant time. Empty spans may have null data: never pass those on.
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace detail

SYMWIRE_DECL absl::StatusOr<ResumeProof> ComputeResumeProof(
    const ResumeToken& token, ResumeProofSide side, const Nonce& client_nonce,
    const Nonce& server_nonce, const SessionId& session_id,
    uint64_t last_received) {
  // SPEC.md §16.2. Keyed by the resume token and labelled apart from the
  // auth method's HMAC (§12.3), so neither can stand in for the other.
  static constexpr absl::string_view kClient = "symwire-resume-v1 client";
  static constexpr absl::string_view kServer = "symwire-resume-v1 server";
  const absl::string_view label =
      side == ResumeProofSide::kClient ? kClient : kServer;
  std::array<unsigned char, 24 + 2 * kNonceSize + kSessionIdSize + 8> input;
  static_assert(kClient.size() == 24 && kServer.size() == 24);
  unsigned char* p = input.data();
  std::memcpy(p, label.data(), label.size());
  p += label.size();
  std::memcpy(p, client_nonce.data(), kNonceSize);
  p += kNonceSize;
  std::memcpy(p, server_nonce.data(), kNonceSize);
  p += kNonceSize;
  std::memcpy(p, session_id.data(), kSessionIdSize);
  p += kSessionIdSize;
  for (int shift = 56; shift >= 0; shift -= 8) {
    *p++ = static_cast<unsigned char>(last_received >> shift);
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_size = 0;
  if (HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()),
           input.data(), input.size(), mac.data(), &mac_size) == nullptr ||
      mac_size != kResumeProofSize) {
    return detail::auth::Unauthenticated(
        "hmac-sha256 unavailable in libcrypto");
  }
  ResumeProof proof;
  std::memcpy(proof.data(), mac.data(), kResumeProofSize);
  OPENSSL_cleanse(mac.data(), mac.size());
  return proof;
}

SYMWIRE_DECL std::shared_ptr<const Authenticator> NoAuthenticator() {
  // Stateless: one shared instance (thread-safe static initialisation).
  static const std::shared_ptr<const Authenticator> instance =
      std::make_shared<const detail::auth::NoAuthenticatorImpl>();
  return instance;
}

SYMWIRE_DECL std::shared_ptr<const Authenticator> TokenAuthenticator(
    std::string token) {
  SYMWIRE_REQUIRE(!token.empty() && token.size() <= kMaxAuthDataSize);
  auto authenticator =
      std::make_shared<const detail::auth::TokenAuthenticatorImpl>(token);
  // Leave no copy of the secret behind in this function's parameter.
  detail::auth::Cleanse(token);
  return authenticator;
}

SYMWIRE_DECL std::shared_ptr<const Authenticator> HmacAuthenticator(
    std::string key) {
  SYMWIRE_REQUIRE(!key.empty());
  SYMWIRE_REQUIRE(key.size() <= static_cast<size_t>(INT_MAX));  // HMAC()
  auto authenticator =
      std::make_shared<const detail::auth::HmacAuthenticatorImpl>(key);
  detail::auth::Cleanse(key);
  return authenticator;
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<const Authenticator>>
AuthenticatorFromSpec(absl::string_view spec) {
  if (spec.empty() || spec == "none") return NoAuthenticator();
  const auto secret_after = [&](absl::string_view prefix) {
    return spec.substr(0, prefix.size()) == prefix
               ? std::optional<absl::string_view>(spec.substr(prefix.size()))
               : std::nullopt;
  };
  if (const auto token = secret_after("token:")) {
    if (token->empty() || token->size() > kMaxAuthDataSize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "auth spec \"token:...\": the token at offset 6 has ", token->size(),
          " bytes; it must have 1..", kMaxAuthDataSize));
    }
    return TokenAuthenticator(std::string(*token));
  }
  if (const auto key = secret_after("hmac:")) {
    if (key->empty() || key->size() > static_cast<size_t>(INT_MAX)) {
      return absl::InvalidArgumentError(
          absl::StrCat("auth spec \"hmac:...\": the key at offset 5 has ",
                       key->size(), " bytes; it must have at least 1"));
    }
    return HmacAuthenticator(std::string(*key));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "auth spec of ", spec.size(),
      " bytes does not start with \"none\", \"token:\" or \"hmac:\" at "
      "offset 0"));
}

}  // namespace symwire

#endif  // SYMWIRE_SESSION_IMPL_AUTH_IPP_
