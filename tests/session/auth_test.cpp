// File: tests/session/auth_test.cpp
// Tests for session/auth.hpp (SPEC.md §12.3): the full client/server flow
// of each method, every rejection (wrong or differently sized token, wrong
// HMAC key, tampered server proof, replayed proof, proof for another
// agent_id, credentials sent to method none, wrong sizes), a known-answer
// test of both HMAC proofs computed independently with Python, and
// detail::ConstantTimeEquals.
#include "symwire/session/auth.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "symwire/error.hpp"
#include "symwire/session/control.hpp"
#include "tests/support/bytes.hpp"

namespace symwire {
namespace {

using testing::Bytes;
using testing::Str;

absl::Span<const std::byte> Span(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
absl::Span<const std::byte> Span(const Bytes& b) {
  return {b.data(), b.size()};
}

// A nonce of bytes first, first + 1, ..., first + 31.
Nonce Counting(int first) {
  Nonce n{};
  for (size_t i = 0; i < n.size(); ++i) {
    n[i] = static_cast<std::byte>(first + static_cast<int>(i));
  }
  return n;
}

AuthContext Context(absl::string_view agent_id = "agent-7") {
  AuthContext c;
  c.client_nonce = Counting(0);
  c.server_nonce = Counting(32);
  c.initiator_agent_id = agent_id;
  return c;
}

void RequireUnauthenticated(const absl::Status& status,
                            absl::string_view message_part = "") {
  INFO(status.ToString());
  REQUIRE(status.code() == absl::StatusCode::kUnauthenticated);
  REQUIRE(GetErrorCode(status) == ErrorCode::kUnauthenticated);
  REQUIRE(absl::StrContains(status.message(), message_part));
}

std::string Hex(const std::string& bytes) {
  return absl::BytesToHexString(bytes);
}

// Runs the HMAC flow; returns the WELCOME auth_data, after checking it.
std::string HmacFlow(const Authenticator& client, const Authenticator& server,
                     const AuthContext& context) {
  absl::StatusOr<std::string> hello = client.ClientHello(context);
  REQUIRE(hello.ok());
  REQUIRE(hello->empty());
  absl::StatusOr<AuthDecision> decision =
      server.ServerHello(Span(*hello), context);
  REQUIRE(decision.ok());
  REQUIRE(decision->kind == AuthDecision::Kind::kChallenge);
  REQUIRE(decision->data.empty());
  absl::StatusOr<std::string> proof =
      client.ClientProof(Span(decision->data), context);
  REQUIRE(proof.ok());
  REQUIRE(proof->size() == 32);
  absl::StatusOr<std::string> welcome =
      server.ServerVerifyProof(Span(*proof), context);
  REQUIRE(welcome.ok());
  REQUIRE(welcome->size() == 32);
  REQUIRE(*welcome != *proof);
  REQUIRE(client.ClientVerifyWelcome(Span(*welcome), context).ok());
  return *welcome;
}

TEST_CASE("method none: full flow", "[auth]") {
  auto auth = NoAuthenticator();
  REQUIRE(auth->method() == AuthMethod::kNone);
  const AuthContext context = Context();
  absl::StatusOr<std::string> hello = auth->ClientHello(context);
  REQUIRE(hello.ok());
  REQUIRE(hello->empty());
  absl::StatusOr<AuthDecision> decision =
      auth->ServerHello(Span(*hello), context);
  REQUIRE(decision.ok());
  REQUIRE(decision->kind == AuthDecision::Kind::kAccept);
  REQUIRE(decision->data.empty());
  REQUIRE(auth->ClientVerifyWelcome(Span(decision->data), context).ok());
}

TEST_CASE("method none: rejects credentials and challenge rounds", "[auth]") {
  auto auth = NoAuthenticator();
  const AuthContext context = Context();
  RequireUnauthenticated(
      auth->ServerHello(Span(std::string("secret")), context).status(),
      "got 6 bytes");
  RequireUnauthenticated(
      auth->ClientProof(Span(std::string()), context).status(),
      "method none has no challenge");
  RequireUnauthenticated(
      auth->ServerVerifyProof(Span(std::string()), context).status(),
      "method none has no challenge");
  RequireUnauthenticated(
      auth->ClientVerifyWelcome(Span(std::string("x")), context), "1 bytes");
}

TEST_CASE("method token: full flow", "[auth]") {
  auto client = TokenAuthenticator("correct horse battery staple");
  auto server = TokenAuthenticator("correct horse battery staple");
  REQUIRE(client->method() == AuthMethod::kToken);
  const AuthContext context = Context();
  absl::StatusOr<std::string> hello = client->ClientHello(context);
  REQUIRE(hello.ok());
  REQUIRE(*hello == "correct horse battery staple");
  absl::StatusOr<AuthDecision> decision =
      server->ServerHello(Span(*hello), context);
  REQUIRE(decision.ok());
  REQUIRE(decision->kind == AuthDecision::Kind::kAccept);
  REQUIRE(decision->data.empty());
  REQUIRE(client->ClientVerifyWelcome(Span(decision->data), context).ok());
}

TEST_CASE("method token: limits of the token size", "[auth]") {
  const AuthContext context = Context();
  const std::string longest(kMaxAuthDataSize, 'k');
  auto server = TokenAuthenticator(longest);
  REQUIRE(server->ServerHello(Span(longest), context).ok());
  auto one = TokenAuthenticator("k");
  REQUIRE(one->ServerHello(Span(std::string("k")), context).ok());
}

TEST_CASE("method token: rejections never echo the token", "[auth]") {
  auto server = TokenAuthenticator("s3cret-token");
  const AuthContext context = Context();

  SECTION("wrong token of the same length") {
    absl::Status status =
        server->ServerHello(Span(std::string("s3cret-tokem")), context)
            .status();
    RequireUnauthenticated(status, "token mismatch");
    REQUIRE_FALSE(absl::StrContains(status.message(), "s3cret"));
  }
  SECTION("token of a different length") {
    RequireUnauthenticated(
        server->ServerHello(Span(std::string("s3cret-token!")), context)
            .status(),
        "token mismatch");
    RequireUnauthenticated(
        server->ServerHello(Span(std::string("s3cret")), context).status(),
        "token mismatch");
  }
  SECTION("empty token") {
    RequireUnauthenticated(
        server->ServerHello(Span(std::string()), context).status(),
        "token mismatch");
  }
  SECTION("no challenge round; welcome must be empty") {
    RequireUnauthenticated(
        server->ClientProof(Span(std::string()), context).status(),
        "method token has no challenge");
    RequireUnauthenticated(
        server->ServerVerifyProof(Span(std::string()), context).status(),
        "method token has no challenge");
    RequireUnauthenticated(
        server->ClientVerifyWelcome(Span(std::string("ok")), context),
        "2 bytes");
  }
}

TEST_CASE("method hmac: full flow with mutual proof", "[auth]") {
  auto client = HmacAuthenticator("shared key of the deployment");
  auto server = HmacAuthenticator("shared key of the deployment");
  REQUIRE(client->method() == AuthMethod::kHmacSha256);
  HmacFlow(*client, *server, Context());
}

// Expected values computed independently of OpenSSL with Python's hmac:
//   /usr/bin/python3 -c 'import hmac,hashlib; k=b"symwire-test-key";
//     nc=bytes(range(32)); ns=bytes(range(32,64)); a=b"agent-7";
//     print(hmac.new(k,b"symwire-hmac-v1 client"+nc+ns+a,
//                    hashlib.sha256).hexdigest());
//     print(hmac.new(k,b"symwire-hmac-v1 server"+nc+ns+a,
//                    hashlib.sha256).hexdigest())'
// (one line when run; wrapped here).
TEST_CASE("method hmac: known-answer proofs", "[auth]") {
  auto auth = HmacAuthenticator("symwire-test-key");
  const AuthContext context = Context("agent-7");
  absl::StatusOr<std::string> proof =
      auth->ClientProof(Span(std::string()), context);
  REQUIRE(proof.ok());
  CHECK(Hex(*proof) ==
        "1ff32f53f6dba868bee8fed7cab3895e5030d2442c8112a4933cd366025f3ee6");
  absl::StatusOr<std::string> welcome =
      auth->ServerVerifyProof(Span(*proof), context);
  REQUIRE(welcome.ok());
  CHECK(Hex(*welcome) ==
        "f1e47898253bf968e183a536b43621e8176e37b9b146cde059985d66c8cf4649");
  REQUIRE(auth->ClientVerifyWelcome(Span(*welcome), context).ok());
}

std::string ProofHex(const ResumeProof& p) {
  return Hex(std::string(reinterpret_cast<const char*>(p.data()), p.size()));
}

TEST_CASE("resume proof: the known answers of SPEC.md 16.2", "[auth]") {
  // The worked example of SPEC.md §16.2, also checked by
  // tools/vectors_ref.py selftest (Python's hmac, not OpenSSL).
  ResumeToken token;
  Nonce nc, ns;
  SessionId id;
  for (size_t k = 0; k < 16; ++k) token[k] = std::byte(k);
  for (size_t k = 0; k < 32; ++k) nc[k] = std::byte(0x20 + k);
  for (size_t k = 0; k < 32; ++k) ns[k] = std::byte(0x40 + k);
  for (size_t k = 0; k < 16; ++k) id[k] = std::byte(0x90 + k);
  auto client =
      ComputeResumeProof(token, ResumeProofSide::kClient, nc, ns, id, 41);
  REQUIRE(client.ok());
  CHECK(ProofHex(*client) ==
        "c4bfb27383d2cc52d36804031f8af396b8db190a734a1725fa2fb5a4c4c0da75");
  auto server =
      ComputeResumeProof(token, ResumeProofSide::kServer, nc, ns, id, 17);
  REQUIRE(server.ok());
  CHECK(ProofHex(*server) ==
        "45429f3cfa3d682f733880dcd4c20be18887a4ae510202593df37a19f9267ff3");
  // Every input is bound: change one bit of any and the proof changes.
  auto other =
      ComputeResumeProof(token, ResumeProofSide::kClient, nc, ns, id, 42);
  REQUIRE(other.ok());
  CHECK(*other != *client);
  ns[31] ^= std::byte{1};
  other = ComputeResumeProof(token, ResumeProofSide::kClient, nc, ns, id, 41);
  REQUIRE(other.ok());
  CHECK(*other != *client);
}

TEST_CASE("method hmac: wrong key fails at ServerVerifyProof", "[auth]") {
  auto client = HmacAuthenticator("the client's key");
  auto server = HmacAuthenticator("the server's key");
  const AuthContext context = Context();
  absl::StatusOr<std::string> proof =
      client->ClientProof(Span(std::string()), context);
  REQUIRE(proof.ok());
  absl::Status status =
      server->ServerVerifyProof(Span(*proof), context).status();
  RequireUnauthenticated(status, "hmac proof mismatch");
  REQUIRE_FALSE(absl::StrContains(status.message(), "key"));
}

TEST_CASE("method hmac: a server without the key fails mutual auth", "[auth]") {
  auto client = HmacAuthenticator("the real key");
  auto impostor = HmacAuthenticator("a guessed key");
  const AuthContext context = Context();
  std::string welcome = HmacFlow(*client, *client, context);

  SECTION("tampered server proof, one bit") {
    welcome[17] = static_cast<char>(welcome[17] ^ 0x01);
    RequireUnauthenticated(client->ClientVerifyWelcome(Span(welcome), context),
                           "hmac server proof mismatch");
  }
  SECTION("server proof from a server with another key") {
    // The impostor accepts its own client's proof, then its WELCOME proof
    // is refused by the real client.
    absl::StatusOr<std::string> proof =
        impostor->ClientProof(Span(std::string()), context);
    REQUIRE(proof.ok());
    absl::StatusOr<std::string> forged =
        impostor->ServerVerifyProof(Span(*proof), context);
    REQUIRE(forged.ok());
    RequireUnauthenticated(client->ClientVerifyWelcome(Span(*forged), context),
                           "hmac server proof mismatch");
  }
  SECTION("the client's own proof reflected as the server proof") {
    absl::StatusOr<std::string> proof =
        client->ClientProof(Span(std::string()), context);
    REQUIRE(proof.ok());
    RequireUnauthenticated(client->ClientVerifyWelcome(Span(*proof), context),
                           "hmac server proof mismatch");
  }
  SECTION("server proof of the wrong size") {
    RequireUnauthenticated(
        client->ClientVerifyWelcome(Span(welcome.substr(0, 31)), context),
        "31 bytes");
    RequireUnauthenticated(
        client->ClientVerifyWelcome(Span(std::string()), context), "0 bytes");
  }
}

TEST_CASE("method hmac: a recorded proof does not replay", "[auth]") {
  auto client = HmacAuthenticator("k");
  auto server = HmacAuthenticator("k");
  const AuthContext recorded = Context();
  absl::StatusOr<std::string> proof =
      client->ClientProof(Span(std::string()), recorded);
  REQUIRE(proof.ok());
  REQUIRE(server->ServerVerifyProof(Span(*proof), recorded).ok());

  SECTION("another server nonce") {
    AuthContext fresh = recorded;
    fresh.server_nonce[0] = static_cast<std::byte>(0xff);
    RequireUnauthenticated(
        server->ServerVerifyProof(Span(*proof), fresh).status(),
        "hmac proof mismatch");
  }
  SECTION("another client nonce") {
    AuthContext fresh = recorded;
    fresh.client_nonce[31] = static_cast<std::byte>(0xff);
    RequireUnauthenticated(
        server->ServerVerifyProof(Span(*proof), fresh).status(),
        "hmac proof mismatch");
  }
  SECTION("nonces swapped") {
    AuthContext swapped = recorded;
    swapped.client_nonce = recorded.server_nonce;
    swapped.server_nonce = recorded.client_nonce;
    RequireUnauthenticated(
        server->ServerVerifyProof(Span(*proof), swapped).status(),
        "hmac proof mismatch");
  }
}

TEST_CASE("method hmac: a proof for another agent_id fails", "[auth]") {
  auto auth = HmacAuthenticator("k");
  const AuthContext alice = Context("alice");
  absl::StatusOr<std::string> proof =
      auth->ClientProof(Span(std::string()), alice);
  REQUIRE(proof.ok());
  REQUIRE(auth->ServerVerifyProof(Span(*proof), alice).ok());
  RequireUnauthenticated(
      auth->ServerVerifyProof(Span(*proof), Context("mallory")).status(),
      "hmac proof mismatch");
  // A prefix or extension of the agent_id is another agent_id.
  RequireUnauthenticated(
      auth->ServerVerifyProof(Span(*proof), Context("alic")).status(),
      "hmac proof mismatch");
  RequireUnauthenticated(
      auth->ServerVerifyProof(Span(*proof), Context("alicee")).status(),
      "hmac proof mismatch");
}

TEST_CASE("method hmac: sizes and unexpected auth_data", "[auth]") {
  auto auth = HmacAuthenticator("k");
  const AuthContext context = Context();
  RequireUnauthenticated(
      auth->ServerHello(Span(std::string("k")), context).status(), "1 bytes");
  RequireUnauthenticated(
      auth->ClientProof(Span(std::string("abc")), context).status(), "3 bytes");
  absl::StatusOr<std::string> proof =
      auth->ClientProof(Span(std::string()), context);
  REQUIRE(proof.ok());
  RequireUnauthenticated(
      auth->ServerVerifyProof(Span(*proof + "x"), context).status(),
      "33 bytes, expected 32");
  RequireUnauthenticated(
      auth->ServerVerifyProof(Span(std::string()), context).status(),
      "0 bytes, expected 32");
}

TEST_CASE("method hmac: one instance serves concurrent sessions", "[auth]") {
  // Const calls keep no state: interleaved flows with different contexts
  // each succeed on the same pair of instances.
  auto client = HmacAuthenticator("k");
  auto server = HmacAuthenticator("k");
  AuthContext a = Context("a");
  AuthContext b = Context("b");
  b.server_nonce = Counting(100);
  absl::StatusOr<std::string> proof_a =
      client->ClientProof(Span(std::string()), a);
  absl::StatusOr<std::string> proof_b =
      client->ClientProof(Span(std::string()), b);
  REQUIRE(proof_a.ok());
  REQUIRE(proof_b.ok());
  REQUIRE(*proof_a != *proof_b);
  REQUIRE(server->ServerVerifyProof(Span(*proof_b), b).ok());
  REQUIRE(server->ServerVerifyProof(Span(*proof_a), a).ok());
}

TEST_CASE("ConstantTimeEquals", "[auth]") {
  using detail::ConstantTimeEquals;
  const Bytes abc = Str("abc");
  const Bytes abd = Str("abd");
  const Bytes xbc = Str("xbc");
  const Bytes ab = Str("ab");
  const Bytes empty;
  CHECK(ConstantTimeEquals(Span(abc), Span(Str("abc"))));
  CHECK_FALSE(ConstantTimeEquals(Span(abc), Span(abd)));
  CHECK_FALSE(ConstantTimeEquals(Span(abc), Span(xbc)));
  CHECK_FALSE(ConstantTimeEquals(Span(abc), Span(ab)));
  CHECK_FALSE(ConstantTimeEquals(Span(ab), Span(abc)));
  CHECK_FALSE(ConstantTimeEquals(Span(abc), Span(empty)));
  CHECK(ConstantTimeEquals(Span(empty), Span(empty)));
  CHECK(ConstantTimeEquals(absl::Span<const std::byte>(),
                           absl::Span<const std::byte>()));
  const Bytes zeros(32, std::byte{0});
  Bytes last = zeros;
  last.back() = std::byte{1};
  CHECK(ConstantTimeEquals(Span(zeros), Span(Bytes(32, std::byte{0}))));
  CHECK_FALSE(ConstantTimeEquals(Span(zeros), Span(last)));
}

TEST_CASE("AuthenticatorFromSpec: each method by name", "[auth]") {
  for (const absl::string_view spec : {"", "none"}) {
    auto auth = AuthenticatorFromSpec(spec);
    REQUIRE(auth.ok());
    CHECK((*auth)->method() == AuthMethod::kNone);
  }
  auto token = AuthenticatorFromSpec("token:s3cret");
  REQUIRE(token.ok());
  CHECK((*token)->method() == AuthMethod::kToken);
  // The whole text after the prefix is the secret, colons included.
  const AuthContext context = Context();
  auto hello = (*token)->ClientHello(context);
  REQUIRE(hello.ok());
  CHECK(*hello == "s3cret");
  auto colons = AuthenticatorFromSpec("token:a:b");
  REQUIRE(colons.ok());
  CHECK(*(*colons)->ClientHello(context) == "a:b");
  auto hmac = AuthenticatorFromSpec("hmac:k");
  REQUIRE(hmac.ok());
  CHECK((*hmac)->method() == AuthMethod::kHmacSha256);
  const std::string longest =
      absl::StrCat("token:", std::string(kMaxAuthDataSize, 't'));
  CHECK(AuthenticatorFromSpec(longest).ok());
}

TEST_CASE(
    "AuthenticatorFromSpec: malformed specs are errors that name the "
    "offset and size, never the secret",
    "[auth]") {
  struct Case {
    std::string spec;
    absl::string_view expected;
  };
  const std::string too_long =
      absl::StrCat("token:", std::string(kMaxAuthDataSize + 1, 'x'));
  const Case cases[] = {
      {"token:", "the token at offset 6 has 0 bytes; it must have 1..1024"},
      {too_long, "the token at offset 6 has 1025 bytes"},
      {"hmac:", "the key at offset 5 has 0 bytes"},
      {"s3cretpasted", "auth spec of 12 bytes does not start with"},
      {"Token:s3cret", "auth spec of 12 bytes does not start with"},
      {"nonesuch", "auth spec of 8 bytes does not start with"},
  };
  for (const Case& c : cases) {
    INFO(c.spec.substr(0, 16));
    auto auth = AuthenticatorFromSpec(c.spec);
    REQUIRE_FALSE(auth.ok());
    CHECK(auth.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(auth.status().message(), c.expected));
    CHECK_FALSE(absl::StrContains(auth.status().message(), "s3cret"));
    CHECK_FALSE(absl::StrContains(auth.status().message(), "xxxx"));
  }
}

}  // namespace
}  // namespace symwire
