// File: src/symwire.cpp
// The compiled part of symwire (the default, non-header-only build): every
// out-of-line body (impl/*.ipp) is compiled here exactly once.
#ifdef SYMWIRE_HEADER_ONLY
#error "src/symwire.cpp is not built in header-only mode"
#endif

#include "symwire/impl/config.ipp"
#include "symwire/impl/error.ipp"
#include "symwire/session/impl/auth.ipp"
#include "symwire/session/impl/config.ipp"
#include "symwire/session/impl/control.ipp"
#include "symwire/session/impl/endpoint.ipp"
#include "symwire/session/impl/event.ipp"
#include "symwire/session/impl/session.ipp"
#include "symwire/session/impl/session_api.ipp"
#include "symwire/session/impl/session_frames.ipp"
#include "symwire/session/impl/session_handshake.ipp"
#include "symwire/session/impl/session_state.ipp"
#include "symwire/wire/impl/crc32c.ipp"
#include "symwire/wire/impl/decoder.ipp"
#include "symwire/wire/impl/dump.ipp"
#include "symwire/wire/impl/encoder.ipp"
#include "symwire/wire/impl/scan.ipp"
