#ifndef SEPCONV_ENGINE_INTERNAL_ONEDNN_EXECUTOR_H_
#define SEPCONV_ENGINE_INTERNAL_ONEDNN_EXECUTOR_H_

// Executor::Create with the internal knobs (activation layout, micro-batch)
// pinned, for tests and benchmarks that compare them. Same contract as
// Executor::Create.

#include <memory>

#include "absl/status/statusor.h"
#include "engine/executor.h"
#include "engine/internal/onednn_plan.h"

namespace sepconv {
namespace internal {

absl::StatusOr<std::unique_ptr<Executor>> CreateOneDnnExecutor(
    std::shared_ptr<const ModelSpec> model, ExecutorOptions options, OneDnnTuning tuning);

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_ONEDNN_EXECUTOR_H_
