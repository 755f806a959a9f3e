// File: symwire/nats/detail/cnats.hpp
// symwire::nats internals: RAII owners for cnats objects and the one
// function that turns a natsStatus (plus a JetStream error code) into an
// absl::Status. Included only by symwire/nats/impl/*.ipp (and tests): the
// public headers do not expose <nats/nats.h>.
#ifndef SYMWIRE_NATS_DETAIL_CNATS_HPP_
#define SYMWIRE_NATS_DETAIL_CNATS_HPP_

#include <nats/nats.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace symwire::nats_detail {

struct ConnectionDeleter {
  void operator()(natsConnection* p) const { natsConnection_Destroy(p); }
};
struct OptionsDeleter {
  void operator()(natsOptions* p) const { natsOptions_Destroy(p); }
};
struct JsDeleter {
  void operator()(jsCtx* p) const { jsCtx_Destroy(p); }
};
struct SubscriptionDeleter {
  void operator()(natsSubscription* p) const { natsSubscription_Destroy(p); }
};
struct MsgDeleter {
  void operator()(natsMsg* p) const { natsMsg_Destroy(p); }
};
struct StreamInfoDeleter {
  void operator()(jsStreamInfo* p) const { jsStreamInfo_Destroy(p); }
};
struct ConsumerInfoDeleter {
  void operator()(jsConsumerInfo* p) const { jsConsumerInfo_Destroy(p); }
};
struct PubAckDeleter {
  void operator()(jsPubAck* p) const { jsPubAck_Destroy(p); }
};
struct MetaDataDeleter {
  void operator()(jsMsgMetaData* p) const { jsMsgMetaData_Destroy(p); }
};

using ConnectionPtr = std::unique_ptr<natsConnection, ConnectionDeleter>;
using OptionsPtr = std::unique_ptr<natsOptions, OptionsDeleter>;
using JsPtr = std::unique_ptr<jsCtx, JsDeleter>;
using SubscriptionPtr = std::unique_ptr<natsSubscription, SubscriptionDeleter>;
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;
using StreamInfoPtr = std::unique_ptr<jsStreamInfo, StreamInfoDeleter>;
using ConsumerInfoPtr = std::unique_ptr<jsConsumerInfo, ConsumerInfoDeleter>;
using PubAckPtr = std::unique_ptr<jsPubAck, PubAckDeleter>;
using MetaDataPtr = std::unique_ptr<jsMsgMetaData, MetaDataDeleter>;

// ToNanos, ToMillis
// cnats takes durations as int64 nanoseconds (stream and consumer
// configurations) or milliseconds (timeouts). Saturating.
inline int64_t ToNanos(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }
inline int64_t ToMillis(absl::Duration d) {
  return absl::ToInt64Milliseconds(d);
}

// StatusFromNats
// The absl::Status for a failed cnats call `what` ("js_AddStream SYMWIRE_X"):
// the code follows the failure (NATS_TIMEOUT -> DEADLINE_EXCEEDED; lost or
// absent server, no responders -> UNAVAILABLE; NATS_NOT_FOUND and
// JetStream's not-found codes -> NOT_FOUND; a stream or consumer that exists
// with other settings -> FAILED_PRECONDITION; NATS_INVALID_ARG ->
// INVALID_ARGUMENT; everything else -> INTERNAL), and the message names the
// call, cnats' status text, its last error text on this thread and the
// JetStream error code when there is one. REQUIRES: s != NATS_OK.
inline absl::Status StatusFromNats(natsStatus s, absl::string_view what,
                                   jsErrCode jerr = static_cast<jsErrCode>(0)) {
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  std::string message = absl::StrCat(what, ": ", natsStatus_GetText(s));
  // cnats' last error often repeats the status text after a source
  // location ("(conn.c:2088): No server available for connection").
  if (detail != nullptr && detail[0] != '\0' &&
      !absl::EndsWith(detail, natsStatus_GetText(s))) {
    absl::StrAppend(&message, " (", detail, ")");
  }
  const int code = static_cast<int>(jerr);
  if (code != 0) absl::StrAppend(&message, " [jetstream error ", code, "]");
  switch (code) {
    case JSStreamNameExistErr:
    case JSConsumerNameExistErr:
    case JSStreamSubjectOverlapErr:
      return absl::FailedPreconditionError(message);
    case JSStreamNotFoundErr:
    case JSConsumerNotFoundErr:
    case JSNoMessageFoundErr:
      return absl::NotFoundError(message);
    default:
      break;
  }
  switch (s) {
    case NATS_TIMEOUT:
      return absl::DeadlineExceededError(message);
    case NATS_NO_SERVER:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_RESPONDERS:
    case NATS_STALE_CONNECTION:
    case NATS_IO_ERROR:
      return absl::UnavailableError(message);
    case NATS_NOT_FOUND:
      return absl::NotFoundError(message);
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
      return absl::InvalidArgumentError(message);
    case NATS_NOT_PERMITTED:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace symwire::nats_detail

#endif  // SYMWIRE_NATS_DETAIL_CNATS_HPP_
