#ifndef SEPCONV_ENGINE_LOADER_INTERNAL_STATUS_MACROS_H_
#define SEPCONV_ENGINE_LOADER_INTERNAL_STATUS_MACROS_H_

// ASSIGN_OR_RETURN(lhs, expr): evaluates the absl::StatusOr `expr`; returns
// its status from the enclosing function when not OK, else moves the value
// into `lhs` (which may be a declaration). For the loader's .cc files only.

#include <utility>

#define SEPCONV_LOADER_CONCAT_INNER(a, b) a##b
#define SEPCONV_LOADER_CONCAT(a, b) SEPCONV_LOADER_CONCAT_INNER(a, b)
#define SEPCONV_LOADER_ASSIGN_OR_RETURN_IMPL(var, lhs, expr) \
  auto var = (expr);                                         \
  if (!var.ok()) return var.status();                        \
  lhs = std::move(*var)
#define ASSIGN_OR_RETURN(lhs, expr) \
  SEPCONV_LOADER_ASSIGN_OR_RETURN_IMPL(SEPCONV_LOADER_CONCAT(status_or_, __LINE__), lhs, expr)
#define RETURN_IF_ERROR(expr)                                         \
  do {                                                                \
    if (absl::Status status_ = (expr); !status_.ok()) return status_; \
  } while (0)

#endif  // SEPCONV_ENGINE_LOADER_INTERNAL_STATUS_MACROS_H_
