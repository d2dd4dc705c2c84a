#include "server/models/model_registry.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sepconv {
namespace {

bool IsNumber(const std::string& s) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

bool ModelRegistry::VersionLess::operator()(const std::string& a, const std::string& b) const {
  const bool a_num = IsNumber(a);
  const bool b_num = IsNumber(b);
  if (a_num != b_num) return a_num;
  if (a_num) return std::stoll(a) != std::stoll(b) ? std::stoll(a) < std::stoll(b) : a < b;
  return a < b;
}

std::shared_ptr<ServedModel> ModelRegistry::Put(const std::string& name, const std::string& version,
                                                Entry entry) {
  std::shared_ptr<ServedModel> displaced;
  {
    absl::MutexLock lock(&mu_);
    Entry& slot = models_[name][version];
    displaced = std::move(slot.model);
    slot = std::move(entry);
  }
  Notify();
  return displaced;
}

std::shared_ptr<ServedModel> ModelRegistry::AddOrReplace(std::shared_ptr<ServedModel> model) {
  const std::string name = model->name();
  const std::string version = model->version();
  return Put(name, version, Entry{std::move(model), ""});
}

std::shared_ptr<ServedModel> ModelRegistry::MarkUnavailable(const std::string& name,
                                                            const std::string& version,
                                                            std::string reason) {
  return Put(name, version, Entry{nullptr, std::move(reason)});
}

std::shared_ptr<ServedModel> ModelRegistry::Remove(const std::string& name,
                                                   const std::string& version) {
  std::shared_ptr<ServedModel> removed;
  {
    absl::MutexLock lock(&mu_);
    auto model = models_.find(name);
    if (model == models_.end()) return nullptr;
    auto entry = model->second.find(version);
    if (entry == model->second.end()) return nullptr;
    removed = std::move(entry->second.model);
    model->second.erase(entry);
    if (model->second.empty()) models_.erase(model);
  }
  Notify();
  return removed;
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelRegistry::Find(const std::string& name,
                                                                 const std::string& version) const {
  absl::MutexLock lock(&mu_);
  auto model = models_.find(name);
  if (model == models_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
  }
  const VersionMap& versions = model->second;
  if (version.empty()) {
    for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
      if (it->second.model != nullptr) return it->second.model;
    }
    return absl::UnavailableError(absl::StrCat("model '", name, "' has no ready version; ",
                                               versions.rbegin()->first, ": ",
                                               versions.rbegin()->second.reason));
  }
  auto entry = versions.find(version);
  if (entry == versions.end()) {
    return absl::NotFoundError(
        absl::StrCat("unknown version '", version, "' of model '", name, "'"));
  }
  if (entry->second.model == nullptr) {
    return absl::UnavailableError(absl::StrCat("model '", name, "' version '", version,
                                               "' is not ready: ", entry->second.reason));
  }
  return entry->second.model;
}

bool ModelRegistry::IsReady(const std::string& name, const std::string& version) const {
  return Find(name, version).ok();
}

absl::StatusOr<std::vector<VersionStatus>> ModelRegistry::Versions(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto model = models_.find(name);
  if (model == models_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
  }
  std::vector<VersionStatus> result;
  for (const auto& [version, entry] : model->second) {
    result.push_back(VersionStatus{version, entry.model != nullptr, entry.reason});
  }
  return result;
}

std::vector<std::string> ModelRegistry::ModelNames() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, versions] : models_) names.push_back(name);
  return names;
}

std::vector<std::shared_ptr<ServedModel>> ModelRegistry::LoadedModels() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<ServedModel>> loaded;
  for (const auto& [name, versions] : models_) {
    for (const auto& [version, entry] : versions) {
      if (entry.model != nullptr) loaded.push_back(entry.model);
    }
  }
  return loaded;
}

bool ModelRegistry::AllModelsReady() const {
  absl::MutexLock lock(&mu_);
  for (const auto& [name, versions] : models_) {
    bool any = false;
    for (const auto& [version, entry] : versions) any = any || entry.model != nullptr;
    if (!any) return false;
  }
  return true;
}

void ModelRegistry::AddObserver(std::function<void()> observer) {
  absl::MutexLock lock(&observers_mu_);
  observers_.push_back(std::move(observer));
}

void ModelRegistry::Notify() {
  std::vector<std::function<void()>> observers;
  {
    absl::MutexLock lock(&observers_mu_);
    observers = observers_;
  }
  for (const auto& observer : observers) observer();
}

}  // namespace sepconv
