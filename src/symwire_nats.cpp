// File: src/symwire_nats.cpp
// The compiled part of symwire::nats (NATS JetStream pools, SPEC.md §21;
// links libnats).
#ifdef SYMWIRE_HEADER_ONLY
#error "src/symwire_nats.cpp is not built in header-only mode"
#endif

#include "symwire/nats/impl/client.ipp"
#include "symwire/nats/impl/names.ipp"
#include "symwire/nats/impl/pool.ipp"
