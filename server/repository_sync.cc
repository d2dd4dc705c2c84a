#include "server/repository_sync.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/loader/model_warmup.h"
#include "server/served_config.h"

namespace sepconv {
namespace {

void Retire(std::shared_ptr<ServedModel> model, const ServerOptions& options) {
  if (model != nullptr) model->Shutdown(absl::Now() + options.exit_timeout);
}

// Whether `model` has a version that the policy selects and that serves.
bool HasReadySelected(const RepositoryDiff& diff, const std::string& model,
                      const ModelRegistry& registry) {
  auto selected = diff.selected.find(model);
  if (selected == diff.selected.end()) return false;
  for (int64_t version : selected->second) {
    if (registry.IsReady(model, absl::StrCat(version))) return true;
  }
  return false;
}

}  // namespace

absl::Status ApplyRepositoryDiff(const RepositoryDiff& diff, const ServerOptions& options,
                                 Metrics* metrics, ModelRegistry* registry) {
  absl::Status first_error;
  for (const auto* loads : {&diff.added, &diff.changed}) {
    for (const VersionLoad& load : *loads) {
      const std::string version = absl::StrCat(load.version);
      absl::Status status = load.status;
      if (status.ok()) {
        SchedulerOptions scheduler = load.scheduler;
        ExecutorOptions executor = options.ModelExecutorOptions();
        // Every worker's plans are built and tuned before the version is
        // registered, so it takes traffic only once warm.
        absl::StatusOr<std::vector<Dims4>> warm = WarmupShapes(load.loaded->config);
        if (warm.ok()) executor.warm_shapes = *std::move(warm);
        absl::StatusOr<std::shared_ptr<ServedModel>> model =
            warm.ok()
                ? ServedModel::Create(load.model, version, load.loaded->spec, scheduler, executor,
                                      metrics, EffectiveModelConfig(load.loaded->config, scheduler))
                : warm.status();
        if (model.ok()) {
          Retire(registry->AddOrReplace(*std::move(model)), options);
          std::fprintf(stderr, "sepconv-server: serving model '%s' version %s (%s)\n",
                       load.model.c_str(), version.c_str(), load.loaded->source.c_str());
          continue;
        }
        status = model.status();
      }
      if (first_error.ok()) first_error = status;
      std::fprintf(stderr, "sepconv-server: model '%s' version %s not served: %s\n",
                   load.model.c_str(), version.c_str(), status.ToString().c_str());
      // A changed version that no longer loads keeps serving its previous
      // load (as Triton does), so a bad rewrite drops no requests.
      if (loads == &diff.changed && load.version != 0 && registry->IsReady(load.model, version)) {
        continue;
      }
      // A model-level failure (version 0) keeps the versions already served.
      if (load.version != 0 || !registry->Versions(load.model).ok()) {
        Retire(registry->MarkUnavailable(load.model, version, status.ToString()), options);
      }
    }
  }
  // A version the policy no longer selects is retired only once a selected
  // version of its model is ready: a new version that fails to load (or is
  // still being copied in) leaves the previous one serving.
  for (const auto& [model, version] : diff.removed) {
    if (version != 0 && !HasReadySelected(diff, model, *registry)) continue;
    Retire(registry->Remove(model, absl::StrCat(version)), options);
  }
  for (const auto& [model, versions] : diff.selected) {
    if (!HasReadySelected(diff, model, *registry)) continue;
    absl::StatusOr<std::vector<VersionStatus>> served = registry->Versions(model);
    if (!served.ok()) continue;
    for (const VersionStatus& v : *served) {
      int64_t number = 0;
      if (absl::SimpleAtoi(v.version, &number) &&
          std::find(versions.begin(), versions.end(), number) == versions.end()) {
        Retire(registry->Remove(model, v.version), options);
      }
    }
  }
  return first_error;
}

RepositorySync::RepositorySync(const std::string& root, const ServerOptions& options,
                               Metrics* metrics, std::shared_ptr<ModelRegistry> registry)
    : options_(options),
      metrics_(metrics),
      registry_(std::move(registry)),
      repository_(RepositoryOptions{root, options.ModelSchedulerOptions(), {}}) {}

absl::StatusOr<std::unique_ptr<RepositorySync>> RepositorySync::Start(
    const std::string& root, const ServerOptions& options, Metrics* metrics,
    std::shared_ptr<ModelRegistry> registry, absl::Duration poll_interval) {
  std::unique_ptr<RepositorySync> sync(
      new RepositorySync(root, options, metrics, std::move(registry)));
  absl::Status first = sync->PollOnce();
  if (absl::IsNotFound(first) || absl::IsPermissionDenied(first)) return first;
  if (poll_interval > absl::ZeroDuration()) {
    sync->thread_ = std::thread([s = sync.get(), poll_interval] { s->Loop(poll_interval); });
  }
  return sync;
}

RepositorySync::~RepositorySync() { Stop(); }

void RepositorySync::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status RepositorySync::PollOnce() {
  absl::MutexLock lock(&poll_mu_);
  absl::StatusOr<RepositoryDiff> diff = repository_.Poll();
  if (!diff.ok()) return diff.status();
  return ApplyRepositoryDiff(*diff, options_, metrics_, registry_.get());
}

void RepositorySync::Loop(absl::Duration interval) {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
    }
    absl::Status status = PollOnce();
    if (!status.ok()) {
      std::fprintf(stderr, "sepconv-server: repository poll: %s\n", status.ToString().c_str());
    }
  }
}

}  // namespace sepconv
