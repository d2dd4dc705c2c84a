#ifndef SEPCONV_SERVER_MODELS_MODEL_OPTIONS_H_
#define SEPCONV_SERVER_MODELS_MODEL_OPTIONS_H_

// How every served model version runs (engine threads, workers, batching,
// drain time), whatever frontend serves it; and the built-in default model.

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/executor.h"
#include "server/batching/scheduler.h"
#include "server/metrics/metrics.h"
#include "server/models/model_registry.h"

namespace sepconv {

struct ModelOptions {
  int threads = 0;    // intra-op threads per instance; 0 = OpenMP default
  int instances = 1;  // engine workers per model version
  // Batching defaults for every model (instances comes from above).
  SchedulerOptions scheduler;
  // How long a version taken out of service may drain its queue, and the
  // process's whole shutdown.
  absl::Duration exit_timeout = absl::Seconds(30);

  SchedulerOptions ModelSchedulerOptions() const;
  ExecutorOptions ModelExecutorOptions() const;
};

// The sample shape the built-in model is warmed on before it is served
// (plans built and tuned, so its first request pays no plan creation): what
// the client's examples and the benchmarks send by default.
inline constexpr Dims4 kDefaultModelWarmupShape = {1, 32, 56, 56};

// Serves the built-in default model `sepconv` version "1" from `registry`,
// warmed on kDefaultModelWarmupShape at WarmupBatchSizes
// (engine/loader/model_warmup.h). `metrics` may be null.
absl::Status AddDefaultModel(const ModelOptions& options, Metrics* metrics,
                             ModelRegistry* registry);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_MODELS_MODEL_OPTIONS_H_
