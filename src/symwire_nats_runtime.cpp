// File: src/symwire_nats_runtime.cpp
// The compiled part of symwire::nats_runtime (the stream runtime's user API
// over a NATS JetStream pool; nats_runtime/pool.hpp).
#ifdef SYMWIRE_HEADER_ONLY
#error "src/symwire_nats_runtime.cpp is not built in header-only mode"
#endif

#include "symwire/nats_runtime/impl/pool_channel.ipp"
#include "symwire/nats_runtime/impl/pool_server.ipp"
