// File: src/symwire_tls.cpp
// The compiled part of symwire's TLS transport (the symwire::tls target,
// which links OpenSSL's libssl).
#ifdef SYMWIRE_HEADER_ONLY
#error "src/symwire_tls.cpp is not built in header-only mode"
#endif

#include "symwire/transport/impl/tls.ipp"
