#include "server/models/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/loader/model_config.h"

namespace sepconv {
namespace {

namespace fs = std::filesystem;

constexpr char kConfigFile[] = "config.pbtxt";

struct Candidate {
  int64_t version = 0;
  std::string dir;
  std::string fingerprint;
  absl::Status error;  // set when the version cannot even be attempted
};

struct ModelScan {
  absl::Status error;  // model-level
  std::string fingerprint;
  ModelConfig config;
  std::vector<Candidate> versions;
};

// Positive integers without leading zeros, as Triton reads version folders.
bool ParseVersion(const std::string& name, int64_t* version) {
  if (name.empty() || name[0] == '0') return false;
  if (!std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  return absl::SimpleAtoi(name, version) && *version > 0;
}

std::string FileStamp(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return "missing";
  const auto mtime = fs::last_write_time(path, ec);
  if (ec) return "missing";
  return absl::StrCat(size, "@", mtime.time_since_epoch().count());
}

absl::StatusOr<std::string> ReadSmallFile(const fs::path& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open '", path.string(), "'"));
  std::stringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

// Calls `visit` for each entry of `dir`. Uses only the non-throwing
// std::filesystem overloads: a folder that vanishes, turns into a file or a
// broken link, or fails while being read gives a status, never an exception.
template <typename Visit>
absl::Status ListFolder(const fs::path& dir, Visit visit) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) visit(*it);
  if (!ec) return absl::OkStatus();
  const std::string message = absl::StrCat("cannot list '", dir.string(), "': ", ec.message());
  if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
    return absl::NotFoundError(message);
  }
  if (ec == std::errc::permission_denied) return absl::PermissionDeniedError(message);
  return absl::UnavailableError(message);
}

std::vector<int64_t> SelectVersions(const ModelVersionPolicy& policy,
                                    const std::vector<int64_t>& present) {  // ascending
  if (policy.has_all()) return present;
  if (policy.has_specific()) {
    std::vector<int64_t> v(policy.specific().versions().begin(),
                           policy.specific().versions().end());
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }
  const size_t n = policy.has_latest() ? policy.latest().num_versions() : 1;
  const size_t keep = std::min(n, present.size());
  return std::vector<int64_t>(present.end() - keep, present.end());
}

ModelScan ScanModel(const fs::path& dir, const std::string& name,
                    const SchedulerOptions& defaults) {
  ModelScan scan;
  const fs::path config_path = dir / kConfigFile;
  std::error_code ec;
  if (fs::exists(config_path, ec)) {
    absl::StatusOr<std::string> text = ReadSmallFile(config_path);
    if (!text.ok()) {
      scan.error = text.status();
      return scan;
    }
    scan.fingerprint = *text;
    absl::StatusOr<ModelConfig> config = ParseModelConfig(*text, config_path.string());
    if (!config.ok()) {
      scan.error = config.status();
      return scan;
    }
    scan.config = *std::move(config);
  } else {
    scan.config = DefaultModelConfig(defaults);
    scan.fingerprint = "<no config>";
  }
  if (absl::Status s = ValidateModelConfig(scan.config, name); !s.ok()) {
    scan.error = absl::Status(s.code(), absl::StrCat(config_path.string(), ": ", s.message()));
    return scan;
  }
  std::vector<int64_t> present;
  absl::Status listed = ListFolder(dir, [&](const fs::directory_entry& entry) {
    std::error_code entry_ec;
    int64_t version = 0;
    if (entry.is_directory(entry_ec) && ParseVersion(entry.path().filename().string(), &version)) {
      present.push_back(version);
    }
  });
  if (!listed.ok()) {
    scan.error = std::move(listed);
    return scan;
  }
  std::sort(present.begin(), present.end());
  if (present.empty()) {
    if (!scan.config.has_sepconv()) {
      scan.error = absl::NotFoundError(
          absl::StrCat("model folder '", dir.string(), "' has no version folder (e.g. 1/)"));
      return scan;
    }
    present.push_back(1);  // layers from the config need no files
  }
  const std::string filename = scan.config.default_model_filename().empty()
                                   ? kDefaultModelFilename
                                   : scan.config.default_model_filename();
  for (int64_t version : SelectVersions(scan.config.version_policy(), present)) {
    Candidate c;
    c.version = version;
    c.dir = (dir / std::to_string(version)).string();
    c.fingerprint = absl::StrCat(scan.fingerprint, "\n#", FileStamp(fs::path(c.dir) / filename));
    if (!std::binary_search(present.begin(), present.end(), version) &&
        !scan.config.has_sepconv()) {
      c.error = absl::NotFoundError(absl::StrCat("version_policy selects version ", version,
                                                 " but folder '", c.dir, "' does not exist"));
    }
    scan.versions.push_back(std::move(c));
  }
  return scan;
}

VersionLoad LoadVersion(const std::string& name, const ModelScan& scan, const Candidate& c,
                        const SchedulerOptions& defaults) {
  VersionLoad load;
  load.model = name;
  load.version = c.version;
  if (!c.error.ok()) {
    load.status = c.error;
    return load;
  }
  absl::StatusOr<LoadedModel> loaded = LoadModelVersion(scan.config, name, c.dir);
  if (!loaded.ok()) {
    load.status = loaded.status();
    return load;
  }
  load.scheduler = SchedulerOptionsFromConfig(loaded->config, defaults);
  load.loaded = std::make_shared<const LoadedModel>(*std::move(loaded));
  return load;
}

}  // namespace

SchedulerOptions SchedulerOptionsFromConfig(const ModelConfig& config,
                                            const SchedulerOptions& defaults) {
  SchedulerOptions options = defaults;
  options.preferred_batch_sizes.clear();
  if (!config.has_dynamic_batching() || config.max_batch_size() <= 0) {
    options.max_batch_size = 0;
    options.max_queue_delay = absl::ZeroDuration();
  } else {
    const ModelDynamicBatching& batching = config.dynamic_batching();
    options.max_batch_size = config.max_batch_size();
    options.max_queue_delay = absl::Microseconds(batching.max_queue_delay_microseconds());
    options.preferred_batch_sizes.assign(batching.preferred_batch_size().begin(),
                                         batching.preferred_batch_size().end());
    if (batching.default_queue_policy().max_queue_size() > 0) {
      options.max_queue_size = static_cast<int>(batching.default_queue_policy().max_queue_size());
    }
  }
  if (!config.instance_group().empty()) {
    int instances = 0;
    for (const ModelInstanceGroup& group : config.instance_group()) {
      instances += std::max(1, group.count());
    }
    options.instances = instances;
  }
  return options;
}

ModelConfig DefaultModelConfig(const SchedulerOptions& defaults) {
  ModelConfig config;
  config.set_max_batch_size(std::max(0, defaults.max_batch_size));
  if (defaults.max_batch_size > 0) {
    ModelDynamicBatching* batching = config.mutable_dynamic_batching();
    batching->set_max_queue_delay_microseconds(
        std::max<int64_t>(0, absl::ToInt64Microseconds(defaults.max_queue_delay)));
    for (int size : defaults.preferred_batch_sizes) {
      if (size >= 1 && size <= defaults.max_batch_size) batching->add_preferred_batch_size(size);
    }
    batching->mutable_default_queue_policy()->set_max_queue_size(
        static_cast<uint32_t>(std::max(0, defaults.max_queue_size)));
  }
  ModelInstanceGroup* group = config.add_instance_group();
  group->set_kind(ModelInstanceGroup::KIND_CPU);
  group->set_count(std::max(1, defaults.instances));
  return config;
}

absl::StatusOr<std::vector<std::string>> ListModelFolders(const std::string& root) {
  std::vector<std::string> names;
  absl::Status listed = ListFolder(fs::path(root), [&](const fs::directory_entry& entry) {
    std::error_code ec;
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.' && entry.is_directory(ec)) names.push_back(name);
  });
  if (!listed.ok()) {
    return absl::Status(listed.code(), absl::StrCat("model repository: ", listed.message()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

ModelRepository::ModelRepository(RepositoryOptions options) : options_(std::move(options)) {}

absl::StatusOr<RepositoryDiff> ModelRepository::Poll() {
  // Nothing below throws on purpose; this keeps an unexpected exception
  // (e.g. std::bad_alloc, or a filesystem error from a hook) from ending the
  // poller thread. The previous state is kept, so the next Poll retries.
  try {
    return Scan();
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("scan of model repository '", options_.root, "' failed: ", e.what()));
  }
}

absl::StatusOr<RepositoryDiff> ModelRepository::PollModel(const std::string& name) {
  std::error_code ec;
  if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos ||
      !fs::is_directory(fs::path(options_.root) / name, ec)) {
    return absl::NotFoundError(
        absl::StrCat("no model '", name, "' in the model repository '", options_.root, "'"));
  }
  try {
    return ScanModels({name}, /*whole_repository=*/false);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("scan of model '", name, "' failed: ", e.what()));
  }
}

void ModelRepository::Forget(const std::string& name) {
  for (auto it = known_.lower_bound({name, 0}); it != known_.end() && it->first.first == name;) {
    it = known_.erase(it);
  }
}

absl::StatusOr<RepositoryDiff> ModelRepository::Scan() {
  absl::StatusOr<std::vector<std::string>> names = ListModelFolders(options_.root);
  if (!names.ok()) return names.status();
  return ScanModels(*names, /*whole_repository=*/true);
}

absl::StatusOr<RepositoryDiff> ModelRepository::ScanModels(const std::vector<std::string>& names,
                                                           bool whole_repository) {
  const fs::path root(options_.root);
  RepositoryDiff diff;
  std::map<Key, Known> now;
  if (!whole_repository) {
    for (const auto& [key, known] : known_) {
      if (std::find(names.begin(), names.end(), key.first) == names.end()) now[key] = known;
    }
  }
  auto report = [&](Key key, const std::string& fingerprint, auto load) {
    auto old = known_.find(key);
    if (old == known_.end()) {
      diff.added.push_back(load());
    } else if (old->second.fingerprint != fingerprint) {
      diff.changed.push_back(load());
    }
    now[key] = Known{fingerprint};
  };
  for (const std::string& name : names) {
    if (options_.before_model_scan) options_.before_model_scan(name);
    const ModelScan scan = ScanModel(root / name, name, options_.default_scheduler);
    if (!scan.error.ok()) {
      // Keep what was loaded before; report the failure once per change.
      for (auto k = known_.lower_bound({name, 1}); k != known_.end() && k->first.first == name;
           ++k) {
        now.insert(*k);
      }
      report({name, 0}, absl::StrCat(scan.fingerprint, "\n#", scan.error.ToString()), [&] {
        VersionLoad load;
        load.model = name;
        load.status = scan.error;
        return load;
      });
      continue;
    }
    for (const Candidate& c : scan.versions) {
      diff.selected[name].push_back(c.version);
      report({name, c.version}, c.fingerprint,
             [&] { return LoadVersion(name, scan, c, options_.default_scheduler); });
    }
  }
  for (const auto& [key, known] : known_) {
    if (now.find(key) == now.end()) diff.removed.push_back(key);
  }
  known_ = std::move(now);
  return diff;
}

}  // namespace sepconv
