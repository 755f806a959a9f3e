// File: symwire/nats/impl/client.ipp
// Out-of-line bodies of symwire/nats/client.hpp (SPEC.md §21.1).
#ifndef SYMWIRE_NATS_IMPL_CLIENT_IPP_
#define SYMWIRE_NATS_IMPL_CLIENT_IPP_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "symwire/nats/client.hpp"
#include "symwire/nats/detail/cnats.hpp"
#include "symwire/nats/detail/state.hpp"

namespace symwire {
namespace nats_detail {

inline absl::Status CheckPoolOptions(const NatsPoolOptions& o) {
  if (absl::Status s = ValidateNatsName(o.pool, "pool name"); !s.ok()) {
    return s;
  }
  if (o.replicas < 1 || o.replicas > 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("replicas ", o.replicas, " is outside 1..5"));
  }
  if (o.max_deliveries == 0) {
    return absl::InvalidArgumentError("max_deliveries is 0");
  }
  if (o.ack_wait <= absl::ZeroDuration() ||
      o.duplicate_window <= absl::ZeroDuration() ||
      o.cancel_retention <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ack_wait, duplicate_window and cancel_retention must be positive");
  }
  return absl::OkStatus();
}

// AddStream
// js_AddStream with `config`; the server accepts an identical existing
// stream and refuses one with other settings (JSStreamNameExistErr, which
// StatusFromNats makes FAILED_PRECONDITION).
inline absl::Status AddStream(jsCtx* js, jsStreamConfig& config) {
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_AddStream(&raw, js, &config, nullptr, &jerr);
  StreamInfoPtr info(raw);
  if (s != NATS_OK) {
    return StatusFromNats(s, absl::StrCat("js_AddStream ", config.Name), jerr);
  }
  return absl::OkStatus();
}

inline void InitStream(jsStreamConfig& c, const NatsPoolOptions& o,
                       const char* name, const char** subject) {
  jsStreamConfig_Init(&c);
  c.Name = name;
  c.Subjects = subject;
  c.SubjectsLen = 1;
  c.Storage =
      o.storage == NatsStorage::kMemory ? js_MemoryStorage : js_FileStorage;
  c.Replicas = o.replicas;
  c.Duplicates = ToNanos(o.duplicate_window);
}

// `max_ack_pending` 0: the server's default.
inline absl::Status AddDurable(jsCtx* js, const std::string& stream,
                               const std::string& durable,
                               absl::Duration ack_wait,
                               int64_t max_ack_pending = 0) {
  jsConsumerConfig c;
  jsConsumerConfig_Init(&c);
  c.Durable = durable.c_str();
  c.AckPolicy = js_AckExplicit;
  c.AckWait = ToNanos(ack_wait);
  if (max_ack_pending > 0) c.MaxAckPending = max_ack_pending;
  c.MaxDeliver = -1;  // §21.5: agents count deliveries themselves
  c.DeliverPolicy = js_DeliverAll;
  // Look first: the server (2.9) silently updates an existing durable when
  // it is created again with other settings, and §21.1 wants such a
  // mismatch refused, not adopted.
  jsConsumerInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&raw, js, stream.c_str(), durable.c_str(),
                                    nullptr, &jerr);
  ConsumerInfoPtr info(raw);
  if (s == NATS_NOT_FOUND || static_cast<int>(jerr) == JSConsumerNotFoundErr) {
    raw = nullptr;
    jerr = static_cast<jsErrCode>(0);
    // Two processes may both get here: identical creates both succeed.
    s = js_AddConsumer(&raw, js, stream.c_str(), &c, nullptr, &jerr);
    info.reset(raw);
  }
  if (s != NATS_OK) {
    return StatusFromNats(
        s, absl::StrCat("js_AddConsumer ", stream, "/", durable), jerr);
  }
  if (info && (info->Config->AckWait != c.AckWait ||
               info->Config->AckPolicy != c.AckPolicy ||
               info->Config->MaxDeliver != c.MaxDeliver ||
               (max_ack_pending > 0 &&
                info->Config->MaxAckPending != max_ack_pending))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "consumer ", stream, "/", durable,
        " exists with other settings (ack_wait ", info->Config->AckWait,
        " ns, max_deliver ", info->Config->MaxDeliver, ", max_ack_pending ",
        info->Config->MaxAckPending, ")"));
  }
  return absl::OkStatus();
}

}  // namespace nats_detail

SYMWIRE_DECL absl::StatusOr<NatsClient> NatsClient::Connect(
    const NatsConnectOptions& options) {
  using nats_detail::StatusFromNats;
  natsOptions* raw_opts = nullptr;
  natsStatus s = natsOptions_Create(&raw_opts);
  nats_detail::OptionsPtr opts(raw_opts);
  if (s != NATS_OK) return StatusFromNats(s, "natsOptions_Create");
  const auto set = [&](natsStatus r, absl::string_view what) -> absl::Status {
    if (r != NATS_OK) return StatusFromNats(r, what);
    return absl::OkStatus();
  };
  // A comma-separated list (a cluster) goes to natsOptions_SetServers:
  // natsOptions_SetURL takes one URL only.
  const std::vector<std::string> urls =
      absl::StrSplit(options.url, ',', absl::SkipWhitespace());
  absl::Status st;
  if (urls.size() > 1) {
    std::vector<const char*> servers;
    servers.reserve(urls.size());
    for (const std::string& u : urls) servers.push_back(u.c_str());
    st = set(natsOptions_SetServers(opts.get(), servers.data(),
                                    static_cast<int>(servers.size())),
             "natsOptions_SetServers");
  } else {
    st = set(natsOptions_SetURL(opts.get(), options.url.c_str()),
             "natsOptions_SetURL");
  }
  if (st.ok()) {
    st = set(natsOptions_SetTimeout(
                 opts.get(), nats_detail::ToMillis(options.connect_timeout)),
             "natsOptions_SetTimeout");
  }
  // Frames are small and latency matters more than batching (BUILD-NOTES).
  if (st.ok()) {
    st = set(natsOptions_SetSendAsap(opts.get(), true),
             "natsOptions_SetSendAsap");
  }
  if (st.ok() && !options.connection_name.empty()) {
    st = set(natsOptions_SetName(opts.get(), options.connection_name.c_str()),
             "natsOptions_SetName");
  }
  if (st.ok() && !options.credentials_file.empty()) {
    st = set(natsOptions_SetUserCredentialsFromFiles(
                 opts.get(), options.credentials_file.c_str(), nullptr),
             "natsOptions_SetUserCredentialsFromFiles");
  }
  if (st.ok() && !options.user.empty()) {
    st = set(natsOptions_SetUserInfo(opts.get(), options.user.c_str(),
                                     options.password.c_str()),
             "natsOptions_SetUserInfo");
  }
  if (st.ok() && !options.token.empty()) {
    st = set(natsOptions_SetToken(opts.get(), options.token.c_str()),
             "natsOptions_SetToken");
  }
  if (st.ok() && options.tls) {
    st = set(natsOptions_SetSecure(opts.get(), true), "natsOptions_SetSecure");
  }
  if (st.ok() && !options.tls_ca_file.empty()) {
    st = set(natsOptions_LoadCATrustedCertificates(opts.get(),
                                                   options.tls_ca_file.c_str()),
             "natsOptions_LoadCATrustedCertificates");
  }
  if (st.ok() && !options.tls_cert_file.empty()) {
    st = set(natsOptions_LoadCertificatesChain(opts.get(),
                                               options.tls_cert_file.c_str(),
                                               options.tls_key_file.c_str()),
             "natsOptions_LoadCertificatesChain");
  }
  if (!st.ok()) return st;

  auto state = std::make_shared<nats_detail::ClientState>();
  state->options = options;
  natsConnection* raw_conn = nullptr;
  s = natsConnection_Connect(&raw_conn, opts.get());
  state->connection.reset(raw_conn);
  if (s != NATS_OK) {
    return StatusFromNats(s, absl::StrCat("connect to ", options.url));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = nats_detail::ToMillis(options.request_timeout);
  jsCtx* raw_js = nullptr;
  s = natsConnection_JetStream(&raw_js, state->connection.get(), &jo);
  state->js.reset(raw_js);
  if (s != NATS_OK) return StatusFromNats(s, "natsConnection_JetStream");
  return NatsClient(std::move(state));
}

SYMWIRE_DECL const NatsConnectOptions& NatsClient::options() const {
  return state_->options;
}

SYMWIRE_DECL absl::Status NatsClient::EnsurePool(
    const NatsPoolOptions& options) const {
  if (absl::Status s = nats_detail::CheckPoolOptions(options); !s.ok()) {
    return s;
  }
  absl::StatusOr<NatsPoolNames> names = MakeNatsPoolNames(options.pool);
  if (!names.ok()) return names.status();
  jsCtx* js = state_->js.get();

  // §21.1 task stream: work-queue retention, each task goes to one agent.
  {
    jsStreamConfig c;
    const char* subject = names->task_subject.c_str();
    nats_detail::InitStream(c, options, names->task_stream.c_str(), &subject);
    c.Retention = js_WorkQueuePolicy;
    c.MaxMsgs = options.max_queued_tasks;
    c.MaxBytes = options.max_queued_bytes;
    c.Discard = js_DiscardNew;  // a full queue refuses; it never drops
    if (absl::Status s = nats_detail::AddStream(js, c); !s.ok()) return s;
  }
  // §21.1 cancel stream: the last cancel of each task, for a while.
  {
    jsStreamConfig c;
    const char* subject = names->cancel_stream_subject.c_str();
    nats_detail::InitStream(c, options, names->cancel_stream.c_str(), &subject);
    c.Retention = js_LimitsPolicy;
    c.MaxMsgsPerSubject = 1;
    c.MaxAge = nats_detail::ToNanos(options.cancel_retention);
    if (absl::Status s = nats_detail::AddStream(js, c); !s.ok()) return s;
  }
  // §21.1 dead-letter stream: kept for inspection.
  {
    jsStreamConfig c;
    const char* subject = names->dead_subject.c_str();
    nats_detail::InitStream(c, options, names->dead_stream.c_str(), &subject);
    c.Retention = js_LimitsPolicy;
    if (absl::Status s = nats_detail::AddStream(js, c); !s.ok()) return s;
  }
  return nats_detail::AddDurable(js, names->task_stream, names->agents_consumer,
                                 options.ack_wait);
}

SYMWIRE_DECL absl::Status NatsClient::EnsureOrchestrator(
    const NatsPoolOptions& options, absl::string_view orchestrator) const {
  if (absl::Status s = nats_detail::CheckPoolOptions(options); !s.ok()) {
    return s;
  }
  absl::StatusOr<NatsOrchestratorNames> names =
      MakeNatsOrchestratorNames(options.pool, orchestrator);
  if (!names.ok()) return names.status();
  jsCtx* js = state_->js.get();
  jsStreamConfig c;
  const char* subject = names->response_subject.c_str();
  nats_detail::InitStream(c, options, names->response_stream.c_str(), &subject);
  c.Retention = js_WorkQueuePolicy;
  if (absl::Status s = nats_detail::AddStream(js, c); !s.ok()) return s;
  // §21.1: max_ack_pending 1 keeps the responses in stream order even when
  // a delivery is lost on its way (a fetch that timed out as the server
  // answered, a failover): the server delivers that one again, after the
  // ack wait, before any later one. Next takes one response at a time
  // anyway.
  return nats_detail::AddDurable(js, names->response_stream,
                                 names->orchestrator_consumer, options.ack_wait,
                                 /*max_ack_pending=*/1);
}

}  // namespace symwire

#endif  // SYMWIRE_NATS_IMPL_CLIENT_IPP_
