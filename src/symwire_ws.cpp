// File: src/symwire_ws.cpp
// The compiled part of the plain WebSocket transport (ws.hpp), in the
// symwire::transport target; a translation unit of its own because
// Boost.Beast is costly to compile.
#ifdef SYMWIRE_HEADER_ONLY
#error "src/symwire_ws.cpp is not built in header-only mode"
#endif

#include "symwire/transport/impl/ws.ipp"
