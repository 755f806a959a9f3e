// File: src/symwire_transport.cpp
// The compiled part of symwire's transports (layer 3; the symwire::transport
// target): every out-of-line body of include/symwire/transport/ except TLS,
// which has a target of its own (symwire::tls) because it links libssl.
#ifdef SYMWIRE_HEADER_ONLY
#error "src/symwire_transport.cpp is not built in header-only mode"
#endif

#include "symwire/runtime/impl/channel.ipp"
#include "symwire/runtime/impl/client.ipp"
#include "symwire/runtime/impl/connection_driver.ipp"
#include "symwire/runtime/impl/driver.ipp"
#include "symwire/runtime/impl/incoming_task.ipp"
#include "symwire/runtime/impl/options.ipp"
#include "symwire/runtime/impl/pool.ipp"
#include "symwire/runtime/impl/server.ipp"
#include "symwire/runtime/impl/task_call.ipp"
#include "symwire/transport/impl/memory.ipp"
#include "symwire/transport/impl/process.ipp"
#include "symwire/transport/impl/tcp.ipp"
#include "symwire/transport/impl/transport.ipp"
