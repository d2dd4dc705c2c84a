#include "server/models/repository_sync.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/loader/model_warmup.h"
#include "server/models/served_config.h"

namespace sepconv {
namespace {

void Retire(std::shared_ptr<ServedModel> model, const ModelOptions& options) {
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

absl::Status ApplyRepositoryDiff(const RepositoryDiff& diff, const ModelOptions& options,
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

RepositorySync::RepositorySync(const std::string& root, const ModelOptions& options,
                               Metrics* metrics, std::shared_ptr<ModelRegistry> registry)
    : root_(root),
      options_(options),
      metrics_(metrics),
      registry_(std::move(registry)),
      repository_(RepositoryOptions{root, options.ModelSchedulerOptions(), {}}) {}

absl::StatusOr<std::unique_ptr<RepositorySync>> RepositorySync::Start(
    const std::string& root, const ModelOptions& options, Metrics* metrics,
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

absl::StatusOr<std::unique_ptr<RepositorySync>> RepositorySync::StartExplicit(
    const std::string& root, const ModelOptions& options, Metrics* metrics,
    std::shared_ptr<ModelRegistry> registry, const std::vector<std::string>& load_models) {
  std::unique_ptr<RepositorySync> sync(
      new RepositorySync(root, options, metrics, std::move(registry)));
  sync->explicit_ = true;
  if (absl::StatusOr<std::vector<std::string>> names = ListModelFolders(root); !names.ok()) {
    return names.status();
  }
  for (const std::string& name : load_models) {
    const absl::Status status = name == "*" ? sync->PollOnce() : sync->Load(name);
    if (absl::IsNotFound(status) && name != "*") return status;
  }
  return sync;
}

std::vector<ModelIndexEntry> RepositorySync::Index() const {
  std::vector<ModelIndexEntry> index = IndexFromRegistry(*registry_);
  absl::StatusOr<std::vector<std::string>> folders = ListModelFolders(root_);
  if (!folders.ok()) return index;
  for (const std::string& name : *folders) {
    if (!registry_->Versions(name).ok()) index.push_back({name, "", "UNAVAILABLE", "unloaded"});
  }
  std::sort(index.begin(), index.end(), [](const ModelIndexEntry& a, const ModelIndexEntry& b) {
    return a.name != b.name ? a.name < b.name : a.version < b.version;
  });
  return index;
}

absl::Status RepositorySync::Load(const std::string& name) {
  if (!explicit_) return absl::UnavailableError(kModelControlDisabled);
  absl::MutexLock lock(&poll_mu_);
  // Not serving (never loaded, unloaded or failed): load from scratch, so
  // that unchanged files are loaded (or fail) again.
  if (!registry_->IsReady(name, "")) repository_.Forget(name);
  absl::StatusOr<RepositoryDiff> diff = repository_.PollModel(name);
  if (!diff.ok()) return diff.status();
  absl::Status status = ApplyRepositoryDiff(*diff, options_, metrics_, registry_.get());
  if (!status.ok()) return status;
  if (registry_->IsReady(name, "")) return absl::OkStatus();
  absl::StatusOr<std::shared_ptr<ServedModel>> found = registry_->Find(name, "");
  return found.ok() ? absl::UnavailableError(absl::StrCat("model '", name, "' is not ready"))
                    : found.status();
}

absl::Status RepositorySync::Unload(const std::string& name) {
  if (!explicit_) return absl::UnavailableError(kModelControlDisabled);
  absl::MutexLock lock(&poll_mu_);
  absl::StatusOr<std::vector<VersionStatus>> versions = registry_->Versions(name);
  if (!versions.ok()) {
    absl::StatusOr<std::vector<std::string>> folders = ListModelFolders(root_);
    if (folders.ok() && std::find(folders->begin(), folders->end(), name) == folders->end()) {
      return absl::NotFoundError(
          absl::StrCat("no model '", name, "' in the model repository '", root_, "'"));
    }
    return absl::OkStatus();  // known, not loaded
  }
  // Out of the registry first (new requests: NOT_FOUND), then drain each.
  std::vector<std::shared_ptr<ServedModel>> removed;
  for (const VersionStatus& version : *versions) {
    removed.push_back(registry_->Remove(name, version.version));
  }
  for (std::shared_ptr<ServedModel>& model : removed) Retire(std::move(model), options_);
  repository_.Forget(name);
  std::fprintf(stderr, "sepconv-server: unloaded model '%s'\n", name.c_str());
  return absl::OkStatus();
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
