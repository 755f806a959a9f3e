// File: symwire/config.hpp
// Build configuration shared by every layer: the header-only switch
// (SYMWIRE_DECL), the two assertion macros and the library version.
//
// SYMWIRE_HEADER_ONLY
//   When defined to 1, every non-template function body is compiled inline
//   from the headers (the impl/*.ipp files are included by their headers).
//   Otherwise (the default) src/symwire.cpp compiles them exactly once and
//   the program links the `symwire` library.
//
// SYMWIRE_ASSERT(cond)   an internal invariant; a failure is a symwire bug.
//                        Checked unless NDEBUG is defined.
// SYMWIRE_REQUIRE(cond)  a caller precondition (documented as REQUIRES: in
//                        the headers). Always checked: the cost is a
//                        predictable branch and a violated precondition in a
//                        protocol library must not become silent memory
//                        corruption. Never reachable from wire input: bad
//                        bytes produce an absl::Status, not an abort.
#ifndef SYMWIRE_CONFIG_HPP_
#define SYMWIRE_CONFIG_HPP_

#define SYMWIRE_VERSION_MAJOR 0
#define SYMWIRE_VERSION_MINOR 1
#define SYMWIRE_VERSION_PATCH 0
#define SYMWIRE_VERSION_STRING "0.1.0"

#if defined(SYMWIRE_HEADER_ONLY) && SYMWIRE_HEADER_ONLY
#define SYMWIRE_DECL inline
#else
#undef SYMWIRE_HEADER_ONLY
#define SYMWIRE_DECL
#endif

namespace symwire::detail {
// Prints "symwire: <kind> failed: <expr> at <file>:<line>" and aborts.
[[noreturn]] SYMWIRE_DECL void AssertFail(const char* kind, const char* expr,
                                          const char* file, int line) noexcept;
}  // namespace symwire::detail

#define SYMWIRE_REQUIRE(cond)                   \
  (__builtin_expect(static_cast<bool>(cond), 1) \
       ? static_cast<void>(0)                   \
       : ::symwire::detail::AssertFail("REQUIRE", #cond, __FILE__, __LINE__))

#ifdef NDEBUG
#define SYMWIRE_ASSERT(cond) static_cast<void>(0)
#else
#define SYMWIRE_ASSERT(cond)                    \
  (__builtin_expect(static_cast<bool>(cond), 1) \
       ? static_cast<void>(0)                   \
       : ::symwire::detail::AssertFail("ASSERT", #cond, __FILE__, __LINE__))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SYMWIRE_LIKELY(x) __builtin_expect(!!(x), 1)
#define SYMWIRE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SYMWIRE_NOINLINE __attribute__((noinline))
#define SYMWIRE_COLD __attribute__((cold, noinline))
#else
#define SYMWIRE_LIKELY(x) (x)
#define SYMWIRE_UNLIKELY(x) (x)
#define SYMWIRE_NOINLINE
#define SYMWIRE_COLD
#endif

#ifdef SYMWIRE_HEADER_ONLY
#include "symwire/impl/config.ipp"
#endif

#endif  // SYMWIRE_CONFIG_HPP_
