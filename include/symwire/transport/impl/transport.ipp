// File: symwire/transport/impl/transport.ipp
// Out-of-line bodies of transport.hpp (layer 3).
#ifndef SYMWIRE_TRANSPORT_IMPL_TRANSPORT_IPP_
#define SYMWIRE_TRANSPORT_IMPL_TRANSPORT_IPP_

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/asio/error.hpp"
#include "symwire/error.hpp"
#include "symwire/transport/transport.hpp"

namespace symwire {

SYMWIRE_DECL absl::Status ToStatus(const boost::system::error_code& ec,
                                   std::string_view what) {
  if (!ec) return absl::OkStatus();
  const absl::string_view w(what.data(), what.size());
  if (ec == asio::error::eof) {
    return MakeError(ErrorCode::kConnectionLost,
                     absl::StrCat(w, ": closed by peer"));
  }
  return MakeError(ErrorCode::kConnectionLost,
                   absl::StrCat(w, ": ", ec.message(), " (",
                                ec.category().name(), ":", ec.value(), ")"));
}

SYMWIRE_DECL Transport::Transport(asio::any_io_executor executor,
                                  std::string description,
                                  TransportOptions options)
    : executor_(std::move(executor)),
      description_(std::move(description)),
      options_(options) {
  if (options_.read_buffer_bytes == 0) options_.read_buffer_bytes = 1;
}

SYMWIRE_DECL Transport::~Transport() = default;

SYMWIRE_DECL void Transport::Start(Sink* sink) {
  SYMWIRE_REQUIRE(!started_);
  started_ = true;
  sink_ = sink;
  // Start small and grow when reads fill the buffer: an idle or
  // handshaking connection costs 4 KiB, a busy one reaches
  // read_buffer_bytes after a few reads.
  read_buffer_.resize(std::min(
      {options_.read_buffer_bytes, kInitialReadBuffer, read_buffer_limit_}));
  if (!closed_) ReadMore();
}

SYMWIRE_DECL void Transport::LimitReadBuffer(size_t bytes) {
  read_buffer_limit_ = std::max<size_t>(bytes, 1);
}

SYMWIRE_DECL void Transport::WriteInPieces(size_t piece_bytes,
                                           uint64_t total_bytes) {
  piece_bytes_ = std::max<size_t>(piece_bytes, 1);
  piece_budget_ = total_bytes;
}

SYMWIRE_DECL void Transport::ResumeReading() {
  if (!paused_) return;
  paused_ = false;
  if (started_) ReadMore();
}

SYMWIRE_DECL void Transport::ReadMore() {
  if (closed_ || reading_ || (paused_ && !lingering_)) return;
  if (options_.spin_read.count() > 0 && !lingering_) {
    // Latency mode: poll without blocking for a bounded time before
    // handing the wait to the reactor (and paying a wake-up).
    using Clock = std::chrono::steady_clock;
    Clock::time_point until = Clock::now() + options_.spin_read;
    while (!closed_ && !reading_ && !paused_) {
      boost::system::error_code ec;
      const size_t n = TryReadSome(asio::buffer(read_buffer_), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        if (Clock::now() >= until) break;
        continue;
      }
      if (ec == asio::error::operation_not_supported) break;
      ++counters_.spin_hits;
      // Reuse the completion path: it delivers and loops back here.
      reading_ = true;
      ReadDone(ec, n);
      return;
    }
  }
  if (closed_ || reading_ || (paused_ && !lingering_)) return;
  reading_ = true;
  AsyncReadSome(asio::buffer(read_buffer_));
}

SYMWIRE_DECL void Transport::ReadDone(const boost::system::error_code& ec,
                                      size_t n) {
  reading_ = false;
  if (closed_) return;
  if (ec) {
    if (lingering_) {
      // The peer closed its side too (or failed): the graceful close ends.
      closed_ = true;
      CloseStream();
      Report(absl::OkStatus());
      return;
    }
    Close(ToStatus(ec, absl::StrCat(description_, ": read")));
    return;
  }
  ++counters_.reads;
  counters_.bytes_read += n;
  const size_t most = std::min(options_.read_buffer_bytes, read_buffer_limit_);
  const bool grow = n == read_buffer_.size() && n < most;
  if (!lingering_ && sink_ != nullptr && n > 0) {
    sink_->OnTransportData(*this, absl::MakeConstSpan(read_buffer_.data(), n));
  }
  // The delivered span is dead now; the buffer may move.
  if (grow) {
    read_buffer_.resize(std::min(most, n * 4));
  }
  ReadMore();
}

SYMWIRE_DECL void Transport::Batch::Clear() {
  bytes.clear();
  pieces.clear();
  owners.clear();
  total = 0;
}

SYMWIRE_DECL void Transport::Queue(absl::Span<const std::byte> bytes) {
  if (closed_ || close_after_flush_ || bytes.empty()) return;
  Batch& b = pending_;
  if (b.pieces.empty() || b.pieces.back().ref != nullptr) {
    b.pieces.push_back(Batch::Piece{nullptr, b.bytes.size(), 0});
  }
  b.pieces.back().size += bytes.size();
  b.bytes.insert(b.bytes.end(), bytes.begin(), bytes.end());
  b.total += bytes.size();
}

SYMWIRE_DECL void Transport::QueueShared(absl::Span<const std::byte> bytes,
                                         std::shared_ptr<const void> owner) {
  if (bytes.size() < kMinSharedBytes || !owner) {
    Queue(bytes);
    return;
  }
  if (closed_ || close_after_flush_) return;
  Batch& b = pending_;
  if (!b.pieces.empty() && b.pieces.back().ref != nullptr &&
      b.pieces.back().ref + b.pieces.back().size == bytes.data()) {
    b.pieces.back().size += bytes.size();  // adjacent in the same block
  } else {
    b.pieces.push_back(Batch::Piece{bytes.data(), 0, bytes.size()});
  }
  if (b.owners.empty() || b.owners.back() != owner) {
    b.owners.push_back(std::move(owner));
  }
  b.total += bytes.size();
}

SYMWIRE_DECL void Transport::Flush() {
  if (closed_ || write_in_flight_ || pending_.empty()) return;
  StartWrite();
}

SYMWIRE_DECL void Transport::StartWrite() {
  std::swap(writing_, pending_);
  pending_.Clear();
  iov_.clear();
  for (const Batch::Piece& p : writing_.pieces) {
    iov_.emplace_back(
        p.ref != nullptr ? p.ref : writing_.bytes.data() + p.offset, p.size);
  }
  write_pos_ = 0;
  write_in_flight_ = true;
  if (options_.write_progress_timeout.count() > 0) {
    // A write starting is the reference point: none was in flight.
    NoteWriteProgress();
    ArmWriteTimer();
  }
  WriteSome();
}

SYMWIRE_DECL void Transport::WriteSome() {
  const size_t left = writing_.total - write_pos_;
  if (piece_budget_ == 0 || left <= piece_bytes_) {
    if (write_pos_ == 0) {
      AsyncWriteAll(std::span<const asio::const_buffer>(iov_));
      return;
    }
  }
  // A piece (WriteInPieces), or the rest of a batch begun in pieces: the
  // buffers from write_pos_ on, at most `limit` bytes.
  const size_t limit = piece_budget_ == 0 ? left : std::min(left, piece_bytes_);
  piece_iov_.clear();
  size_t skip = write_pos_;
  size_t want = limit;
  for (const asio::const_buffer& b : iov_) {
    if (want == 0) break;
    if (skip >= b.size()) {
      skip -= b.size();
      continue;
    }
    const size_t take = std::min(b.size() - skip, want);
    piece_iov_.emplace_back(static_cast<const std::byte*>(b.data()) + skip,
                            take);
    skip = 0;
    want -= take;
  }
  AsyncWriteAll(std::span<const asio::const_buffer>(piece_iov_));
}

SYMWIRE_DECL void Transport::ArmWriteTimer() {
  if (write_timer_armed_ || closed_) return;
  if (!write_timer_) {
    write_timer_ = std::make_unique<asio::steady_timer>(executor_);
  }
  write_timer_armed_ = true;
  write_timer_->expires_at(last_write_progress_ +
                           options_.write_progress_timeout);
  write_timer_->async_wait(
      [self = shared_from_this(), this](const boost::system::error_code& ec) {
        write_timer_armed_ = false;
        if (ec || closed_ || !write_in_flight_) return;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_write_progress_ < options_.write_progress_timeout) {
          ArmWriteTimer();  // progress since it was armed: check again later
          return;
        }
        ++counters_.write_timeouts;
        Close(MakeError(
            ErrorCode::kPeerUnresponsive,
            absl::StrCat(description_, ": no write progress for ",
                         options_.write_progress_timeout.count(), " ms with ",
                         writing_.total - write_pos_ + pending_.total,
                         " bytes pending (the peer does not read)")));
      });
}

SYMWIRE_DECL void Transport::WriteDone(const boost::system::error_code& ec,
                                       size_t n) {
  if (closed_) {
    write_in_flight_ = false;
    return;
  }
  if (ec) {
    write_in_flight_ = false;
    Close(ToStatus(ec, absl::StrCat(description_, ": write")));
    return;
  }
  ++counters_.writes;
  counters_.bytes_written += n;
  write_pos_ += n;
  piece_budget_ -= std::min<uint64_t>(piece_budget_, n);
  if (write_pos_ < writing_.total) {
    // The batch goes in pieces (WriteInPieces): the next one.
    NoteWriteProgress();
    WriteSome();
    return;
  }
  write_in_flight_ = false;
  writing_.Clear();
  // A burst may have grown the batch buffers; do not keep megabytes per
  // idle connection.
  constexpr size_t kKeepCapacity = size_t{1} << 20;
  if (writing_.bytes.capacity() > kKeepCapacity) {
    writing_.bytes.shrink_to_fit();
  }
  if (!pending_.empty()) {
    StartWrite();
  } else if (close_after_flush_ && !lingering_) {
    BeginLinger();
  }
  if (drain_wanted_ && !closed_ && sink_ != nullptr) {
    drain_wanted_ = false;
    sink_->OnTransportDrained(*this);
  }
}

SYMWIRE_DECL void Transport::CloseAfterFlush(std::chrono::milliseconds linger) {
  if (closed_ || close_after_flush_) return;
  close_after_flush_ = true;
  linger_ = linger;
  if (write_in_flight_) return;  // WriteDone continues
  if (!pending_.empty()) {
    StartWrite();
    return;
  }
  BeginLinger();
}

SYMWIRE_DECL void Transport::BeginLinger() {
  lingering_ = true;
  ShutdownSend();
  if (!started_ || linger_.count() <= 0) {
    closed_ = true;
    CloseStream();
    Report(absl::OkStatus());
    return;
  }
  linger_timer_ = std::make_unique<asio::steady_timer>(executor_);
  linger_timer_->expires_after(linger_);
  linger_timer_->async_wait(
      [self = shared_from_this(), this](const boost::system::error_code& ec) {
        if (ec || closed_) return;
        closed_ = true;
        CloseStream();
        Report(absl::OkStatus());
      });
  ReadMore();  // discard input until the peer's end of stream
}

SYMWIRE_DECL void Transport::Close(const absl::Status& status) {
  if (closed_) return;
  closed_ = true;
  pending_.Clear();
  if (linger_timer_) linger_timer_->cancel();
  if (write_timer_) write_timer_->cancel();
  CloseStream();
  Report(status);
}

SYMWIRE_DECL absl::StatusOr<std::shared_ptr<Transport>> Transport::MoveTo(
    const asio::any_io_executor& executor) {
  if (closed_ || close_after_flush_) {
    return MakeError(ErrorCode::kConnectionLost,
                     absl::StrCat(description_, ": move: closed"));
  }
  if (write_in_flight_ || queued_bytes() != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(description_, ": move: ", queued_bytes(),
                     " bytes queued or being written"));
  }
  boost::system::error_code ec;
  std::shared_ptr<Transport> moved =
      MoveStream(executor, description_, options_, ec);
  if (!moved) {
    if (ec) {
      Close(ToStatus(ec, absl::StrCat(description_, ": move")));
      return ToStatus(ec, absl::StrCat(description_, ": move"));
    }
    return absl::UnimplementedError(absl::StrCat(
        description_, ": this transport cannot move to another executor"));
  }
  // This transport no longer owns the connection: nothing more is read,
  // written or reported.
  sink_ = nullptr;
  reported_ = true;
  closed_ = true;
  pending_.Clear();
  if (linger_timer_) linger_timer_->cancel();
  if (write_timer_) write_timer_->cancel();
  return moved;
}

SYMWIRE_DECL void Transport::Report(const absl::Status& status) {
  if (reported_) return;
  reported_ = true;
  Sink* sink = sink_;
  sink_ = nullptr;
  if (linger_timer_) linger_timer_->cancel();
  if (write_timer_) write_timer_->cancel();
  if (sink != nullptr) sink->OnTransportClosed(*this, status);
}

}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_TRANSPORT_IPP_
