#ifndef SEPCONV_SERVER_MODELS_SERVED_MODEL_H_
#define SEPCONV_SERVER_MODELS_SERVED_MODEL_H_

// One served version of a model: its spec, its dynamic batcher (with its own
// engine workers), its metrics handle and the configuration it is served
// with (what Triton's ModelConfig RPC reports). Held by std::shared_ptr so that a
// request that looked a version up keeps it alive while the registry
// replaces or removes it. Whoever takes a ServedModel out of service (the
// registry's caller, or Server::Shutdown) calls Shutdown on it, from a thread
// that is not one of its workers; queued jobs then still finish.
// Thread-safe.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/executor.h"
#include "engine/model_spec.h"
#include "model_config.pb.h"
#include "server/batching/scheduler.h"
#include "server/metrics/metrics.h"

namespace sepconv {

// The name and version of the built-in default model (docs/architecture.md,
// "What is served").
inline constexpr char kDefaultModelName[] = "sepconv";
inline constexpr char kDefaultModelVersion[] = "1";

class ServedModel {
 public:
  // Starts `scheduler_options.instances` workers, each with an Executor made
  // from `spec` and `executor_options`. `metrics` may be null.
  static absl::StatusOr<std::shared_ptr<ServedModel>> Create(
      std::string name, std::string version, std::shared_ptr<const ModelSpec> spec,
      const SchedulerOptions& scheduler_options, const ExecutorOptions& executor_options,
      Metrics* metrics, ModelConfig config = ModelConfig());

  // The same from already-built parts (tests inject schedulers this way);
  // `scheduler` was created with the same `metrics`, which it shares.
  ServedModel(std::string name, std::string version, std::shared_ptr<const ModelSpec> spec,
              std::unique_ptr<Scheduler> scheduler, std::shared_ptr<ModelMetrics> metrics,
              ModelConfig config = ModelConfig());
  ~ServedModel();

  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  const ModelSpec& spec() const { return *spec_; }
  const std::shared_ptr<const ModelSpec>& shared_spec() const { return spec_; }
  Scheduler& scheduler() const { return *scheduler_; }
  // Scheduler::Submit, with whatever job->done owns released within the
  // callback (so that the destructor can tell a scheduler thread).
  absl::Status Submit(std::unique_ptr<InferenceJob> job) const;
  // May be null (metrics off). Valid while this ServedModel is; whatever
  // records after it may be gone (a request's completion) holds
  // metrics_handle() instead, as the scheduler does.
  ModelMetrics* metrics() const { return metrics_.get(); }
  const std::shared_ptr<ModelMetrics>& metrics_handle() const { return metrics_; }
  // The effective configuration (server/models/served_config.h); empty when the
  // creator gave none.
  const ModelConfig& config() const { return config_; }

  // Stops accepting work and drains (see Scheduler::Shutdown). Idempotent.
  void Shutdown(absl::Time deadline);

 private:
  const std::string name_;
  const std::string version_;
  const std::shared_ptr<const ModelSpec> spec_;
  // Shared with scheduler_, whose workers record into it: member order does
  // not matter.
  const std::shared_ptr<ModelMetrics> metrics_;
  // Not const: a destructor on a scheduler thread hands it off.
  std::unique_ptr<Scheduler> scheduler_;
  const ModelConfig config_;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_MODELS_SERVED_MODEL_H_
