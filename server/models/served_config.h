#ifndef SEPCONV_SERVER_MODELS_SERVED_CONFIG_H_
#define SEPCONV_SERVER_MODELS_SERVED_CONFIG_H_

// The configuration a model version is served with, as Triton's ModelConfig
// RPC reports it: the loader's completed config (name, input and output
// with dims in the max_batch_size convention) plus what the server
// defaulted - version_policy (latest 1), backend ("sepconv"), the dynamic
// batcher's effective delay, preferred sizes and queue bound, and the
// instance groups (KIND_CPU, named <model>_<index>, with the worker count).
// Pure functions; thread-safe.

#include "absl/status/statusor.h"
#include "engine/model_spec.h"
#include "model_config.pb.h"
#include "server/batching/scheduler.h"

namespace sepconv {

// `completed` is a config completed by CompleteModelConfig; `scheduler` the
// options its batcher runs with (SchedulerOptionsFromConfig).
ModelConfig EffectiveModelConfig(ModelConfig completed, const SchedulerOptions& scheduler);

// The built-in model's effective config: what a repository model without
// config.pbtxt would get, completed from `spec` (spatial dims variable).
absl::StatusOr<ModelConfig> BuiltInModelConfig(const std::string& name, const ModelSpec& spec,
                                               const SchedulerOptions& scheduler);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_MODELS_SERVED_CONFIG_H_
