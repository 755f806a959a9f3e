// File: symwire/config.hpp
// Build configuration shared by every layer: the header-only switch and
// the symbol exports (SYMWIRE_DECL, SYMWIRE_API), the two assertion macros
// and the library version.
//
// SYMWIRE_HEADER_ONLY
//   When defined to 1, every non-template function body is compiled inline
//   from the headers (the impl/*.ipp files are included by their headers).
//   Otherwise (the default) src/symwire.cpp compiles them exactly once and
//   the program links the `symwire` library.
//
// SYMWIRE_DECL  marks a non-template function defined out of line
//               (impl/*.ipp): `inline` in header-only mode, exported from a
//               shared library otherwise.
// SYMWIRE_API   marks a polymorphic class whose key function is compiled
//               into the library: exported, with its vtable and type_info.
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
#define SYMWIRE_API
#else
#undef SYMWIRE_HEADER_ONLY
// The compiled libraries are built with hidden visibility
// (-fvisibility=hidden -fvisibility-inlines-hidden), so a shared libsymwire
// exports exactly the functions declared SYMWIRE_DECL and the classes
// declared SYMWIRE_API (those whose vtable and type_info live in the
// library, so that users can derive from them); everything else, including
// the libraries' internal helpers, stays private to the .so.
#if defined(__GNUC__) || defined(__clang__)
#define SYMWIRE_DECL __attribute__((visibility("default")))
#define SYMWIRE_API __attribute__((visibility("default")))
#else
#define SYMWIRE_DECL
#define SYMWIRE_API
#endif
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
