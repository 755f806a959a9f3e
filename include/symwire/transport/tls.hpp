// File: symwire/transport/tls.hpp
// Layer 3. TLS over TCP (OpenSSL through asio::ssl): contexts built from
// plain option structs, client and server handshakes over an already
// connected TCP socket that complete with a Transport (transport.hpp), a
// dialer for Client (runtime.hpp) and an upgrade for Server::ListenTcp.
// This header and src/symwire_tls.cpp form the symwire::tls target, the
// only part of symwire that links libssl.
//
// Security defaults. TLS 1.2 is the minimum and TLS 1.3 is preferred;
// renegotiation is refused. A client verifies the server's certificate
// chain and checks the server name against the certificate's
// subjectAltName (a DNS name, or an IP address for an IP literal; RFC
// 6125, RFC 5280 §4.2.1.6) unless TlsClientOptions::verify_peer is
// explicitly false. Mutual TLS is opt-in on the server
// (TlsServerOptions::require_client_cert).
//
// Closing. A TLS transport's Close() closes the socket at once: a
// synchronous TLS shutdown waits for the peer and can block forever.
// CloseAfterFlush() sends TLS close_notify after the last byte
// (asynchronously, without waiting for the peer's), so the peer reads a
// clean end of stream, exactly as over TCP.
//
// Threads. A TLS transport does not move to another executor
// (Transport::MoveTo answers kUnimplemented), so a sharded Server answers a
// TLS resume that lands on the wrong shard with CONNECTION_LOST and the
// client redials (runtime/server.hpp, "Threads"). Boost 1.81's
// ssl::stream(socket, SSL*) cannot rebuild the stream on another executor:
// it gives the SSL a new BIO pair, dropping the ciphertext still buffered
// in the old pair and in the old stream's private input buffer, and the old
// stream's destructor frees the SSL (and its verify callback) it still
// owns. Moving one needs a stream whose buffers can be handed over.
//
// Thread-safety: as for Transport. Each handshake runs on the socket's
// executor; a context may be shared by any number of connections and
// threads once built (OpenSSL's SSL_CTX is reference-counted and
// read-only after setup).
#ifndef SYMWIRE_TRANSPORT_TLS_HPP_
#define SYMWIRE_TRANSPORT_TLS_HPP_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/any_io_executor.hpp"
#include "boost/asio/associated_executor.hpp"
#include "boost/asio/async_result.hpp"
#include "boost/asio/execution/outstanding_work.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/prefer.hpp"
#include "boost/asio/ssl/context.hpp"
#include "symwire/config.hpp"
#include "symwire/transport/tcp.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

// kDefaultTlsHandshakeTimeout
// How long a handshake may take unless the caller says otherwise. Bounds
// what a peer that connects and then stays silent can hold.
inline constexpr std::chrono::milliseconds kDefaultTlsHandshakeTimeout{10000};

// TlsClientOptions
// What MakeTlsClientContext builds a client context from. Every field has
// a safe default: with nothing set the client trusts the system's CA
// store and verifies the server.
struct TlsClientOptions {
  // Trusted CAs that sign server certificates: a PEM file and/or PEM text
  // (one or more certificates each). Both empty: the system's default
  // trust store (OpenSSL's default verify paths).
  std::string ca_file;
  std::string ca_pem;
  // Verify the server's certificate chain and name. Turning this off
  // makes the connection open to any man in the middle; for tests only.
  bool verify_peer = true;
  // The name checked against the server's certificate (subjectAltName DNS
  // entry, or IP entry for an IPv4/IPv6 literal) and sent as SNI (DNS
  // names only; RFC 6066 §3 forbids literals). Empty: the host that
  // ConnectTls / TlsDialer dial. Not used by MakeTlsClientContext itself:
  // pass it to the dialer or to AsyncTlsClientHandshake.
  std::string server_name;
  // A client certificate (chain, leaf first) and its private key for
  // mutual TLS, as PEM files or PEM text (one form each; text wins). All
  // empty: the client presents no certificate.
  std::string cert_file;
  std::string key_file;
  std::string cert_pem;
  std::string key_pem;
};

// TlsServerOptions
// What MakeTlsServerContext builds a server context from.
struct TlsServerOptions {
  // The server's certificate (chain, leaf first) and private key, as PEM
  // files or PEM text (one form each; text wins). Required.
  std::string cert_file;
  std::string key_file;
  std::string cert_pem;
  std::string key_pem;
  // Mutual TLS: refuse clients that present no certificate signed by one
  // of the client CAs below. When false but a client CA is given, a
  // certificate is requested and verified if the client sends one.
  bool require_client_cert = false;
  // CAs that sign client certificates (PEM file and/or text). Required
  // when require_client_cert is set; the system store is never used for
  // client certificates.
  std::string client_ca_file;
  std::string client_ca_pem;
};

// MakeTlsClientContext
// Builds a client context: TLS 1.2 minimum, peer verification on (unless
// options.verify_peer is false), trust from ca_file/ca_pem or the system
// store, and the client certificate when given.
// Errors (kInvalidArgument, the message naming the field, the file and
// OpenSSL's reason): a CA, certificate or key that cannot be read or
// parsed; a certificate without its key or the reverse; a key that does
// not match the certificate. kInternal if OpenSSL cannot allocate the
// context.
// Thread-safety: may be called from any thread.
SYMWIRE_DECL absl::StatusOr<std::shared_ptr<asio::ssl::context>>
MakeTlsClientContext(const TlsClientOptions& options);

// MakeTlsServerContext
// Builds a server context: TLS 1.2 minimum, the server's certificate and
// key, and client certificate verification as the options say.
// Errors: as MakeTlsClientContext; also kInvalidArgument when no
// certificate or key is given, or require_client_cert is set without a
// client CA.
// Thread-safety: may be called from any thread.
SYMWIRE_DECL absl::StatusOr<std::shared_ptr<asio::ssl::context>>
MakeTlsServerContext(const TlsServerOptions& options);

namespace detail {

// Wraps an Asio completion handler so that it runs on its associated
// executor (posted, never inline in the initiating call) and keeps that
// executor busy until then.
template <class Handler>
DialHandler MakeTlsCompletion(const asio::any_io_executor& ex,
                              Handler&& handler) {
  auto work = asio::prefer(asio::get_associated_executor(handler, ex),
                           asio::execution::outstanding_work.tracked);
  return [h = std::forward<Handler>(handler),
          work = std::move(work)](DialResult result) mutable {
    auto target = work;
    asio::post(target, [h = std::move(h), r = std::move(result)]() mutable {
      std::move(h)(std::move(r));
    });
  };
}

// Runs one handshake on `socket` (client when `client`), bounded by
// `timeout`, and completes `done` exactly once from the socket's executor.
SYMWIRE_DECL void StartTlsHandshake(asio::ip::tcp::socket socket,
                                    std::shared_ptr<asio::ssl::context> context,
                                    bool client, std::string server_name,
                                    std::chrono::milliseconds timeout,
                                    TransportOptions transport_options,
                                    DialHandler done);

}  // namespace detail

// AsyncTlsClientHandshake
// Performs the client side of a TLS handshake on a connected TCP socket
// and completes with a Transport ("tls 127.0.0.1:4433") that owns the
// socket, the TLS state and a reference to `context`.
// `server_name` is checked against the server's certificate (DNS or IP
// subjectAltName) and sent as SNI when it is a DNS name; empty means the
// socket's remote IP address, checked against an IP subjectAltName.
// Completion signature: void(absl::StatusOr<std::shared_ptr<Transport>>).
// Errors:
//   kUnauthenticated (UNAUTHENTICATED): a certificate problem: "tls
//     handshake with 127.0.0.1:4433 failed: certificate verify failed
//     (hostname mismatch: expected example.com)", the parenthesis being
//     OpenSSL's verify result; or the server rejected ours (its alert).
//   kDeadlineExceeded (HANDSHAKE_TIMEOUT): not done within `timeout`; the
//     socket is closed.
//   kUnavailable (CONNECTION_LOST): any other failure (protocol error,
//     connection closed or reset during the handshake, no common version,
//     a socket that is not connected).
//   kInvalidArgument: `server_name` is not a usable DNS name or IP literal.
// With TLS 1.3 a server that rejects the client's certificate does so
// after the client's handshake has completed: the client then learns it
// from its first read, as a CONNECTION_LOST close naming the alert
// ("tlsv13 alert certificate required").
// REQUIRES: `context` is not null and was made for clients.
// Thread-safety: runs on the socket's executor; the handler is invoked
// through its associated executor, never inside this call.
template <class CompletionToken>
auto AsyncTlsClientHandshake(asio::ip::tcp::socket socket,
                             std::shared_ptr<asio::ssl::context> context,
                             std::string server_name,
                             std::chrono::milliseconds timeout,
                             TransportOptions transport_options,
                             CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(DialResult)>(
      [](auto handler, asio::ip::tcp::socket s,
         std::shared_ptr<asio::ssl::context> c, std::string name,
         std::chrono::milliseconds t, TransportOptions o) {
        const asio::any_io_executor ex = s.get_executor();
        DialHandler done = detail::MakeTlsCompletion(ex, std::move(handler));
        detail::StartTlsHandshake(std::move(s), std::move(c), true,
                                  std::move(name), t, o, std::move(done));
      },
      token, std::move(socket), std::move(context), std::move(server_name),
      timeout, transport_options);
}

// As above with kDefaultTlsHandshakeTimeout and default TransportOptions.
template <class CompletionToken>
auto AsyncTlsClientHandshake(asio::ip::tcp::socket socket,
                             std::shared_ptr<asio::ssl::context> context,
                             std::string server_name, CompletionToken&& token) {
  return AsyncTlsClientHandshake(
      std::move(socket), std::move(context), std::move(server_name),
      kDefaultTlsHandshakeTimeout, TransportOptions{},
      std::forward<CompletionToken>(token));
}

// AsyncTlsServerHandshake
// Performs the server side of a TLS handshake on an accepted TCP socket
// and completes with a Transport ("tls <client address>:<port>").
// Completion signature: void(absl::StatusOr<std::shared_ptr<Transport>>).
// Errors: as AsyncTlsClientHandshake; kUnauthenticated covers a client
// certificate that fails verification and, with require_client_cert, a
// client that sends none ("peer did not return a certificate").
// REQUIRES: `context` is not null and was made for servers.
// Thread-safety: as AsyncTlsClientHandshake.
template <class CompletionToken>
auto AsyncTlsServerHandshake(asio::ip::tcp::socket socket,
                             std::shared_ptr<asio::ssl::context> context,
                             std::chrono::milliseconds timeout,
                             TransportOptions transport_options,
                             CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(DialResult)>(
      [](auto handler, asio::ip::tcp::socket s,
         std::shared_ptr<asio::ssl::context> c, std::chrono::milliseconds t,
         TransportOptions o) {
        const asio::any_io_executor ex = s.get_executor();
        DialHandler done = detail::MakeTlsCompletion(ex, std::move(handler));
        detail::StartTlsHandshake(std::move(s), std::move(c), false,
                                  std::string(), t, o, std::move(done));
      },
      token, std::move(socket), std::move(context), timeout, transport_options);
}

// As above with kDefaultTlsHandshakeTimeout and default TransportOptions.
template <class CompletionToken>
auto AsyncTlsServerHandshake(asio::ip::tcp::socket socket,
                             std::shared_ptr<asio::ssl::context> context,
                             CompletionToken&& token) {
  return AsyncTlsServerHandshake(
      std::move(socket), std::move(context), kDefaultTlsHandshakeTimeout,
      TransportOptions{}, std::forward<CompletionToken>(token));
}

// ConnectTls
// Resolves `host`, connects over TCP (applying `tcp_options`) and
// performs the client handshake, all within `timeout`. `server_name`
// empty: `host` is the name checked (a DNS name, or an IP literal checked
// against an IP subjectAltName). Completes `handler` exactly once on
// `executor`. Errors: those of ConnectTcp (tcp.hpp) and of
// AsyncTlsClientHandshake; a timeout during the connect is
// CONNECTION_LOST "connect to host:port timed out after N ms", during the
// handshake HANDSHAKE_TIMEOUT.
// REQUIRES: `context` is not null.
// Thread-safety: runs on `executor`.
SYMWIRE_DECL void ConnectTls(const asio::any_io_executor& executor,
                             const std::string& host, uint16_t port,
                             std::shared_ptr<asio::ssl::context> context,
                             std::string server_name,
                             const TcpOptions& tcp_options,
                             std::chrono::milliseconds timeout,
                             const TransportOptions& transport_options,
                             DialHandler handler);

// TlsDialer
// A Dialer (tcp.hpp) for Client that calls ConnectTls with fixed
// arguments; every dial shares `context` (and OpenSSL's session cache).
// REQUIRES: `context` is not null.
SYMWIRE_DECL Dialer
TlsDialer(asio::any_io_executor executor, std::string host, uint16_t port,
          std::shared_ptr<asio::ssl::context> context,
          std::string server_name = {}, TcpOptions tcp_options = {},
          std::chrono::milliseconds timeout = std::chrono::milliseconds(10000),
          TransportOptions transport_options = {});

// TlsUpgrade
// What Server::ListenTcp's `upgrade` parameter takes (runtime.hpp): runs
// the server handshake on each accepted socket within `timeout`, so a
// client that connects and stays silent is dropped after it.
// REQUIRES: `context` is not null.
SYMWIRE_DECL std::function<void(asio::ip::tcp::socket, DialHandler)> TlsUpgrade(
    std::shared_ptr<asio::ssl::context> context,
    std::chrono::milliseconds timeout = kDefaultTlsHandshakeTimeout,
    TransportOptions transport_options = {});

}  // namespace symwire

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/transport/impl/tls.ipp"
#endif

#endif  // SYMWIRE_TRANSPORT_TLS_HPP_
