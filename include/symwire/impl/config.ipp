// File: symwire/impl/config.ipp
// Out-of-line body of detail::AssertFail (see config.hpp).
#ifndef SYMWIRE_IMPL_CONFIG_IPP_
#define SYMWIRE_IMPL_CONFIG_IPP_

#include <cstdio>
#include <cstdlib>

#include "symwire/config.hpp"

namespace symwire::detail {

SYMWIRE_DECL void AssertFail(const char* kind, const char* expr,
                             const char* file, int line) noexcept {
  std::fprintf(stderr, "symwire: %s failed: %s at %s:%d\n", kind, expr, file,
               line);
  std::abort();
}

}  // namespace symwire::detail

#endif  // SYMWIRE_IMPL_CONFIG_IPP_
