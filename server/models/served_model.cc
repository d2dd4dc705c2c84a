#include "server/models/served_model.h"

#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/batching/engine_lanes.h"

namespace sepconv {
namespace {

// How many Submit callbacks this thread is inside (they may nest: a done
// that cancels another job runs that job's done).
thread_local int callbacks_running = 0;

// One stderr line per shape the engine tunes: which kernels serve it, on
// how many threads, and what choosing them cost.
std::function<void(const PlanReport&)> PlanLogger(const std::string& name,
                                                  const std::string& version) {
  return [name, version](const PlanReport& report) {
    const Dims4& d = report.input;
    std::string line =
        absl::StrCat("sepconv-server: model '", name, "' version ", version, ", input ", d.n, "x",
                     d.c, "x", d.h, "x", d.w, ": ", absl::StrJoin(report.kernels, ", "), " on ",
                     report.threads, " thread(s), ");
    if (report.from_tuning_cache) {
      absl::StrAppend(&line, "from the tuning cache, built in ",
                      absl::ToInt64Milliseconds(report.spent), " ms");
    } else {
      absl::StrAppend(&line, "chosen by timing ", report.candidates_timed, " candidates in ",
                      absl::ToInt64Milliseconds(report.spent), " ms");
    }
    if (!report.runner_up.empty()) {
      absl::StrAppend(
          &line, absl::StrFormat(" (%d timed runs; runner-up %s at %.2fx the time)", report.rounds,
                                 report.runner_up, report.runner_up_ratio));
    }
    if (!report.tuning_cache_status.ok()) {
      absl::StrAppend(&line,
                      "; not kept in the tuning cache: ", report.tuning_cache_status.message());
    }
    absl::StrAppend(&line, "\n");
    std::fputs(line.c_str(), stderr);
  };
}

}  // namespace

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
  ExecutorOptions options = executor_options;
  if (!options.on_plan_tuned) options.on_plan_tuned = PlanLogger(name, version);
  Scheduler::ExecutorFactory make_executor = [spec, options]() {
    return Executor::Create(spec, options);
  };
  // Every model of the process on the same engine threads (see
  // server/batching/engine_lanes.h).
  SchedulerOptions on_lanes = scheduler_options;
  if (on_lanes.lanes == nullptr) on_lanes.lanes = &EngineLanes::Shared();
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create(on_lanes, std::move(make_executor), model_metrics);
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
  if (callbacks_running > 0) {
    // The last lease dropped in a job's callback, perhaps on one of this
    // version's own workers, which Shutdown joins: a thread of its own
    // stops and frees the scheduler (which shares its metrics; the spec is
    // kept for the workers' executors).
    std::thread([scheduler = std::move(scheduler_), spec = spec_]() mutable {
      scheduler->Shutdown(absl::Now());
      scheduler.reset();
    }).detach();
    return;
  }
  // Normally already shut down by whoever took it out of service; this only
  // guarantees that no worker outlives the model.
  scheduler_->Shutdown(absl::Now());
}

absl::Status ServedModel::Submit(std::unique_ptr<InferenceJob> job) const {
  if (job != nullptr && job->done) {
    job->done = [inner = std::move(job->done)](absl::Status status) mutable {
      ++callbacks_running;
      inner(std::move(status));
      inner = nullptr;  // releases what it holds, inside the mark
      --callbacks_running;
    };
  }
  return scheduler_->Submit(std::move(job));
}

void ServedModel::Shutdown(absl::Time deadline) { scheduler_->Shutdown(deadline); }

}  // namespace sepconv
