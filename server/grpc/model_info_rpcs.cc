// Triton's ModelConfig and ModelStatistics RPCs (declared in
// inference_service.h).

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/status_util.h"

namespace sepconv {
namespace {

void SetDuration(uint64_t count, uint64_t ns, inference::StatisticDuration* out) {
  out->set_count(count);
  out->set_ns(ns);
}

void FillStatistics(const ModelVersionStats& model, inference::ModelStatistics* out) {
  const ModelStatsSnapshot& stats = model.stats;
  out->set_name(model.name);
  out->set_version(model.version);
  out->set_last_inference(stats.last_request_ms);
  out->set_inference_count(stats.samples);
  out->set_execution_count(stats.executions);
  inference::InferStatistics* infer = out->mutable_inference_stats();
  SetDuration(stats.success_count, stats.success_ns, infer->mutable_success());
  SetDuration(stats.fail_count, stats.fail_ns, infer->mutable_fail());
  SetDuration(stats.queue_count, stats.queue_ns, infer->mutable_queue());
  SetDuration(stats.compute_count, stats.compute_ns, infer->mutable_compute_infer());
  infer->mutable_compute_input();
  infer->mutable_compute_output();
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) return FinishUnary(context, auth);
  absl::StatusOr<sepconv::ModelConfig> config =
      core_->ModelConfig(request->name(), request->version());
  if (!config.ok()) return FinishUnary(context, config.status());
  *response->mutable_config() = *std::move(config);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  if (absl::Status auth = Authenticate(*context); !auth.ok()) return FinishUnary(context, auth);
  absl::StatusOr<std::vector<ModelVersionStats>> stats =
      core_->ModelStatistics(request->name(), request->version());
  if (!stats.ok()) return FinishUnary(context, stats.status());
  for (const ModelVersionStats& model : *stats) FillStatistics(model, response->add_model_stats());
  return FinishUnary(context, absl::OkStatus());
}

}  // namespace sepconv
