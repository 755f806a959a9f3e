// File: symwire/runtime/runtime.hpp
// Layer 3b (runtime). The umbrella header of the runtime users write
// orchestrators and agents against: Channel (one session, driven over real
// transports), TaskCall (a task this side submitted), IncomingTask (a task this
// side executes), Client (dials, reconnects and resumes) and Server (accepts,
// keeps the registry that routes resumes, drains on shutdown).
//
// The driver. detail::ConnectionDriver (detail/driver.hpp) is the one
// generic loop of STYLE.md §1 over any Transport: it feeds what the
// transport reads to Session::Receive, copies what PollTransmit returns
// into the transport's pending batch (written with coalescing), hands
// PollEvent's events to its host, and keeps one timer armed for
// NextDeadline(). Every time it hands the session comes from one function,
// ConnectionDriver::Now, which reads steady_clock (SteadyNow()) at most
// once per turn unless asked for a fresh reading, and never goes
// backwards. Channel is its host: it delivers the events (std::visit, one
// handler per event type) and the user's calls. What differs between the
// sides is a part the Channel owns: Client's (detail/client_part.hpp:
// dialing, redialling, first-connect retries) or Server's
// (detail/server_part.hpp: the session's entry in the server's books).
//
// Threading. Every object here belongs to one executor (an io_context, or
// a strand): its callbacks run there, and its synchronous member functions
// must be called there (like an Asio socket). The async_* functions may be
// called from any thread: they hop to the executor. Completion handlers
// run on the handler's associated executor (Asio's rules), never inline
// inside the initiating call. One io_context per core works: give each
// Client its own context; a Server and its sessions live on one executor.
//
// Completion tokens. Every async_* function follows Asio's completion-token
// convention: pass a callback, asio::use_awaitable (C++20 coroutines),
// asio::use_future, or asio::deferred. Signatures carry absl::Status /
// absl::StatusOr, never exceptions, so use_future yields a
// std::future<absl::StatusOr<T>>.
//
// The parts, one header each: options.hpp (settings and value types),
// task_call.hpp, incoming_task.hpp, channel.hpp (the driver), client.hpp,
// server.hpp, pool.hpp (one handle over several agents). Link
// symwire::transport.
#ifndef SYMWIRE_RUNTIME_RUNTIME_HPP_
#define SYMWIRE_RUNTIME_RUNTIME_HPP_

#include "symwire/runtime/channel.hpp"
#include "symwire/runtime/client.hpp"
#include "symwire/runtime/incoming_task.hpp"
#include "symwire/runtime/options.hpp"
#include "symwire/runtime/pool.hpp"
#include "symwire/runtime/server.hpp"
#include "symwire/runtime/task_call.hpp"

#endif  // SYMWIRE_RUNTIME_RUNTIME_HPP_
