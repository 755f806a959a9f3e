// File: symwire/nats/detail/pool_state.hpp
// symwire::nats, internal. The state behind NatsOrchestrator and NatsAgent
// and the helpers their bodies (impl/pool.ipp) share: frame encode/decode of
// one message, cnats publish/fetch wrappers, the orchestrator's task
// records (SPEC.md §21.3), the agent's cancel records (§21.4, §21.7), the
// in-progress pinger and the handler's task context.
#ifndef SYMWIRE_NATS_DETAIL_POOL_STATE_HPP_
#define SYMWIRE_NATS_DETAIL_POOL_STATE_HPP_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "symwire/error.hpp"
#include "symwire/nats/detail/cnats.hpp"
#include "symwire/nats/detail/state.hpp"
#include "symwire/nats/pool.hpp"
#include "symwire/session/control.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"

namespace symwire {
namespace nats_detail {

inline absl::StatusOr<std::vector<std::byte>> EncodeOne(
    MessageType type, uint8_t flags, uint64_t stream_id, uint64_t sequence,
    absl::Span<const std::byte> payload, const FrameExtensions& ext = {}) {
  const FrameHeader header{type, static_cast<uint8_t>(flags | kFlagChecksum),
                           stream_id, sequence};
  absl::StatusOr<size_t> size = EncodedSize(header, ext, payload.size());
  if (!size.ok()) return size.status();
  std::vector<std::byte> out(*size);
  absl::StatusOr<size_t> n =
      EncodeFrame(header, ext, payload, absl::MakeSpan(out));
  if (!n.ok()) return n.status();
  return out;
}

// DecodeOne
// §21.8: the message data is exactly one frame with a payload checksum.
// The returned view points into `data`.
inline absl::StatusOr<FrameView> DecodeOne(absl::Span<const std::byte> data) {
  DecoderOptions options;
  options.expect_preface = false;
  FrameDecoder decoder(options);
  absl::StatusOr<DecodeStep> step = decoder.Decode(data);
  if (!step.ok()) return step.status();
  if (step->kind != DecodeStep::Kind::kFrame) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nats message of ", data.size(), " bytes ends inside its frame"));
  }
  if (step->consumed != data.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("nats message has ", data.size() - step->consumed,
                     " bytes after its frame at offset ", step->consumed));
  }
  if ((step->frame.flags() & kFlagChecksum) == 0) {
    return absl::InvalidArgumentError(
        "pool frame without flag CHECKSUM at offset 1 (SPEC.md §21.2)");
  }
  return step->frame;
}

inline absl::Span<const std::byte> MsgData(natsMsg* m) {
  return {reinterpret_cast<const std::byte*>(natsMsg_GetData(m)),
          static_cast<size_t>(natsMsg_GetDataLength(m))};
}

// Publish
// A JetStream publish that waits for the stream's acknowledgement.
inline absl::Status Publish(jsCtx* js, const std::string& subject,
                            absl::Span<const std::byte> data,
                            const std::string& msg_id) {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  if (!msg_id.empty()) po.MsgId = msg_id.c_str();
  jsPubAck* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_Publish(&raw, js, subject.c_str(), data.data(),
                                  static_cast<int>(data.size()), &po, &jerr);
  PubAckPtr ack(raw);
  if (s != NATS_OK) {
    return StatusFromNats(s, absl::StrCat("js_Publish ", subject), jerr);
  }
  return absl::OkStatus();
}

inline absl::StatusOr<SubscriptionPtr> BindPull(jsCtx* js,
                                                const std::string& subject,
                                                const std::string& stream,
                                                const std::string& durable) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Consumer = durable.c_str();
  natsSubscription* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_PullSubscribe(&raw, js, subject.c_str(),
                                        durable.c_str(), nullptr, &so, &jerr);
  SubscriptionPtr sub(raw);
  if (s != NATS_OK) {
    return StatusFromNats(
        s, absl::StrCat("js_PullSubscribe ", stream, "/", durable), jerr);
  }
  return sub;
}

// FetchOne
// One message, or nullptr after `timeout` with nothing.
inline absl::StatusOr<MsgPtr> FetchOne(natsSubscription* sub,
                                       absl::Duration timeout) {
  natsMsgList list{nullptr, 0};
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s =
      natsSubscription_Fetch(&list, sub, 1, ToMillis(timeout), &jerr);
  if (s == NATS_TIMEOUT) return MsgPtr();
  if (s != NATS_OK) return StatusFromNats(s, "natsSubscription_Fetch", jerr);
  MsgPtr msg;
  if (list.Count > 0) {
    msg.reset(list.Msgs[0]);
    list.Msgs[0] = nullptr;  // natsMsgList_Destroy skips it
  }
  natsMsgList_Destroy(&list);
  return msg;
}

inline std::string HeaderOf(natsMsg* m, const char* key) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(m, key, &value) != NATS_OK || value == nullptr) {
    return {};
  }
  return value;
}

inline absl::StatusOr<MetaDataPtr> MetaOf(natsMsg* m) {
  jsMsgMetaData* raw = nullptr;
  const natsStatus s = natsMsg_GetMetaData(&raw, m);
  MetaDataPtr meta(raw);
  if (s != NATS_OK) return StatusFromNats(s, "natsMsg_GetMetaData");
  return meta;
}

// --- orchestrator ---------------------------------------------------------

struct TaskTrack {
  uint64_t attempt = 0;     // adopted attempt (0 = none yet)
  uint64_t next_index = 0;  // the I expected next in the adopted attempt
  bool delivered = false;   // partials of the adopted attempt were reported
  bool ended = false;
  bool submitted_here = false;  // by this process: its first I must be 0
  bool cancel_sent = false;     // its AGENT_CANCEL was published (§21.3)
};

// ParseIndex
// The decimal I at the end of a response's Nats-Msg-Id (§21.2).
inline bool ParseIndex(absl::string_view digits, uint64_t& out) {
  if (digits.empty() || digits.size() > 19 ||
      (digits.size() > 1 && digits[0] == '0')) {
    return false;
  }
  uint64_t v = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

struct OrchestratorState {
  NatsClient client;
  NatsOrchestratorOptions options;
  NatsPoolNames pool;
  NatsOrchestratorNames names;
  SubscriptionPtr responses;
  std::mutex mu;
  uint64_t next_id = 0;
  // The first id this process gave out (§21.3 records): a frame for an id
  // at or above it that has no record is of a task that ended here and
  // aged out; below it, of a task an earlier process submitted.
  uint64_t first_id = 0;
  absl::flat_hash_map<uint64_t, TaskTrack> tasks;
  // Ended tasks with ids at or above first_id, oldest end first: their
  // records are dropped after the pool's ack_wait x max_deliveries
  // (AgeOutEnded). Records below first_id are kept: a later frame of such
  // a task would otherwise be taken for an earlier process's result.
  std::deque<std::pair<absl::Time, uint64_t>> ended;
  // Reports decided but not yet returned by Next (a kRestarted and the
  // frame that caused it).
  std::deque<NatsResponse> pending;
  // Stream sequence of the last response processed: a redelivery of one
  // already processed (its ack was lost) is acked and dropped (§21.3).
  uint64_t last_stream_seq = 0;
  // Deadlines of open tasks submitted here (wall clock, §21.3).
  std::multimap<absl::Time, uint64_t> deadlines;
  // Task ids whose Submit is publishing (Cancel waits for them, §21.3).
  absl::flat_hash_map<uint64_t, int> submitting;
  std::condition_variable submitted;
  std::atomic<uint64_t> discarded{0};
  std::atomic<uint64_t> rejected{0};
  explicit OrchestratorState(NatsClient c) : client(std::move(c)) {}
};

// EndTask
// Ends task `id` here (mu held) and queues its record for AgeOutEnded.
inline void EndTask(OrchestratorState& state, uint64_t id, TaskTrack& t) {
  if (t.ended) return;
  t.ended = true;
  if (id >= state.first_id) state.ended.emplace_back(absl::Now(), id);
}

// AgeOutEnded
// Drops the records of tasks that ended more than ack_wait x
// max_deliveries ago (mu held): by then JetStream delivered the task for
// the last time (a terminal frame whose ack was lost is redelivered at
// most max_deliveries times, ack_wait apart). A later frame for one is
// still discarded (no record, id at or above first_id).
inline void AgeOutEnded(OrchestratorState& state, absl::Time now) {
  const absl::Duration keep =
      state.options.pool.ack_wait * static_cast<int64_t>(std::max<uint32_t>(
                                        state.options.pool.max_deliveries, 1));
  while (!state.ended.empty() && state.ended.front().first + keep <= now) {
    state.tasks.erase(state.ended.front().second);
    state.ended.pop_front();
  }
}

// --- agent ----------------------------------------------------------------

// InProgressPinger
// Sends +WPI for the task being run every `period` (§21.4): Begin to End.
// One thread per agent, started on the first Begin (a thread per task cost
// the agent a measurable share of its rate).
class InProgressPinger {
 public:
  InProgressPinger() = default;
  InProgressPinger(const InProgressPinger&) = delete;
  InProgressPinger& operator=(const InProgressPinger&) = delete;
  ~InProgressPinger() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void Begin(natsMsg* msg, absl::Duration period) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
      msg_ = msg;
      period_ = period;
      ++generation_;
    }
    cv_.notify_all();
  }
  // After End returns no +WPI for the message is sent (it is sent under
  // the lock), so the message may be destroyed.
  void End() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      msg_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!quit_) {
      if (msg_ == nullptr) {
        cv_.wait(lock, [this] { return quit_ || msg_ != nullptr; });
        continue;
      }
      const uint64_t generation = generation_;
      if (cv_.wait_for(lock, absl::ToChronoNanoseconds(period_),
                       [&] { return quit_ || generation_ != generation; })) {
        continue;
      }
      natsMsg_InProgress(msg_, nullptr);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  natsMsg* msg_ = nullptr;
  absl::Duration period_;
  uint64_t generation_ = 0;
  bool quit_ = false;
  std::thread thread_;
};

struct AgentState {
  NatsClient client;
  NatsAgentOptions options;
  NatsPoolNames pool;
  NatsHandler handler;
  SubscriptionPtr tasks;
  // §21.4: a synchronous subscription to the pool's cancels on the same
  // connection as `tasks`. cnats' one reader thread queues messages in the
  // order the server sent them, so after a fetch returns a task, every
  // cancel the server sent before it is in this queue (DrainCancels).
  SubscriptionPtr cancels;
  std::mutex mu;
  // The task being checked or run, as "<O>.<T>" (a cancel subject's
  // tail), and whether a cancel for it was seen.
  std::string running;
  bool running_cancelled = false;
  absl::StatusCode running_reason = absl::StatusCode::kCancelled;
  // §21.4 live cancels: every cancel received since the subscription
  // became active, by "<O>.<T>", for the pool's cancel_retention (the
  // cancel stream's max_age) and at most kMaxLiveCancels of them; `order`
  // lists them oldest first for the expiry.
  static constexpr size_t kMaxLiveCancels = size_t{1} << 16;
  absl::flat_hash_map<std::string, absl::StatusCode> live;
  std::deque<std::pair<absl::Time, std::string>> order;
  // Whether the live cancels can stand in for the stored look-up at all
  // (one JetStream server, §21.4), and the task stream's last sequence
  // when the live record last became complete: a task with a stream
  // sequence at or below it is looked up in the cancel stream.
  bool live_mode = false;
  uint64_t lookup_up_to = UINT64_MAX;
  // Set when the live record lost a cancel (an expiry by count, a message
  // cnats dropped, a reconnect): the next RunOnce re-establishes it.
  bool live_broken = false;
  uint64_t reconnects = 0;
  int64_t dropped = 0;
  std::atomic<uint64_t> stored_lookups{0};
  InProgressPinger pinger;
  explicit AgentState(NatsClient c) : client(std::move(c)) {}
  AgentState(const AgentState&) = delete;
  AgentState& operator=(const AgentState&) = delete;
};

// CancelReason
// §13.3 / §21.7: reason 4 (DEADLINE_EXCEEDED) or 1 (CANCELLED, also for a
// payload that does not parse: the cancel still stops the task).
inline absl::StatusCode CancelReason(const FrameView& frame) {
  absl::StatusOr<CancelMessage> c = ParseCancel(frame.payload());
  return c.ok() ? c->reason : absl::StatusCode::kCancelled;
}

// SendCancelled
// The terminal frame of a cancelled task: the §13.3 payloads.
template <class Context>
absl::Status SendCancelled(Context& ctx, absl::StatusCode reason) {
  return reason == absl::StatusCode::kDeadlineExceeded
             ? ctx.SendError(reason, "deadline exceeded")
             : ctx.SendError(absl::StatusCode::kCancelled, "cancelled");
}

// NoteCancel
// Records one received cancel (state.mu held).
inline void NoteCancel(AgentState& state, natsMsg* raw, absl::Time now) {
  const absl::string_view subject = natsMsg_GetSubject(raw);
  const std::string prefix = absl::StrCat(
      state.pool.task_subject.substr(
          0, state.pool.task_subject.size() - std::strlen("tasks")),
      "cancel.");
  if (subject.substr(0, prefix.size()) != prefix) return;
  // §21.7: a cancel that fails §21.8 or names another task is ignored.
  absl::StatusOr<FrameView> frame = DecodeOne(MsgData(raw));
  if (!frame.ok() || frame->type() != MessageType::kAgentCancel) return;
  std::string tail(subject.substr(prefix.size()));
  if (!absl::EndsWith(tail, absl::StrCat(".", frame->stream_id()))) return;
  const absl::StatusCode reason = CancelReason(*frame);
  if (tail == state.running) {
    state.running_cancelled = true;
    state.running_reason = reason;
  }
  if (state.live.insert_or_assign(tail, reason).second) {
    state.order.emplace_back(now, std::move(tail));
  }
}

// DrainCancels
// Takes every cancel cnats queued so far and ages the live record out
// (state.mu held).
inline void DrainCancels(AgentState& state) {
  const absl::Time now = absl::Now();
  for (;;) {
    natsMsg* raw = nullptr;
    if (natsSubscription_NextMsg(&raw, state.cancels.get(), 0) != NATS_OK) {
      break;
    }
    MsgPtr msg(raw);
    NoteCancel(state, raw, now);
  }
  const absl::Time expired = now - state.options.pool.cancel_retention;
  while (!state.order.empty() &&
         (state.order.front().first < expired ||
          state.order.size() > AgentState::kMaxLiveCancels)) {
    if (state.order.front().first >= expired) state.live_broken = true;
    state.live.erase(state.order.front().second);
    state.order.pop_front();
  }
}

// SyncLiveCancels
// Makes the live record complete from now on (§21.4): the subscription is
// active on the server (a flush) before the task stream's last sequence
// is read; tasks stored later than that have cancels published later
// still, which the subscription receives. Also notes the connection's
// reconnect and drop counts, whose change breaks the record.
inline absl::Status SyncLiveCancels(AgentState& state) {
  natsConnection* nc = state.client.state()->connection.get();
  uint64_t reconnects = 0;
  int64_t dropped = 0;
  natsStatistics* stats = nullptr;
  if (natsStatistics_Create(&stats) == NATS_OK) {
    if (natsConnection_GetStats(nc, stats) == NATS_OK) {
      (void)natsStatistics_GetCounts(stats, nullptr, nullptr, nullptr, nullptr,
                                     &reconnects);
    }
    natsStatistics_Destroy(stats);
  }
  (void)natsSubscription_GetDropped(state.cancels.get(), &dropped);
  if (const natsStatus f = natsConnection_Flush(nc); f != NATS_OK) {
    return StatusFromNats(f, "natsConnection_Flush");
  }
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s =
      js_GetStreamInfo(&raw, state.client.state()->js.get(),
                       state.pool.task_stream.c_str(), nullptr, &jerr);
  StreamInfoPtr info(raw);
  if (s != NATS_OK) {
    return StatusFromNats(
        s, absl::StrCat("js_GetStreamInfo ", state.pool.task_stream), jerr);
  }
  // One server: no cluster name (nats-server reports the leader only).
  const bool one_server = info->Cluster == nullptr ||
                          info->Cluster->Name == nullptr ||
                          info->Cluster->Name[0] == '\0';
  std::lock_guard<std::mutex> lock(state.mu);
  state.reconnects = reconnects;
  state.dropped = dropped;
  state.live_mode = one_server;
  state.lookup_up_to = one_server ? info->State.LastSeq : UINT64_MAX;
  state.live_broken = false;
  return absl::OkStatus();
}

// LiveCancelsBroken
// Whether the record may have missed a cancel since SyncLiveCancels
// (state.mu held).
inline bool LiveCancelsBroken(AgentState& state) {
  if (state.live_broken) return true;
  int64_t dropped = 0;
  if (natsSubscription_GetDropped(state.cancels.get(), &dropped) == NATS_OK &&
      dropped != state.dropped) {
    return true;
  }
  natsStatistics* stats = nullptr;
  if (natsStatistics_Create(&stats) != NATS_OK) return true;
  uint64_t reconnects = 0;
  const bool ok =
      natsConnection_GetStats(state.client.state()->connection.get(), stats) ==
          NATS_OK &&
      natsStatistics_GetCounts(stats, nullptr, nullptr, nullptr, nullptr,
                               &reconnects) == NATS_OK;
  natsStatistics_Destroy(stats);
  return !ok || reconnects != state.reconnects;
}

class TaskContextImpl final : public NatsTaskContext {
 public:
  TaskContextImpl(AgentState* state, std::string orchestrator,
                  std::string response_subject, uint64_t task_id,
                  uint64_t attempt, absl::Span<const std::byte> payload,
                  std::optional<absl::Time> deadline)
      : state_(state),
        orchestrator_(std::move(orchestrator)),
        response_subject_(std::move(response_subject)),
        task_id_(task_id),
        attempt_(attempt),
        payload_(payload),
        deadline_(deadline) {}

  uint64_t task_id() const override { return task_id_; }
  uint64_t attempt() const override { return attempt_; }
  absl::Span<const std::byte> payload() const override { return payload_; }
  std::optional<absl::Time> deadline() const override { return deadline_; }
  absl::string_view method() const override { return frame_.method(); }
  std::optional<TraceParent> trace_parent() const override {
    return frame_.trace_parent();
  }
  absl::string_view trace_state() const override {
    return frame_.trace_state();
  }
  const std::vector<std::pair<std::string, std::string>>& metadata()
      const override {
    if (!metadata_) {
      metadata_.emplace();
      for (const MetadataEntry& e : frame_.metadata()) {
        metadata_->emplace_back(std::string(e.key), std::string(e.value));
      }
    }
    return *metadata_;
  }
  // The task's frame (its extensions), when the context has one.
  void set_frame(const FrameView& frame) { frame_ = frame; }
  bool cancelled() const override {
    std::lock_guard<std::mutex> lock(state_->mu);
    DrainCancels(*state_);
    return state_->running_cancelled;
  }
  absl::Status Respond(absl::Span<const std::byte> payload) override {
    if (cancelled()) return absl::CancelledError("task cancelled");
    if (!publish_error_.ok()) return publish_error_;
    return Send(MessageType::kAgentResponse, 0, payload);
  }

  void SetErrorRetryable(bool retryable) override {
    error_retryable_ = retryable;
  }
  bool error_retryable() const { return error_retryable_; }
  void Release() override { released_ = true; }
  bool released() const { return released_; }

  // The first failed response publish (§21.4: the attempt is broken).
  const absl::Status& publish_error() const { return publish_error_; }

  // Publishes the attempt's next frame (§21.2: sequence = attempt, the
  // Nats-Msg-Id carries the index).
  absl::Status Send(MessageType type, uint8_t flags,
                    absl::Span<const std::byte> payload) {
    absl::StatusOr<std::vector<std::byte>> frame =
        EncodeOne(type, flags, task_id_, attempt_, payload);
    if (!frame.ok()) return frame.status();
    absl::Status s =
        Publish(state_->client.state()->js.get(), response_subject_, *frame,
                NatsResponseMsgId(orchestrator_, task_id_, attempt_, index_));
    if (s.ok()) {
      ++index_;
    } else if (publish_error_.ok()) {
      publish_error_ = s;
    }
    return s;
  }

  absl::Status SendError(absl::StatusCode code, absl::string_view message,
                         ErrorCode detail = ErrorCode::kOk,
                         bool retryable = false) {
    ErrorMessage e;
    e.code = code;
    e.message = message;
    e.detail = detail;
    e.retryable = retryable;
    std::vector<std::byte> payload;
    if (absl::Status s = AppendError(e, payload); !s.ok()) return s;
    return Send(MessageType::kAgentError, 0, payload);
  }

 private:
  AgentState* state_;
  std::string orchestrator_;
  std::string response_subject_;
  uint64_t task_id_;
  uint64_t attempt_;
  absl::Span<const std::byte> payload_;
  std::optional<absl::Time> deadline_;
  FrameView frame_;
  mutable std::optional<std::vector<std::pair<std::string, std::string>>>
      metadata_;
  absl::Status publish_error_;
  uint64_t index_ = 0;
  bool error_retryable_ = false;
  bool released_ = false;
};

}  // namespace nats_detail

}  // namespace symwire

#endif  // SYMWIRE_NATS_DETAIL_POOL_STATE_HPP_
