// File: symwire/transport/runtime.hpp
// deprecated: include <symwire/runtime/runtime.hpp> (the runtime is layer 3b
// and lives in include/symwire/runtime/; this header only forwards to it).
#include "symwire/runtime/runtime.hpp"  // IWYU pragma: export
