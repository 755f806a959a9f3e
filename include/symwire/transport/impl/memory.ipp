// File: symwire/transport/impl/memory.ipp
// Out-of-line bodies of memory.hpp (layer 3).
#ifndef SYMWIRE_TRANSPORT_IMPL_MEMORY_IPP_
#define SYMWIRE_TRANSPORT_IMPL_MEMORY_IPP_

#include <algorithm>
#include <array>
#include <cstddef>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "boost/asio/execution/context.hpp"
#include "boost/asio/execution_context.hpp"
#include "boost/asio/query.hpp"
#include "symwire/transport/memory.hpp"

namespace symwire {
namespace detail {

// The bytes flowing towards one end, and the operations waiting on them.
struct MemoryChannel {
  std::vector<std::byte> bytes;  // unread bytes are [head, size())
  size_t head = 0;
  bool eof = false;                       // writer closed: eof after bytes
  boost::system::error_code reset;        // writer reset: reads fail now
  boost::system::error_code reader_gone;  // reader closed: writes fail
  std::unique_ptr<MemoryOp> read_op;      // the reader, waiting for bytes
  std::unique_ptr<MemoryOp> write_op;     // the writer, waiting for room

  size_t size() const { return bytes.size() - head; }
  void Drop() {
    bytes.clear();
    head = 0;
  }
  void Consume(size_t n) {
    head += n;
    if (head == bytes.size()) {
      Drop();
    } else if (head >= size_t{64} * 1024 && head * 2 >= bytes.size()) {
      // Amortized compaction: move the tail once half is consumed.
      bytes.erase(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(head));
      head = 0;
    }
  }
};

struct MemoryEnd {
  bool open = true;
  bool read_shut = false;
  bool write_shut = false;
  MemoryFaults faults;
  MemoryEndStats stats;
};

// Operations to complete (or to destroy) once the pipe's mutex is
// released: a handler's destructor may destroy a stream, which locks it.
class MemoryCompletions {
 public:
  void Add(std::unique_ptr<MemoryOp> op, const boost::system::error_code& ec,
           size_t n) {
    items_.push_back(Item{std::move(op), ec, n, true});
  }
  void Discard(std::unique_ptr<MemoryOp> op) {
    items_.push_back(Item{std::move(op), {}, 0, false});
  }
  void Run() {
    for (Item& item : items_) {
      if (item.complete) item.op->Complete(item.ec, item.n);
    }
    items_.clear();
  }

 private:
  struct Item {
    std::unique_ptr<MemoryOp> op;
    boost::system::error_code ec;
    size_t n;
    bool complete;
  };
  absl::InlinedVector<Item, 4> items_;
};

// The live pipes of one execution context, for its shutdown.
struct MemoryPipeRegistry {
  std::mutex mutex;
  std::vector<MemoryPipeState*> states;
};

// The state two ends share. Every member is guarded by `mutex`.
class MemoryPipeState {
 public:
  MemoryPipeState(const MemoryPipeOptions& options,
                  const std::shared_ptr<MemoryPipeRegistry>& registry)
      : options_(options), registry_(registry) {
    ends_[0].faults = options.first_faults;
    ends_[1].faults = options.second_faults;
    std::lock_guard<std::mutex> lock(registry->mutex);
    registry_index_ = registry->states.size();
    registry->states.push_back(this);
  }
  MemoryPipeState(const MemoryPipeState&) = delete;
  MemoryPipeState& operator=(const MemoryPipeState&) = delete;
  ~MemoryPipeState() {
    // The registry is gone if the execution context was destroyed first.
    if (std::shared_ptr<MemoryPipeRegistry> registry = registry_.lock()) {
      std::lock_guard<std::mutex> lock(registry->mutex);
      MemoryPipeState* last = registry->states.back();
      registry->states[registry_index_] = last;
      last->registry_index_ = registry_index_;
      registry->states.pop_back();
    }
  }

  std::mutex mutex;

  void Read(int side, std::unique_ptr<MemoryOp> op, MemoryCompletions& done) {
    MemoryEnd& end = ends_[Index(side)];
    MemoryChannel& in = channels_[Index(side)];
    if (!end.open)
      return done.Add(std::move(op), asio::error::bad_descriptor, 0);
    if (end.read_shut) return done.Add(std::move(op), asio::error::eof, 0);
    SYMWIRE_REQUIRE(in.read_op == nullptr);  // one read at a time
    ++end.stats.read_calls;
    const MemoryFaults& f = end.faults;
    if ((f.fail_read_at && end.stats.read_calls >= *f.fail_read_at) ||
        (f.fail_read_after_bytes &&
         end.stats.bytes_read >= *f.fail_read_after_bytes)) {
      return done.Add(std::move(op), FaultError(f), 0);
    }
    if (op->size() == 0) return done.Add(std::move(op), {}, 0);
    in.read_op = std::move(op);
    Pump(side, done);
  }

  void Write(int side, std::unique_ptr<MemoryOp> op, MemoryCompletions& done) {
    MemoryEnd& end = ends_[Index(side)];
    MemoryChannel& out = channels_[Index(1 - side)];
    if (!end.open)
      return done.Add(std::move(op), asio::error::bad_descriptor, 0);
    if (end.write_shut)
      return done.Add(std::move(op), asio::error::broken_pipe, 0);
    SYMWIRE_REQUIRE(out.write_op == nullptr);  // one write at a time
    ++end.stats.write_calls;
    const MemoryFaults& f = end.faults;
    if ((f.fail_write_at && end.stats.write_calls >= *f.fail_write_at) ||
        (f.fail_write_after_bytes &&
         end.stats.bytes_written >= *f.fail_write_after_bytes)) {
      return done.Add(std::move(op), FaultError(f), 0);
    }
    if (op->size() == 0) return done.Add(std::move(op), {}, 0);
    out.write_op = std::move(op);
    Pump(1 - side, done);
  }

  // Closes `side`: gracefully (eof for the peer) when `reset` is empty,
  // abortively (the peer fails with `reset`) otherwise.
  void Close(int side, const boost::system::error_code& reset,
             MemoryCompletions& done) {
    MemoryEnd& end = ends_[Index(side)];
    if (!end.open) return;
    end.open = false;
    MemoryChannel& in = channels_[Index(side)];
    MemoryChannel& out = channels_[Index(1 - side)];
    if (in.read_op) {
      done.Add(std::move(in.read_op), asio::error::operation_aborted, 0);
    }
    if (out.write_op) {
      done.Add(std::move(out.write_op), asio::error::operation_aborted, 0);
    }
    out.eof = true;
    if (reset) {
      out.reset = reset;
      out.Drop();
    }
    in.Drop();
    if (!in.reader_gone) {
      in.reader_gone =
          reset ? reset : boost::system::error_code(asio::error::broken_pipe);
    }
    Pump(1 - side, done);
    Pump(side, done);
  }

  boost::system::error_code Shutdown(int side, MemoryStream::shutdown_type what,
                                     MemoryCompletions& done) {
    MemoryEnd& end = ends_[Index(side)];
    if (!end.open) return asio::error::bad_descriptor;
    if (what != MemoryStream::shutdown_receive) {
      end.write_shut = true;
      MemoryChannel& out = channels_[Index(1 - side)];
      if (out.write_op) {
        done.Add(std::move(out.write_op), asio::error::operation_aborted, 0);
      }
      out.eof = true;
      Pump(1 - side, done);
    }
    if (what != MemoryStream::shutdown_send) {
      end.read_shut = true;
      MemoryChannel& in = channels_[Index(side)];
      if (in.read_op) done.Add(std::move(in.read_op), asio::error::eof, 0);
      in.Drop();
      if (!in.reader_gone) in.reader_gone = asio::error::broken_pipe;
      Pump(side, done);
    }
    return {};
  }

  void SetFaults(int side, const MemoryFaults& faults) {
    ends_[Index(side)].faults = faults;
  }
  const MemoryEndStats& stats(int side) const {
    return ends_[Index(side)].stats;
  }
  size_t buffered(int side) const { return channels_[Index(side)].size(); }
  bool is_open(int side) const { return ends_[Index(side)].open; }

  // Called by the execution context's shutdown: hands over every pending
  // operation (to be destroyed, not invoked) and stores none from now on.
  void TakeAllOps(std::vector<std::unique_ptr<MemoryOp>>& ops) {
    shut_down_ = true;
    for (MemoryChannel& c : channels_) {
      if (c.read_op) ops.push_back(std::move(c.read_op));
      if (c.write_op) ops.push_back(std::move(c.write_op));
    }
  }

 private:
  static size_t Index(int side) { return static_cast<size_t>(side); }

  static boost::system::error_code FaultError(const MemoryFaults& f) {
    if (f.error) return f.error;
    return asio::error::connection_reset;
  }

  // Moves bytes towards end `to` for as long as its waiting reader or
  // writer can progress, and settles them when the stream ended.
  void Pump(int to, MemoryCompletions& done) {
    MemoryChannel& c = channels_[Index(to)];
    MemoryEnd& reader = ends_[Index(to)];
    MemoryEnd& writer = ends_[Index(1 - to)];
    for (bool progress = true; progress;) {
      progress = false;
      if (c.read_op) {
        if (c.reset) {
          done.Add(std::move(c.read_op), c.reset, 0);
          progress = true;
        } else if (c.size() > 0) {
          size_t n = std::min(c.read_op->size(), c.size());
          if (options_.max_read_bytes != 0) {
            n = std::min(n, options_.max_read_bytes);
          }
          n = std::min(n, Remaining(reader.faults.fail_read_after_bytes,
                                    reader.stats.bytes_read));
          SYMWIRE_ASSERT(n > 0);  // Read() failed the op otherwise
          c.read_op->Copy(c.bytes.data() + c.head, n);
          c.Consume(n);
          reader.stats.bytes_read += n;
          done.Add(std::move(c.read_op), {}, n);
          progress = true;
        } else if (c.eof) {
          done.Add(std::move(c.read_op), asio::error::eof, 0);
          progress = true;
        }
      }
      if (c.write_op) {
        if (c.reader_gone) {
          done.Add(std::move(c.write_op), c.reader_gone, 0);
          progress = true;
        } else {
          const size_t cap = options_.capacity_bytes;
          const size_t room =
              cap == 0 ? kNoLimit : (cap > c.size() ? cap - c.size() : 0);
          if (room > 0) {
            size_t n = std::min(c.write_op->size(), room);
            if (options_.max_write_bytes != 0) {
              n = std::min(n, options_.max_write_bytes);
            }
            n = std::min(n, Remaining(writer.faults.fail_write_after_bytes,
                                      writer.stats.bytes_written));
            SYMWIRE_ASSERT(n > 0);  // Write() failed the op otherwise
            const size_t old_size = c.bytes.size();
            c.bytes.resize(old_size + n);
            c.write_op->Copy(c.bytes.data() + old_size, n);
            writer.stats.bytes_written += n;
            done.Add(std::move(c.write_op), {}, n);
            progress = true;
          }
        }
      }
    }
    if (shut_down_) {
      if (c.read_op) done.Discard(std::move(c.read_op));
      if (c.write_op) done.Discard(std::move(c.write_op));
    }
  }

  // Bytes left before a fail-after-bytes fault (all when there is none).
  static size_t Remaining(const std::optional<uint64_t>& limit, uint64_t used) {
    if (!limit) return kNoLimit;
    if (*limit <= used) return 0;
    const uint64_t left = *limit - used;
    return left > kNoLimit ? kNoLimit : static_cast<size_t>(left);
  }
  static constexpr size_t kNoLimit = std::numeric_limits<size_t>::max();

  MemoryPipeOptions options_;
  std::array<MemoryChannel, 2> channels_;  // channels_[i] flows to end i
  std::array<MemoryEnd, 2> ends_;
  bool shut_down_ = false;  // the execution context shut down
  std::weak_ptr<MemoryPipeRegistry> registry_;
  size_t registry_index_ = 0;  // guarded by the registry's mutex
};

// One per execution context: destroys the pending operations of its pipes
// when the context shuts down, as Asio's own services do for sockets
// (otherwise handler -> Transport -> stream -> state -> handler cycles
// would leak).
class MemoryPipeService final : public asio::execution_context::service {
 public:
  inline static asio::execution_context::id id;

  explicit MemoryPipeService(asio::execution_context& context)
      : asio::execution_context::service(context),
        registry_(std::make_shared<MemoryPipeRegistry>()) {}

  const std::shared_ptr<MemoryPipeRegistry>& registry() const {
    return registry_;
  }

 private:
  void shutdown() override {
    std::vector<std::unique_ptr<MemoryOp>> ops;
    {
      std::lock_guard<std::mutex> lock(registry_->mutex);
      for (MemoryPipeState* state : registry_->states) {
        std::lock_guard<std::mutex> state_lock(state->mutex);
        state->TakeAllOps(ops);
      }
    }
    ops.clear();  // may destroy streams and states, which lock
  }

  std::shared_ptr<MemoryPipeRegistry> registry_;
};

}  // namespace detail

SYMWIRE_DECL MemoryStream::MemoryStream(
    asio::any_io_executor executor,
    std::shared_ptr<detail::MemoryPipeState> state, int side)
    : executor_(std::move(executor)), state_(std::move(state)), side_(side) {}

// The executor is copied, not moved: like an Asio socket, a moved-from
// stream keeps its executor and behaves as a closed one (its operations
// complete with bad_descriptor instead of failing on an empty executor).
SYMWIRE_DECL MemoryStream::MemoryStream(MemoryStream&& other) noexcept
    // NOLINTNEXTLINE(performance-move-constructor-init): see above.
    : executor_(other.executor_),
      state_(std::move(other.state_)),
      side_(other.side_) {}

SYMWIRE_DECL MemoryStream& MemoryStream::operator=(
    MemoryStream&& other) noexcept {
  if (this != &other) {
    boost::system::error_code ignored;
    close(ignored);
    executor_ = other.executor_;
    state_ = std::move(other.state_);
    side_ = other.side_;
  }
  return *this;
}

SYMWIRE_DECL MemoryStream::~MemoryStream() {
  boost::system::error_code ignored;
  close(ignored);
}

SYMWIRE_DECL void MemoryStream::StartRead(
    std::unique_ptr<detail::MemoryOp> op) {
  detail::MemoryCompletions done;
  if (state_ == nullptr) {
    done.Add(std::move(op), asio::error::bad_descriptor, 0);
  } else {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->Read(side_, std::move(op), done);
  }
  done.Run();
}

SYMWIRE_DECL void MemoryStream::StartWrite(
    std::unique_ptr<detail::MemoryOp> op) {
  detail::MemoryCompletions done;
  if (state_ == nullptr) {
    done.Add(std::move(op), asio::error::bad_descriptor, 0);
  } else {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->Write(side_, std::move(op), done);
  }
  done.Run();
}

SYMWIRE_DECL void MemoryStream::close(boost::system::error_code& ec) {
  ec = {};
  control().Close();
}

SYMWIRE_DECL void MemoryStream::shutdown(shutdown_type what,
                                         boost::system::error_code& ec) {
  if (state_ == nullptr) {
    ec = asio::error::bad_descriptor;
    return;
  }
  detail::MemoryCompletions done;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    ec = state_->Shutdown(side_, what, done);
  }
  done.Run();
}

SYMWIRE_DECL bool MemoryStream::is_open() const { return control().is_open(); }

SYMWIRE_DECL MemoryStreamControl MemoryStream::control() const {
  return MemoryStreamControl(state_, side_);
}

SYMWIRE_DECL void MemoryStreamControl::Close() {
  Reset(boost::system::error_code());
}

SYMWIRE_DECL void MemoryStreamControl::Reset(boost::system::error_code error) {
  if (state_ == nullptr) return;
  detail::MemoryCompletions done;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->Close(side_, error, done);
  }
  done.Run();
}

SYMWIRE_DECL void MemoryStreamControl::SetFaults(const MemoryFaults& faults) {
  if (state_ == nullptr) return;
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->SetFaults(side_, faults);
}

SYMWIRE_DECL MemoryEndStats MemoryStreamControl::stats() const {
  if (state_ == nullptr) return {};
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->stats(side_);
}

SYMWIRE_DECL size_t MemoryStreamControl::buffered_bytes() const {
  if (state_ == nullptr) return 0;
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->buffered(side_);
}

SYMWIRE_DECL bool MemoryStreamControl::is_open() const {
  if (state_ == nullptr) return false;
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->is_open(side_);
}

SYMWIRE_DECL std::pair<MemoryStream, MemoryStream> MakeMemoryStreamPair(
    asio::any_io_executor executor, const MemoryPipeOptions& options) {
  SYMWIRE_REQUIRE(static_cast<bool>(executor));
  asio::execution_context& context =
      asio::query(executor, asio::execution::context);
  auto& service = asio::use_service<detail::MemoryPipeService>(context);
  auto state =
      std::make_shared<detail::MemoryPipeState>(options, service.registry());
  return {MemoryStream(executor, state, 0), MemoryStream(executor, state, 1)};
}

SYMWIRE_DECL std::pair<std::shared_ptr<Transport>, std::shared_ptr<Transport>>
MakeMemoryTransportPair(asio::any_io_executor executor,
                        const MemoryPipeOptions& options,
                        const TransportOptions& transport_options) {
  auto [a, b] = MakeMemoryStreamPair(std::move(executor), options);
  return {MakeTransport(std::move(a), "memory a", transport_options),
          MakeTransport(std::move(b), "memory b", transport_options)};
}

}  // namespace symwire

#endif  // SYMWIRE_TRANSPORT_IMPL_MEMORY_IPP_
