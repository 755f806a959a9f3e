// File: src/symwire_wss.cpp
// The compiled part of the WebSocket-over-TLS transport (wss.hpp), in the
// symwire::tls target (it links libssl).
#ifdef SYMWIRE_HEADER_ONLY
#error "src/symwire_wss.cpp is not built in header-only mode"
#endif

#include "symwire/transport/impl/wss.ipp"
