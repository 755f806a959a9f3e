// File: symwire/transport/impl/tls.ipp
// Out-of-line bodies of tls.hpp (layer 3; the symwire::tls target).
#ifndef SYMWIRE_TRANSPORT_IMPL_TLS_IPP_
#define SYMWIRE_TRANSPORT_IMPL_TLS_IPP_

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "boost/asio/buffer.hpp"
#include "boost/asio/connect.hpp"
#include "boost/asio/ip/address.hpp"
#include "boost/asio/socket_base.hpp"
#include "boost/asio/ssl/error.hpp"
#include "boost/asio/ssl/stream.hpp"
#include "boost/asio/steady_timer.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/tls.hpp"

namespace symwire {
namespace detail {

// What a TLS transport owns, shared between the transport's stream and
// any close_notify still in flight (an asio::ssl operation must not
// outlive its stream). The context is declared first so that it outlives
// the stream: asio keeps callbacks in it that the SSL object may call.
struct TlsState {
  TlsState(std::shared_ptr<asio::ssl::context> ctx,
           asio::ip::tcp::socket socket)
      : context(std::move(ctx)), stream(std::move(socket), *context) {}
  std::shared_ptr<asio::ssl::context> context;
  asio::ssl::stream<asio::ip::tcp::socket> stream;
  bool close_notify_started = false;
};

// The stream MakeTransport wraps: a cheap movable handle on TlsState.
// Deliberately offers no non_blocking()/read_some(): a TLS record can be
// partly read, so the spin-before-block mode stays off (TryReadSome keeps
// its "unsupported" default). shutdown(shutdown_send) is what
// Transport::CloseAfterFlush calls: it starts an asynchronous TLS shutdown
// (close_notify) and never waits for the peer's.
class TlsStream {
 public:
  using Stream = asio::ssl::stream<asio::ip::tcp::socket>;
  using executor_type = Stream::executor_type;
  using lowest_layer_type = Stream::lowest_layer_type;
  // Asio spells these (socket_base::shutdown_send): Transport's graceful
  // close calls shutdown(shutdown_send, ec).
  // NOLINTBEGIN(readability-identifier-naming)
  static constexpr asio::socket_base::shutdown_type shutdown_send =
      asio::socket_base::shutdown_send;
  // NOLINTEND(readability-identifier-naming)

  explicit TlsStream(std::shared_ptr<TlsState> state)
      : state_(std::move(state)) {}

  executor_type get_executor() noexcept {
    return state_->stream.get_executor();
  }
  lowest_layer_type& lowest_layer() { return state_->stream.lowest_layer(); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return state_->stream.async_read_some(buffers, std::forward<Token>(token));
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return state_->stream.async_write_some(buffers, std::forward<Token>(token));
  }

  void shutdown(asio::socket_base::shutdown_type what,
                boost::system::error_code& ec) {
    ec = {};
    if (what == asio::socket_base::shutdown_receive ||
        state_->close_notify_started) {
      return;
    }
    state_->close_notify_started = true;
    // Runs alongside the transport's reads (asio::ssl serialises the
    // socket reads of concurrent operations); the handler keeps the state
    // alive until the operation ends, which at the latest is when the
    // transport closes the socket.
    state_->stream.async_shutdown(
        [state = state_](const boost::system::error_code&) {});
  }

 private:
  std::shared_ptr<TlsState> state_;
};

// "127.0.0.1:4433", "[::1]:4433".
SYMWIRE_DECL std::string TlsPeerText(const asio::ip::tcp::endpoint& endpoint) {
  const asio::ip::address a = endpoint.address();
  if (a.is_v6()) return absl::StrCat("[", a.to_string(), "]:", endpoint.port());
  return absl::StrCat(a.to_string(), ":", endpoint.port());
}

// OpenSSL's reason code of an asio.ssl error, or 0 for another category.
SYMWIRE_DECL int TlsReason(const boost::system::error_code& ec) {
  if (ec.category() != asio::error::get_ssl_category()) return 0;
  // asio stores ERR_get_error()'s value as an int; undo that conversion.
  const auto packed =
      static_cast<unsigned long>(static_cast<unsigned int>(ec.value()));
  if (ERR_GET_LIB(packed) != ERR_LIB_SSL) return 0;
  return ERR_GET_REASON(packed);
}

// A failed handshake as a Status (tls.hpp lists the codes).
SYMWIRE_DECL absl::Status TlsHandshakeError(const boost::system::error_code& ec,
                                            SSL* ssl, absl::string_view peer,
                                            absl::string_view expected_name) {
  const std::string head =
      absl::StrCat("tls handshake with ", peer, " failed: ");
  const int reason = TlsReason(ec);
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    // Our verification rejected the peer's chain: say why, in OpenSSL's
    // words ("self-signed certificate in certificate chain").
    const long result = SSL_get_verify_result(ssl);
    std::string why = X509_verify_cert_error_string(result);
    if ((result == X509_V_ERR_HOSTNAME_MISMATCH ||
         result == X509_V_ERR_IP_ADDRESS_MISMATCH) &&
        !expected_name.empty()) {
      absl::StrAppend(&why, ": expected ", expected_name);
    }
    return MakeError(
        ErrorCode::kUnauthenticated,
        absl::StrCat(head, "certificate verify failed (", why, ")"));
  }
  switch (reason) {
    // The peer sent no certificate although ours requires one, or the
    // peer's alert says it rejected our certificate.
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
      return MakeError(ErrorCode::kUnauthenticated,
                       absl::StrCat(head, ec.message()));
    default:
      break;
  }
  if (ec == asio::ssl::error::stream_truncated || ec == asio::error::eof) {
    return MakeError(ErrorCode::kConnectionLost,
                     absl::StrCat(head, "connection closed by peer"));
  }
  return MakeError(ErrorCode::kConnectionLost,
                   absl::StrCat(head, ec.message(), " (", ec.category().name(),
                                ":", ec.value(), ")"));
}

// Sets the name the server's certificate must carry: an IP literal is
// matched against IP subjectAltNames (and is not sent as SNI, RFC 6066
// §3); anything else is a DNS name, matched with OpenSSL's RFC 6125
// checks (no partial wildcards) and sent as SNI.
SYMWIRE_DECL absl::Status SetTlsPeerName(SSL* ssl, const std::string& name) {
  std::string literal = name;
  if (literal.size() > 2 && literal.front() == '[' && literal.back() == ']') {
    literal = literal.substr(1, literal.size() - 2);
  }
  boost::system::error_code ec;
  static_cast<void>(asio::ip::make_address(literal, ec));
  if (!ec) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), literal.c_str()) !=
        1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat("tls: cannot check the server's certificate for IP "
                       "address \"",
                       literal, "\""));
    }
    return absl::OkStatus();
  }
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  // SSL_set_tlsext_host_name without the macro's C-style cast; OpenSSL
  // copies the name and does not modify it.
  if (SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(name.c_str())) != 1 ||
      SSL_set1_host(ssl, name.c_str()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("tls: invalid server name \"", name, "\""));
  }
  return absl::OkStatus();
}

// One handshake in progress: the TLS state, the timer that bounds it and
// the completion, called exactly once.
struct TlsHandshakeOp {
  TlsHandshakeOp(std::shared_ptr<TlsState> s, DialHandler d)
      : state(std::move(s)),
        timer(state->stream.get_executor()),
        done(std::move(d)) {}
  std::shared_ptr<TlsState> state;
  asio::steady_timer timer;
  DialHandler done;
  std::string peer;
  std::string expected_name;
  std::chrono::milliseconds timeout{0};
  TransportOptions transport_options;
  bool finished = false;
  bool timed_out = false;
};

SYMWIRE_DECL void StartTlsHandshake(asio::ip::tcp::socket socket,
                                    std::shared_ptr<asio::ssl::context> context,
                                    bool client, std::string server_name,
                                    std::chrono::milliseconds timeout,
                                    TransportOptions transport_options,
                                    DialHandler done) {
  SYMWIRE_REQUIRE(context != nullptr);
  const asio::any_io_executor ex = socket.get_executor();
  // Failures before any I/O still complete asynchronously.
  auto fail = [&ex, &done](absl::Status status) {
    asio::post(ex, [d = std::move(done), s = std::move(status)]() mutable {
      d(std::move(s));
    });
  };
  boost::system::error_code ec;
  const asio::ip::tcp::endpoint remote = socket.remote_endpoint(ec);
  if (ec) {
    fail(ToStatus(ec, "tls handshake: socket not connected"));
    return;
  }
  const std::string peer = TlsPeerText(remote);
  std::shared_ptr<TlsState> state;
  try {
    state = std::make_shared<TlsState>(std::move(context), std::move(socket));
  } catch (const std::exception& e) {
    // SSL_new failed (out of memory).
    fail(MakeError(
        ErrorCode::kConnectionLost,
        absl::StrCat("tls handshake with ", peer, " failed: ", e.what())));
    return;
  }
  std::string expected_name;
  if (client) {
    expected_name = server_name.empty() ? remote.address().to_string()
                                        : std::move(server_name);
    absl::Status st =
        SetTlsPeerName(state->stream.native_handle(), expected_name);
    if (!st.ok()) {
      fail(std::move(st));
      return;
    }
  }
  auto op = std::make_shared<TlsHandshakeOp>(std::move(state), std::move(done));
  op->peer = peer;
  op->expected_name = std::move(expected_name);
  op->timeout = timeout;
  op->transport_options = transport_options;
  op->timer.expires_after(timeout);
  op->timer.async_wait([op](const boost::system::error_code& tec) {
    if (tec || op->finished) return;
    // Closing the socket ends the handshake operation, whose handler
    // reports the timeout.
    op->timed_out = true;
    boost::system::error_code ignored;
    op->state->stream.lowest_layer().close(ignored);
  });
  op->state->stream.async_handshake(
      client ? asio::ssl::stream_base::client : asio::ssl::stream_base::server,
      [op](const boost::system::error_code& hec) {
        op->finished = true;
        op->timer.cancel();
        DialHandler handler = std::move(op->done);
        if (op->timed_out) {
          handler(MakeError(
              ErrorCode::kHandshakeTimeout,
              absl::StrCat("tls handshake with ", op->peer, " timed out after ",
                           op->timeout.count(), " ms")));
          return;
        }
        if (hec) {
          absl::Status st =
              TlsHandshakeError(hec, op->state->stream.native_handle(),
                                op->peer, op->expected_name);
          boost::system::error_code ignored;
          op->state->stream.lowest_layer().close(ignored);
          handler(std::move(st));
          return;
        }
        handler(MakeTransport(TlsStream(op->state),
                              absl::StrCat("tls ", op->peer),
                              op->transport_options));
      });
}

// A configuration error naming the option, the file (when there is one)
// and OpenSSL's reason.
SYMWIRE_DECL absl::Status TlsConfigError(absl::string_view side,
                                         absl::string_view what,
                                         absl::string_view file,
                                         const boost::system::error_code& ec) {
  ERR_clear_error();  // asio leaves the rest of OpenSSL's error queue
  if (file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls ", side, ": cannot load ", what, ": ", ec.message()));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "tls ", side, ": cannot load ", what, " \"", file, "\": ", ec.message()));
}

// A context with the settings both sides share.
SYMWIRE_DECL absl::StatusOr<std::shared_ptr<asio::ssl::context>> NewTlsContext(
    asio::ssl::context::method method) {
  std::shared_ptr<asio::ssl::context> ctx;
  try {
    ctx = std::make_shared<asio::ssl::context>(method);
  } catch (const std::exception& e) {
    ERR_clear_error();
    return absl::InternalError(
        absl::StrCat("tls: cannot create an OpenSSL context: ", e.what()));
  }
  SSL_CTX* native = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    ERR_clear_error();
    return absl::InternalError("tls: cannot set TLS 1.2 as minimum version");
  }
  // Renegotiation would interleave handshake records with application
  // reads and writes in flight; compression invites CRIME-style attacks.
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  return ctx;
}

// Loads a certificate chain and its key from PEM text or files.
SYMWIRE_DECL absl::Status LoadTlsIdentity(asio::ssl::context& ctx,
                                          absl::string_view side,
                                          const std::string& cert_file,
                                          const std::string& key_file,
                                          const std::string& cert_pem,
                                          const std::string& key_pem) {
  const bool has_cert = !cert_pem.empty() || !cert_file.empty();
  const bool has_key = !key_pem.empty() || !key_file.empty();
  if (has_cert && !has_key) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls ", side,
                     ": certificate given without its private key "
                     "(key_file or key_pem)"));
  }
  if (has_key && !has_cert) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls ", side,
                     ": private key given without its certificate "
                     "(cert_file or cert_pem)"));
  }
  if (!has_cert) return absl::OkStatus();
  boost::system::error_code ec;
  if (!cert_pem.empty()) {
    ctx.use_certificate_chain(asio::buffer(cert_pem), ec);
    if (ec) return TlsConfigError(side, "cert_pem", "", ec);
  } else {
    ctx.use_certificate_chain_file(cert_file, ec);
    if (ec) return TlsConfigError(side, "cert_file", cert_file, ec);
  }
  if (!key_pem.empty()) {
    ctx.use_private_key(asio::buffer(key_pem), asio::ssl::context::pem, ec);
    if (ec) return TlsConfigError(side, "key_pem", "", ec);
  } else {
    ctx.use_private_key_file(key_file, asio::ssl::context::pem, ec);
    if (ec) return TlsConfigError(side, "key_file", key_file, ec);
  }
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "tls ", side, ": the private key does not match the certificate"));
  }
  return absl::OkStatus();
}

// Adds trusted CAs from a PEM file and/or PEM text; `loaded` tells
// whether any source was given.
SYMWIRE_DECL absl::Status LoadTlsTrust(asio::ssl::context& ctx,
                                       absl::string_view side,
                                       absl::string_view field,
                                       const std::string& file,
                                       const std::string& pem, bool& loaded) {
  loaded = false;
  boost::system::error_code ec;
  if (!file.empty()) {
    ctx.load_verify_file(file, ec);
    if (ec) return TlsConfigError(side, absl::StrCat(field, "_file"), file, ec);
    loaded = true;
  }
  if (!pem.empty()) {
    ctx.add_certificate_authority(asio::buffer(pem), ec);
    if (ec) return TlsConfigError(side, absl::StrCat(field, "_pem"), "", ec);
    loaded = true;
  }
  return absl::OkStatus();
}

}  // namespace detail

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<asio::ssl::context>>
MakeTlsClientContext(const TlsClientOptions& options) {
  absl::StatusOr<std::shared_ptr<asio::ssl::context>> ctx =
      detail::NewTlsContext(asio::ssl::context::tls_client);
  if (!ctx.ok()) return ctx.status();
  asio::ssl::context& c = **ctx;
  bool trust_given = false;
  absl::Status st = detail::LoadTlsTrust(c, "client", "ca", options.ca_file,
                                         options.ca_pem, trust_given);
  if (!st.ok()) return st;
  boost::system::error_code ec;
  if (options.verify_peer && !trust_given) {
    c.set_default_verify_paths(ec);
    if (ec) return detail::TlsConfigError("client", "the system CAs", "", ec);
  }
  c.set_verify_mode(
      options.verify_peer ? asio::ssl::verify_peer : asio::ssl::verify_none,
      ec);
  if (ec) return detail::TlsConfigError("client", "the verify mode", "", ec);
  st = detail::LoadTlsIdentity(c, "client", options.cert_file, options.key_file,
                               options.cert_pem, options.key_pem);
  if (!st.ok()) return st;
  return ctx;
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<asio::ssl::context>>
MakeTlsServerContext(const TlsServerOptions& options) {
  if ((options.cert_pem.empty() && options.cert_file.empty()) ||
      (options.key_pem.empty() && options.key_file.empty())) {
    return absl::InvalidArgumentError(
        "tls server: a certificate (cert_file or cert_pem) and its private "
        "key (key_file or key_pem) are required");
  }
  absl::StatusOr<std::shared_ptr<asio::ssl::context>> ctx =
      detail::NewTlsContext(asio::ssl::context::tls_server);
  if (!ctx.ok()) return ctx.status();
  asio::ssl::context& c = **ctx;
  absl::Status st =
      detail::LoadTlsIdentity(c, "server", options.cert_file, options.key_file,
                              options.cert_pem, options.key_pem);
  if (!st.ok()) return st;
  bool client_ca_given = false;
  st = detail::LoadTlsTrust(c, "server", "client_ca", options.client_ca_file,
                            options.client_ca_pem, client_ca_given);
  if (!st.ok()) return st;
  if (options.require_client_cert && !client_ca_given) {
    return absl::InvalidArgumentError(
        "tls server: require_client_cert needs client_ca_file or "
        "client_ca_pem");
  }
  asio::ssl::verify_mode mode = asio::ssl::verify_none;
  if (options.require_client_cert) {
    mode = asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert;
  } else if (client_ca_given) {
    mode = asio::ssl::verify_peer;
  }
  boost::system::error_code ec;
  c.set_verify_mode(mode, ec);
  if (ec) return detail::TlsConfigError("server", "the verify mode", "", ec);
  // Sessions resumed from OpenSSL's cache must belong to this context
  // (required by OpenSSL when client certificates are verified).
  static constexpr unsigned char kSessionContext[] = "symwire";
  if (SSL_CTX_set_session_id_context(c.native_handle(), kSessionContext,
                                     sizeof(kSessionContext) - 1) != 1) {
    ERR_clear_error();
    return absl::InternalError("tls server: cannot set the session context");
  }
  return ctx;
}

SYMWIRE_DECL void ConnectTls(const asio::any_io_executor& executor,
                             const std::string& host, uint16_t port,
                             std::shared_ptr<asio::ssl::context> context,
                             std::string server_name,
                             const TcpOptions& tcp_options,
                             std::chrono::milliseconds timeout,
                             const TransportOptions& transport_options,
                             DialHandler handler) {
  SYMWIRE_REQUIRE(context != nullptr);
  struct Op {
    Op(const asio::any_io_executor& ex, DialHandler h)
        : socket(ex), resolver(ex), timer(ex), handler(std::move(h)) {}
    asio::ip::tcp::socket socket;
    asio::ip::tcp::resolver resolver;
    asio::steady_timer timer;
    DialHandler handler;
    bool done = false;  // the connect phase ended (handler moved on)
    void Fail(absl::Status status) {
      if (done) return;
      done = true;
      timer.cancel();
      DialHandler h = std::move(handler);
      h(std::move(status));
    }
  };
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + timeout;
  auto op = std::make_shared<Op>(executor, std::move(handler));
  const std::string target = absl::StrCat(host, ":", port);
  if (server_name.empty()) server_name = host;
  op->timer.expires_at(deadline);
  op->timer.async_wait([op, target,
                        timeout](const boost::system::error_code& ec) {
    if (ec || op->done) return;
    op->resolver.cancel();
    boost::system::error_code ignored;
    op->socket.close(ignored);
    op->Fail(MakeError(ErrorCode::kConnectionLost,
                       absl::StrCat("connect to ", target, " timed out after ",
                                    timeout.count(), " ms")));
  });
  op->resolver.async_resolve(
      host, std::to_string(port),
      [op, target, context = std::move(context),
       server_name = std::move(server_name), tcp_options, deadline,
       transport_options](
          const boost::system::error_code& ec,
          const asio::ip::tcp::resolver::results_type& results) mutable {
        if (op->done) return;
        if (ec) {
          op->Fail(ToStatus(ec, absl::StrCat("resolve ", target)));
          return;
        }
        asio::async_connect(
            op->socket, results,
            [op, target, context = std::move(context),
             server_name = std::move(server_name), tcp_options, deadline,
             transport_options](const boost::system::error_code& cec,
                                const asio::ip::tcp::endpoint&) mutable {
              if (op->done) return;
              if (cec) {
                op->Fail(ToStatus(cec, absl::StrCat("connect to ", target)));
                return;
              }
              absl::Status st = ApplyTcpOptions(op->socket, tcp_options);
              if (!st.ok()) {
                op->Fail(std::move(st));
                return;
              }
              op->done = true;
              op->timer.cancel();
              // The handshake gets what is left of the overall timeout.
              const auto left =
                  std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - Clock::now());
              detail::StartTlsHandshake(
                  std::move(op->socket), std::move(context), true,
                  std::move(server_name),
                  std::max(left, std::chrono::milliseconds(1)),
                  transport_options, std::move(op->handler));
            });
      });
}

SYMWIRE_DECL Dialer TlsDialer(asio::any_io_executor executor, std::string host,
                              uint16_t port,
                              std::shared_ptr<asio::ssl::context> context,
                              std::string server_name, TcpOptions tcp_options,
                              std::chrono::milliseconds timeout,
                              TransportOptions transport_options) {
  SYMWIRE_REQUIRE(context != nullptr);
  return [executor = std::move(executor), host = std::move(host), port,
          context = std::move(context), server_name = std::move(server_name),
          tcp_options, timeout, transport_options](DialHandler handler) {
    ConnectTls(executor, host, port, context, server_name, tcp_options, timeout,
               transport_options, std::move(handler));
  };
}

SYMWIRE_DECL std::function<void(asio::ip::tcp::socket, DialHandler)> TlsUpgrade(
    std::shared_ptr<asio::ssl::context> context,
    std::chrono::milliseconds timeout, TransportOptions transport_options) {
  SYMWIRE_REQUIRE(context != nullptr);
  return [context = std::move(context), timeout, transport_options](
             asio::ip::tcp::socket socket, DialHandler done) {
    detail::StartTlsHandshake(std::move(socket), context, false, std::string(),
                              timeout, transport_options, std::move(done));
  };
}

}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_TLS_IPP_
