#include "server/models/served_model.h"

#include <utility>

namespace sepconv {

absl::StatusOr<std::shared_ptr<ServedModel>> ServedModel::Create(
    std::string name, std::string version, std::shared_ptr<const ModelSpec> spec,
    const SchedulerOptions& scheduler_options, const ExecutorOptions& executor_options,
    Metrics* metrics, ModelConfig config) {
  std::shared_ptr<ModelMetrics> model_metrics;
  if (metrics != nullptr) {
    model_metrics =
        metrics->ForModel(ModelLabels{name, version, static_cast<int64_t>(spec->layers.size()),
                                      spec->InChannels(), spec->OutChannels()});
  }
  Scheduler::ExecutorFactory make_executor = [spec, executor_options]() {
    return Executor::Create(spec, executor_options);
  };
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create(scheduler_options, std::move(make_executor), model_metrics.get());
  if (!scheduler.ok()) return scheduler.status();
  return std::make_shared<ServedModel>(std::move(name), std::move(version), std::move(spec),
                                       *std::move(scheduler), std::move(model_metrics),
                                       std::move(config));
}

ServedModel::ServedModel(std::string name, std::string version,
                         std::shared_ptr<const ModelSpec> spec,
                         std::unique_ptr<Scheduler> scheduler,
                         std::shared_ptr<ModelMetrics> metrics, ModelConfig config)
    : name_(std::move(name)),
      version_(std::move(version)),
      spec_(std::move(spec)),
      metrics_(std::move(metrics)),
      scheduler_(std::move(scheduler)),
      config_(std::move(config)) {}

ServedModel::~ServedModel() {
  // Normally already shut down by whoever took it out of service; this only
  // guarantees that no worker outlives the model.
  scheduler_->Shutdown(absl::Now());
}

void ServedModel::Shutdown(absl::Time deadline) { scheduler_->Shutdown(deadline); }

}  // namespace sepconv
