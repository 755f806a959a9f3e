// File: symwire/symwire.hpp
// Umbrella header for layers 1-2: everything a user needs to encode and
// decode symwire frames. Transports are opt-in includes.
#ifndef SYMWIRE_SYMWIRE_HPP_
#define SYMWIRE_SYMWIRE_HPP_

#include "symwire/config.hpp"
#include "symwire/error.hpp"
#include "symwire/wire/crc32c.hpp"
#include "symwire/wire/decoder.hpp"
#include "symwire/wire/dump.hpp"
#include "symwire/wire/encoder.hpp"
#include "symwire/wire/frame.hpp"
#include "symwire/wire/message_type.hpp"
#include "symwire/wire/scan.hpp"
#include "symwire/wire/varint.hpp"

#endif  // SYMWIRE_SYMWIRE_HPP_
