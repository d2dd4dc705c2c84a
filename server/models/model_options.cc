#include "server/models/model_options.h"

#include <memory>
#include <utility>

#include "absl/time/clock.h"
#include "engine/loader/model_warmup.h"
#include "engine/random_model.h"
#include "server/models/served_config.h"
#include "server/models/served_model.h"

namespace sepconv {

SchedulerOptions ModelOptions::ModelSchedulerOptions() const {
  SchedulerOptions result = scheduler;
  result.instances = instances;
  return result;
}

ExecutorOptions ModelOptions::ModelExecutorOptions() const {
  ExecutorOptions result;
  result.threads = threads;
  return result;
}

absl::Status AddDefaultModel(const ModelOptions& options, Metrics* metrics,
                             ModelRegistry* registry) {
  auto spec = std::make_shared<const ModelSpec>(DefaultModel());
  const SchedulerOptions scheduler = options.ModelSchedulerOptions();
  absl::StatusOr<ModelConfig> config = BuiltInModelConfig(kDefaultModelName, *spec, scheduler);
  if (!config.ok()) return config.status();
  ExecutorOptions executor = options.ModelExecutorOptions();
  for (int n : WarmupBatchSizes(scheduler.max_batch_size)) {
    Dims4 shape = kDefaultModelWarmupShape;
    shape.n = n;
    executor.warm_shapes.push_back(shape);
  }
  absl::StatusOr<std::shared_ptr<ServedModel>> model =
      ServedModel::Create(kDefaultModelName, kDefaultModelVersion, std::move(spec), scheduler,
                          executor, metrics, *std::move(config));
  if (!model.ok()) return model.status();
  std::shared_ptr<ServedModel> displaced = registry->AddOrReplace(*std::move(model));
  if (displaced != nullptr) displaced->Shutdown(absl::Now() + options.exit_timeout);
  return absl::OkStatus();
}

}  // namespace sepconv
