// File: symwire/nats/impl/pool.ipp
// Out-of-line bodies of symwire/nats/pool.hpp (SPEC.md §21.3-§21.8).
#ifndef SYMWIRE_NATS_IMPL_POOL_IPP_
#define SYMWIRE_NATS_IMPL_POOL_IPP_

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
#include "symwire/nats/detail/pool_state.hpp"
#include "symwire/nats/detail/state.hpp"
#include "symwire/nats/pool.hpp"
#include "symwire/session/control.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/encoder.hpp"

namespace symwire {

// ---- NatsOrchestrator ------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<NatsOrchestrator> NatsOrchestrator::Create(
    NatsClient client, NatsOrchestratorOptions options) {
  if (absl::Status s = client.EnsurePool(options.pool); !s.ok()) return s;
  if (absl::Status s =
          client.EnsureOrchestrator(options.pool, options.identity);
      !s.ok()) {
    return s;
  }
  auto state =
      std::make_shared<nats_detail::OrchestratorState>(std::move(client));
  state->options = std::move(options);
  state->pool = *MakeNatsPoolNames(state->options.pool.pool);
  state->names = *MakeNatsOrchestratorNames(state->options.pool.pool,
                                            state->options.identity);
  absl::StatusOr<nats_detail::SubscriptionPtr> sub = nats_detail::BindPull(
      state->client.state()->js.get(), state->names.response_subject,
      state->names.response_stream, state->names.orchestrator_consumer);
  if (!sub.ok()) return sub.status();
  state->responses = std::move(*sub);
  state->next_id = static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
  state->first_id = state->next_id;
  return NatsOrchestrator(std::move(state));
}

SYMWIRE_DECL absl::StatusOr<uint64_t> NatsOrchestrator::Submit(
    absl::Span<const std::byte> payload, const NatsSubmitOptions& options) {
  // §21.3: the orchestrator's deadline is submit time + budget.
  const absl::Time submitted = absl::Now();
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    id = options.task_id.value_or(state_->next_id);
    if (absl::Status s = ValidateNatsTaskId(id); !s.ok()) return s;
    if (auto it = state_->tasks.find(id);
        it != state_->tasks.end() && it->second.cancel_sent) {
      // §21.3: its cancel is out; a task published now would follow it.
      return absl::FailedPreconditionError(
          absl::StrCat("task ", id, " was cancelled here"));
    }
    if (id >= state_->next_id) state_->next_id = id + 1;
    ++state_->submitting[id];
    // The record exists before the publish: a response may be processed
    // by Next before this thread returns from it.
    state_->tasks[id].submitted_here = true;
  }
  struct Submitted {
    nats_detail::OrchestratorState& st;
    uint64_t id;
    ~Submitted() {
      {
        std::lock_guard<std::mutex> lock(st.mu);
        if (auto it = st.submitting.find(id); --it->second == 0) {
          st.submitting.erase(it);
        }
      }
      st.submitted.notify_all();
    }
  } submitted_guard{*state_, id};
  FrameExtensions ext;
  if (options.deadline) {
    ext.deadline_us = static_cast<uint64_t>(
        std::max<int64_t>(0, absl::ToInt64Microseconds(*options.deadline)));
  }
  ext.method = options.method;
  ext.trace_parent = options.trace_parent;
  ext.trace_state = options.trace_state;
  std::vector<MetadataEntry> metadata;
  metadata.reserve(options.metadata.size());
  for (const auto& [key, value] : options.metadata) {
    metadata.push_back({key, value});
  }
  ext.metadata = metadata;
  absl::StatusOr<std::vector<std::byte>> frame =
      nats_detail::EncodeOne(MessageType::kAgentTask, 0, id, 0, payload, ext);
  if (!frame.ok()) return frame.status();
  if (absl::Status s = nats_detail::Publish(
          state_->client.state()->js.get(), state_->pool.task_subject, *frame,
          NatsTaskMsgId(state_->options.identity, id));
      !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  if (options.deadline) {
    state_->deadlines.emplace(submitted + *options.deadline, id);
  }
  return id;
}

namespace nats_detail {
// PublishCancel
// The AGENT_CANCEL message of §21.2 for `task_id` with `reason`.
inline absl::Status PublishCancel(OrchestratorState& state, uint64_t task_id,
                                  absl::StatusCode reason) {
  std::vector<std::byte> payload;
  CancelMessage cancel;
  cancel.reason = reason;
  if (absl::Status s = AppendCancel(cancel, payload); !s.ok()) return s;
  absl::StatusOr<std::vector<std::byte>> frame =
      EncodeOne(MessageType::kAgentCancel, 0, task_id, 0, payload);
  if (!frame.ok()) return frame.status();
  return Publish(state.client.state()->js.get(),
                 NatsCancelSubject(state.options.pool.pool,
                                   state.options.identity, task_id),
                 *frame, NatsCancelMsgId(state.options.identity, task_id));
}
}  // namespace nats_detail

SYMWIRE_DECL absl::Status NatsOrchestrator::Cancel(uint64_t task_id) {
  if (absl::Status s = ValidateNatsTaskId(task_id); !s.ok()) return s;
  {
    // §21.3: the task ends locally at once; its cancel is published after
    // its Submit, if one is running, was answered.
    std::unique_lock<std::mutex> lock(state_->mu);
    nats_detail::TaskTrack& t = state_->tasks[task_id];
    nats_detail::EndTask(*state_, task_id, t);
    t.cancel_sent = true;
    state_->submitted.wait(
        lock, [&] { return !state_->submitting.contains(task_id); });
  }
  return nats_detail::PublishCancel(*state_, task_id,
                                    absl::StatusCode::kCancelled);
}

SYMWIRE_DECL uint64_t NatsOrchestrator::discarded_frames() const {
  return state_->discarded.load();
}
SYMWIRE_DECL uint64_t NatsOrchestrator::rejected_messages() const {
  return state_->rejected.load();
}

SYMWIRE_DECL size_t NatsOrchestrator::tracked_tasks() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->tasks.size();
}

SYMWIRE_DECL uint64_t NatsAgent::stored_cancel_lookups() const {
  return state_->stored_lookups.load();
}

SYMWIRE_DECL absl::StatusOr<std::optional<NatsResponse>> NatsOrchestrator::Next(
    absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      nats_detail::AgeOutEnded(*state_, absl::Now());
      if (!state_->pending.empty()) {
        NatsResponse r = std::move(state_->pending.front());
        state_->pending.pop_front();
        return std::optional<NatsResponse>(std::move(r));
      }
    }
    // §21.3: a task whose deadline passed here ends now, and its agents
    // are told to stop (cancel reason 4).
    absl::Time next_deadline = absl::InfiniteFuture();
    std::optional<uint64_t> expired;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      const absl::Time now = absl::Now();
      while (!state_->deadlines.empty()) {
        auto first = state_->deadlines.begin();
        auto it = state_->tasks.find(first->second);
        if (it == state_->tasks.end() || it->second.ended) {
          state_->deadlines.erase(first);
          continue;
        }
        if (first->first > now) {
          next_deadline = first->first;
          break;
        }
        nats_detail::EndTask(*state_, first->second, it->second);
        it->second.cancel_sent = true;
        expired = first->second;
        state_->deadlines.erase(first);
        break;
      }
    }
    if (expired) {
      NatsResponse r;
      r.task_id = *expired;
      r.kind = NatsResponse::Kind::kFailed;
      r.status = absl::DeadlineExceededError(
          absl::StrCat("task ", *expired, ": deadline exceeded"));
      // Best effort: without the cancel the agent's own deadline check
      // (§21.6) still stops the task.
      (void)nats_detail::PublishCancel(*state_, *expired,
                                       absl::StatusCode::kDeadlineExceeded);
      return std::optional<NatsResponse>(std::move(r));
    }
    if (absl::Now() >= give_up) return std::optional<NatsResponse>();
    const absl::Duration left = std::max(
        std::min(give_up, next_deadline) - absl::Now(), absl::Milliseconds(1));
    absl::StatusOr<nats_detail::MsgPtr> msg =
        nats_detail::FetchOne(state_->responses.get(), left);
    if (!msg.ok()) return msg.status();
    if (*msg == nullptr) continue;  // the timeout, or a deadline
    natsMsg* m = msg->get();
    absl::StatusOr<nats_detail::MetaDataPtr> meta = nats_detail::MetaOf(m);
    if (!meta.ok()) return meta.status();
    const uint64_t stream_seq = (*meta)->Sequence.Stream;
    bool seen = false;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      seen = stream_seq <= state_->last_stream_seq;
      if (!seen) state_->last_stream_seq = stream_seq;
    }
    if (seen) {
      ++state_->discarded;
      natsMsg_Ack(m, nullptr);
      continue;
    }
    absl::StatusOr<FrameView> frame =
        nats_detail::DecodeOne(nats_detail::MsgData(m));
    if (frame.ok() && frame->type() != MessageType::kAgentResponse &&
        frame->type() != MessageType::kAgentError) {
      frame = absl::InvalidArgumentError("not a response frame");
    }
    // §21.8: the Nats-Msg-Id must name this frame (r.<O>.<T>.<A>.<I>).
    uint64_t index = 0;
    if (frame.ok()) {
      const std::string id = nats_detail::HeaderOf(m, "Nats-Msg-Id");
      const std::string want =
          absl::StrCat("r.", state_->options.identity, ".", frame->stream_id(),
                       ".", frame->sequence(), ".");
      if (!absl::StartsWith(id, want) ||
          !nats_detail::ParseIndex(absl::string_view(id).substr(want.size()),
                                   index)) {
        frame = absl::InvalidArgumentError(
            absl::StrCat("response Nats-Msg-Id '", id,
                         "' does not name the frame (", want, "<index>)"));
      }
    }
    std::optional<NatsResponse> out;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      using nats_detail::TaskTrack;
      if (!frame.ok()) {
        // §21.8: a rejected response fails the task its id names.
        ++state_->rejected;
        const std::string id = nats_detail::HeaderOf(m, "Nats-Msg-Id");
        const std::string prefix =
            absl::StrCat("r.", state_->options.identity, ".");
        uint64_t task = 0;
        if (absl::StartsWith(id, prefix)) {
          const absl::string_view rest =
              absl::string_view(id).substr(prefix.size());
          (void)absl::SimpleAtoi(rest.substr(0, rest.find('.')), &task);
        }
        auto it = state_->tasks.find(task);
        if (it != state_->tasks.end() && !it->second.ended) {
          nats_detail::EndTask(*state_, task, it->second);
          out.emplace();
          out->task_id = task;
          out->kind = NatsResponse::Kind::kFailed;
          out->status = absl::DataLossError(
              absl::StrCat("response of task ", task,
                           " rejected: ", frame.status().message()));
        }
      } else {
        const uint64_t task = frame->stream_id();
        const uint64_t attempt = frame->sequence();
        auto found = state_->tasks.find(task);
        if (found == state_->tasks.end() && task >= state_->first_id) {
          // Its record aged out after the task ended here (§21.3).
          // Its record aged out after the task ended here (§21.3): a
          // record again, ended (so discarded), aging out like the first.
          found = state_->tasks.try_emplace(task).first;
          nats_detail::EndTask(*state_, task, found->second);
        }
        TaskTrack& t =
            found != state_->tasks.end() ? found->second : state_->tasks[task];
        const bool terminal = frame->type() == MessageType::kAgentError ||
                              (frame->flags() & kFlagFinal) != 0;
        if (t.ended || attempt < t.attempt) {
          ++state_->discarded;  // §21.3: after the end, or an older attempt
        } else {
          if (attempt > t.attempt && t.attempt != 0 && t.delivered) {
            // §21.3: a newer attempt replaces the adopted one, whose
            // partials the user has seen: tell the user first.
            NatsResponse restarted;
            restarted.task_id = task;
            restarted.attempt = attempt;
            restarted.kind = NatsResponse::Kind::kRestarted;
            state_->pending.push_back(std::move(restarted));
            t.delivered = false;
          }
          if (attempt != t.attempt) {
            // The first frame seen of this attempt: a task this process
            // submitted starts at index 0; one collected after a restart
            // may have had earlier frames taken by the previous process.
            t.next_index = (t.attempt != 0 || t.submitted_here) ? 0 : index;
          }
          t.attempt = attempt;
          out.emplace();
          out->task_id = task;
          out->attempt = attempt;
          if (index != t.next_index) {
            // §21.3: a gap in the attempt's frames (a publish was lost).
            out->kind = NatsResponse::Kind::kFailed;
            out->status = absl::DataLossError(absl::StrCat(
                "task ", task, " attempt ", attempt, ": response index ", index,
                ", expected ", t.next_index, " (a response was lost)"));
            nats_detail::EndTask(*state_, task, t);
          } else if (frame->type() == MessageType::kAgentError) {
            absl::StatusOr<ErrorMessage> e = ParseError(frame->payload());
            out->kind = NatsResponse::Kind::kFailed;
            if (e.ok()) {
              // As on a stream (Session::HandleTaskError): the symwire
              // detail only if the agent sent one.
              out->status = e->detail == ErrorCode::kOk
                                ? absl::Status(e->code, e->message)
                                : MakeError(e->code, e->detail, e->message);
              out->retryable = e->retryable;
            } else {
              out->status = absl::DataLossError(absl::StrCat(
                  "bad AGENT_ERROR payload: ", e.status().message()));
            }
          } else {
            const absl::Span<const std::byte> p = frame->payload();
            out->payload.assign(reinterpret_cast<const char*>(p.data()),
                                p.size());
            out->kind = terminal ? NatsResponse::Kind::kFinal
                                 : NatsResponse::Kind::kPartial;
            t.delivered = true;
          }
          if (terminal) nats_detail::EndTask(*state_, task, t);
          t.next_index = index + 1;
        }
      }
      if (out) state_->pending.push_back(std::move(*out));
    }
    // Acknowledged after it was taken (§21.3).
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (const natsStatus s = natsMsg_AckSync(m, nullptr, &jerr); s != NATS_OK) {
      return nats_detail::StatusFromNats(s, "natsMsg_AckSync response", jerr);
    }
  }
}

// ---- NatsAgent -------------------------------------------------------------

SYMWIRE_DECL absl::StatusOr<NatsAgent> NatsAgent::Create(
    NatsClient client, NatsAgentOptions options, NatsHandler handler) {
  if (absl::Status s = client.EnsurePool(options.pool); !s.ok()) return s;
  auto state = std::make_shared<nats_detail::AgentState>(std::move(client));
  state->options = std::move(options);
  state->pool = *MakeNatsPoolNames(state->options.pool.pool);
  state->handler = std::move(handler);
  // §21.4: subscribe to the cancels before the first fetch, on the
  // connection that fetches.
  natsSubscription* raw = nullptr;
  const natsStatus s = natsConnection_SubscribeSync(
      &raw, state->client.state()->connection.get(),
      state->pool.cancel_wildcard.c_str());
  state->cancels.reset(raw);
  if (s != NATS_OK) {
    return nats_detail::StatusFromNats(s, "subscribe to cancels");
  }
  if (absl::Status synced = nats_detail::SyncLiveCancels(*state);
      !synced.ok()) {
    return synced;
  }
  absl::StatusOr<nats_detail::SubscriptionPtr> sub = nats_detail::BindPull(
      state->client.state()->js.get(), state->pool.task_subject,
      state->pool.task_stream, state->pool.agents_consumer);
  if (!sub.ok()) return sub.status();
  state->tasks = std::move(*sub);
  return NatsAgent(std::move(state));
}

SYMWIRE_DECL absl::StatusOr<NatsAgentOutcome> NatsAgent::RunOnce(
    absl::Duration fetch_timeout) {
  using nats_detail::StatusFromNats;
  nats_detail::AgentState& st = *state_;
  jsCtx* js = st.client.state()->js.get();
  absl::StatusOr<nats_detail::MsgPtr> fetched =
      nats_detail::FetchOne(st.tasks.get(), fetch_timeout);
  if (!fetched.ok()) return fetched.status();
  if (*fetched == nullptr) return NatsAgentOutcome::kIdle;
  natsMsg* m = fetched->get();
  bool broken = false;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    broken = nats_detail::LiveCancelsBroken(st);
  }
  if (broken) {
    // §21.4: the live record may miss a cancel of a task stored before
    // now, this one included: those are looked up.
    if (absl::Status s = nats_detail::SyncLiveCancels(st); !s.ok()) return s;
  }
  absl::StatusOr<nats_detail::MetaDataPtr> meta = nats_detail::MetaOf(m);
  if (!meta.ok()) return meta.status();
  const uint64_t attempt = (*meta)->NumDelivered;
  const absl::Time stored = absl::FromUnixNanos((*meta)->Timestamp);

  const auto ack = [&]() -> absl::Status {
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (const natsStatus s = natsMsg_AckSync(m, nullptr, &jerr); s != NATS_OK) {
      return StatusFromNats(s, "natsMsg_AckSync task", jerr);
    }
    return absl::OkStatus();
  };
  const auto dead_letter = [&](absl::string_view reason) -> absl::Status {
    natsMsg* raw = nullptr;
    const absl::Span<const std::byte> data = nats_detail::MsgData(m);
    natsStatus s = natsMsg_Create(&raw, st.pool.dead_subject.c_str(), nullptr,
                                  reinterpret_cast<const char*>(data.data()),
                                  static_cast<int>(data.size()));
    nats_detail::MsgPtr dead(raw);
    if (s != NATS_OK) return StatusFromNats(s, "natsMsg_Create dead letter");
    const std::string id = nats_detail::HeaderOf(m, "Nats-Msg-Id");
    if (!id.empty()) natsMsgHeader_Set(raw, "Symwire-Task-Msg-Id", id.c_str());
    const std::string why(reason);
    natsMsgHeader_Set(raw, "Symwire-Dead-Reason", why.c_str());
    jsPubAck* pa = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    s = js_PublishMsg(&pa, js, raw, nullptr, &jerr);
    nats_detail::PubAckPtr pub_ack(pa);
    if (s != NATS_OK) return StatusFromNats(s, "publish dead letter", jerr);
    return absl::OkStatus();
  };

  // §21.8: the message and its Nats-Msg-Id.
  absl::StatusOr<FrameView> frame =
      nats_detail::DecodeOne(nats_detail::MsgData(m));
  if (frame.ok() && frame->type() != MessageType::kAgentTask) {
    frame = absl::InvalidArgumentError("not an AGENT_TASK frame");
  }
  absl::StatusOr<NatsTaskRef> ref =
      ParseNatsTaskMsgId(nats_detail::HeaderOf(m, "Nats-Msg-Id"));
  if (frame.ok() && ref.ok() && ref->task_id != frame->stream_id()) {
    frame = absl::InvalidArgumentError(
        absl::StrCat("Nats-Msg-Id names task ", ref->task_id, ", the frame ",
                     frame->stream_id()));
  }
  if (!frame.ok()) {
    const ErrorCode code = GetErrorCode(frame.status());
    std::string reason = code != ErrorCode::kOk
                             ? absl::AsciiStrToLower(absl::StrReplaceAll(
                                   ErrorCodeName(code), {{"_", " "}}))
                             : std::string(frame.status().message());
    if (absl::Status s = dead_letter(reason); !s.ok()) return s;
    if (ref.ok()) {
      absl::StatusOr<NatsOrchestratorNames> names =
          MakeNatsOrchestratorNames(st.pool.pool, ref->orchestrator);
      nats_detail::TaskContextImpl ctx(&st, ref->orchestrator,
                                       names->response_subject, ref->task_id,
                                       attempt, {}, std::nullopt);
      if (absl::Status s =
              ctx.SendError(absl::StatusCode::kDataLoss, "task rejected", code);
          !s.ok()) {
        return s;
      }
    }
    // +TERM: the stored bytes fail again on every redelivery.
    if (const natsStatus s = natsMsg_Term(m, nullptr); s != NATS_OK) {
      return StatusFromNats(s, "natsMsg_Term");
    }
    return NatsAgentOutcome::kRejected;
  }

  absl::StatusOr<NatsOrchestratorNames> names =
      MakeNatsOrchestratorNames(st.pool.pool, ref->orchestrator);
  if (!names.ok()) return names.status();
  std::optional<absl::Time> deadline;
  if (frame->deadline_us()) {
    deadline =
        stored + absl::Microseconds(static_cast<int64_t>(std::min<uint64_t>(
                     *frame->deadline_us(), uint64_t{1} << 62)));
  }
  nats_detail::TaskContextImpl ctx(&st, ref->orchestrator,
                                   names->response_subject, ref->task_id,
                                   attempt, frame->payload(), deadline);
  ctx.set_frame(*frame);

  // §21.5: max deliveries.
  if (attempt > st.options.pool.max_deliveries) {
    if (absl::Status s = dead_letter("max deliveries exceeded"); !s.ok()) {
      return s;
    }
    if (absl::Status s = ctx.SendError(absl::StatusCode::kAborted,
                                       "max deliveries exceeded");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ack(); !s.ok()) return s;
    return NatsAgentOutcome::kDeadLetter;
  }
  // §21.4: a cancel published before this fetch. The task is marked as
  // running first, so a cancel taken from the subscription later is seen.
  const std::string key = absl::StrCat(ref->orchestrator, ".", ref->task_id);
  bool look_up = true;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    st.running = key;
    st.running_cancelled = false;
    st.running_reason = absl::StatusCode::kCancelled;
    nats_detail::DrainCancels(st);
    if (auto it = st.live.find(key); it != st.live.end()) {
      st.running_cancelled = true;
      st.running_reason = it->second;
    }
    look_up = !st.running_cancelled &&
              (!st.live_mode || (*meta)->Sequence.Stream <= st.lookup_up_to);
  }
  struct ClearRunning {
    nats_detail::AgentState& st;
    ~ClearRunning() {
      std::lock_guard<std::mutex> lock(st.mu);
      st.running.clear();
      st.running_cancelled = false;
      st.running_reason = absl::StatusCode::kCancelled;
    }
  } clear_running{st};
  const auto reason = [&st] {
    std::lock_guard<std::mutex> lock(st.mu);
    return st.running_reason;
  };
  if (look_up) {
    // The task may have been cancelled before the live record began: the
    // last message on its cancel subject (§21.4).
    ++st.stored_lookups;
    natsMsg* raw = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const std::string subject =
        NatsCancelSubject(st.pool.pool, ref->orchestrator, ref->task_id);
    const natsStatus s = js_GetLastMsg(&raw, js, st.pool.cancel_stream.c_str(),
                                       subject.c_str(), nullptr, &jerr);
    nats_detail::MsgPtr cancel(raw);
    if (s == NATS_OK) {
      absl::StatusOr<FrameView> cancel_frame =
          nats_detail::DecodeOne(nats_detail::MsgData(raw));
      std::lock_guard<std::mutex> lock(st.mu);
      st.running_cancelled = true;
      st.running_reason = cancel_frame.ok()
                              ? nats_detail::CancelReason(*cancel_frame)
                              : absl::StatusCode::kCancelled;
    } else if (s != NATS_NOT_FOUND &&
               static_cast<int>(jerr) != JSNoMessageFoundErr) {
      return StatusFromNats(s, absl::StrCat("js_GetLastMsg ", subject), jerr);
    }
  }
  if (ctx.cancelled()) {
    if (absl::Status s = nats_detail::SendCancelled(ctx, reason()); !s.ok()) {
      return s;
    }
    if (absl::Status s = ack(); !s.ok()) return s;
    return NatsAgentOutcome::kCancelledBefore;
  }
  // §21.6: expired in the queue.
  if (deadline && absl::Now() >= *deadline) {
    if (absl::Status s = ctx.SendError(absl::StatusCode::kDeadlineExceeded,
                                       "deadline exceeded");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ack(); !s.ok()) return s;
    return NatsAgentOutcome::kExpired;
  }

  absl::StatusOr<std::string> result;
  {
    st.pinger.Begin(m, st.options.pool.ack_wait / 3);
    struct EndPings {
      nats_detail::InProgressPinger& pinger;
      ~EndPings() { pinger.End(); }
    } end_pings{st.pinger};
    result = st.handler(ctx);
  }
  if (ctx.released()) {
    // §21.4: given back mid-task (the agent stops): delivered again at once.
    if (const natsStatus s = natsMsg_Nak(m, nullptr); s != NATS_OK) {
      return StatusFromNats(s, "natsMsg_Nak");
    }
    return NatsAgentOutcome::kReleased;
  }
  if (!ctx.publish_error().ok()) {
    // §21.4: a response publish failed: the attempt is broken, whatever
    // the handler returned. Delivered again, as a new attempt.
    natsMsg_Nak(m, nullptr);
    return ctx.publish_error();
  }
  absl::Status sent;
  if (ctx.cancelled()) {
    sent = nats_detail::SendCancelled(ctx, reason());
  } else if (result.ok()) {
    sent = ctx.Send(
        MessageType::kAgentResponse, kFlagFinal,
        {reinterpret_cast<const std::byte*>(result->data()), result->size()});
  } else {
    // The handler's symwire detail and retryable mark travel with it.
    sent = ctx.SendError(result.status().code(), result.status().message(),
                         GetErrorCode(result.status()), ctx.error_retryable());
  }
  if (!sent.ok()) {
    // Not stored: the task stays unacknowledged and is redelivered (§21.4).
    natsMsg_Nak(m, nullptr);
    return sent;
  }
  // §21.4: ack only after the terminal frame is stored.
  if (absl::Status s = ack(); !s.ok()) return s;
  return NatsAgentOutcome::kCompleted;
}

}  // namespace symwire

#endif  // SYMWIRE_NATS_IMPL_POOL_IPP_
