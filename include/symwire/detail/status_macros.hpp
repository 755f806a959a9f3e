// File: symwire/detail/status_macros.hpp
// SYMWIRE_RETURN_IF_ERROR and SYMWIRE_ASSIGN_OR_RETURN: Debian's Abseil
// (20220623) does not ship absl/status/status_macros.h.
#ifndef SYMWIRE_DETAIL_STATUS_MACROS_HPP_
#define SYMWIRE_DETAIL_STATUS_MACROS_HPP_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SYMWIRE_STATUS_CONCAT_INNER_(a, b) a##b
#define SYMWIRE_STATUS_CONCAT_(a, b) SYMWIRE_STATUS_CONCAT_INNER_(a, b)

// SYMWIRE_RETURN_IF_ERROR(expr): returns the absl::Status of `expr` if it is
// not OK. `expr` is an absl::Status.
#define SYMWIRE_RETURN_IF_ERROR(expr)                                       \
  do {                                                                      \
    ::absl::Status symwire_status_ = (expr);                                \
    if (__builtin_expect(!symwire_status_.ok(), 0)) return symwire_status_; \
  } while (0)

// SYMWIRE_ASSIGN_OR_RETURN(lhs, expr): evaluates the absl::StatusOr `expr`;
// returns its status if not OK, otherwise moves its value into `lhs` (which
// may be a declaration: `auto x`).
#define SYMWIRE_ASSIGN_OR_RETURN(lhs, expr) \
  SYMWIRE_ASSIGN_OR_RETURN_IMPL_(           \
      SYMWIRE_STATUS_CONCAT_(symwire_statusor_, __LINE__), lhs, expr)
#define SYMWIRE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)     \
  auto tmp = (expr);                                       \
  if (__builtin_expect(!tmp.ok(), 0)) return tmp.status(); \
  lhs = *std::move(tmp)

#endif  // SYMWIRE_DETAIL_STATUS_MACROS_HPP_
