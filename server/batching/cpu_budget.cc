#include "server/batching/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace sepconv {
namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// "/a/b" -> {"/a/b", "/a", "/"}: a quota anywhere on the path applies.
std::vector<std::string> SelfAndAncestors(absl::string_view cgroup_path) {
  std::string path(absl::StripSuffix(cgroup_path, "/"));
  std::vector<std::string> paths;
  while (!path.empty()) {
    paths.push_back(path);
    path.resize(path.rfind('/'));
  }
  paths.push_back("");  // the hierarchy's root
  return paths;
}

void TakeMin(std::optional<double> quota, std::optional<double>* result) {
  if (quota.has_value() && (!result->has_value() || *quota < **result)) *result = quota;
}

// cgroup v2 "cpu.max": "<quota> <period>" or "max <period>".
std::optional<double> ReadCpuMax(const std::string& dir) {
  std::optional<std::string> text = ReadFile(dir + "/cpu.max");
  if (!text.has_value()) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(*text), ' ', absl::SkipEmpty());
  int64_t quota = 0;
  int64_t period = 100000;
  if (fields.empty() || !absl::SimpleAtoi(fields[0], &quota) || quota <= 0) return std::nullopt;
  if (fields.size() > 1 && (!absl::SimpleAtoi(fields[1], &period) || period <= 0)) {
    return std::nullopt;
  }
  return static_cast<double>(quota) / static_cast<double>(period);
}

// cgroup v1: cpu.cfs_quota_us (-1 = unlimited) / cpu.cfs_period_us.
std::optional<double> ReadCfsQuota(const std::string& dir) {
  std::optional<std::string> quota_text = ReadFile(dir + "/cpu.cfs_quota_us");
  std::optional<std::string> period_text = ReadFile(dir + "/cpu.cfs_period_us");
  int64_t quota = 0;
  int64_t period = 0;
  if (!quota_text.has_value() || !period_text.has_value() ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(*quota_text), &quota) ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(*period_text), &period) || quota <= 0 ||
      period <= 0) {
    return std::nullopt;
  }
  return static_cast<double>(quota) / static_cast<double>(period);
}

}  // namespace

std::optional<double> CgroupCpuQuota(const std::string& root) {
  const std::string base = std::string(absl::StripSuffix(root, "/")) + "/sys/fs/cgroup";
  std::optional<std::string> self =
      ReadFile(std::string(absl::StripSuffix(root, "/")) + "/proc/self/cgroup");
  if (!self.has_value()) return std::nullopt;
  std::optional<double> result;
  // Each line: "<hierarchy-id>:<controllers>:<path>".
  for (absl::string_view line : absl::StrSplit(*self, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    const absl::string_view controllers = parts[1];
    const std::vector<std::string> paths = SelfAndAncestors(parts[2]);
    if (parts[0] == "0" && controllers.empty()) {
      // v2: mounted at /sys/fs/cgroup, or /sys/fs/cgroup/unified in hybrid setups.
      for (const char* mount : {"", "/unified"}) {
        for (const std::string& path : paths) TakeMin(ReadCpuMax(base + mount + path), &result);
      }
      continue;
    }
    std::vector<absl::string_view> names = absl::StrSplit(controllers, ',');
    if (std::find(names.begin(), names.end(), "cpu") == names.end()) continue;
    // v1: the cpu controller's mount is named after its co-mounted controllers.
    std::vector<std::string> mounts = {"/" + std::string(controllers)};
    for (const char* usual : {"/cpu", "/cpu,cpuacct", "/cpuacct,cpu"}) {
      if (std::find(mounts.begin(), mounts.end(), usual) == mounts.end()) mounts.push_back(usual);
    }
    for (const std::string& mount : mounts) {
      for (const std::string& path : paths) TakeMin(ReadCfsQuota(base + mount + path), &result);
    }
  }
  return result;
}

int AffinityCpuCount() {
  // Start with room for 1024 CPUs and grow while the kernel's mask is larger.
  for (int cpus = 1024; cpus <= (1 << 20); cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(cpus);
    if (set == nullptr) break;
    const size_t size = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(size, set);
    if (sched_getaffinity(0, size, set) == 0) {
      const int count = CPU_COUNT_S(size, set);
      CPU_FREE(set);
      return std::max(1, count);
    }
    CPU_FREE(set);
    if (errno != EINVAL) break;
  }
  return 1;
}

CpuBudget ComputeCpuBudget(const std::string& root) {
  CpuBudget budget;
  budget.affinity_cpus = AffinityCpuCount();
  budget.quota_cpus = CgroupCpuQuota(root);
  budget.usable = budget.affinity_cpus;
  if (budget.quota_cpus.has_value()) {
    budget.usable = std::min(budget.usable, static_cast<int>(std::ceil(*budget.quota_cpus)));
  }
  budget.usable = std::max(1, budget.usable);
  return budget;
}

int UsableCpus() { return ComputeCpuBudget().usable; }

int DefaultEngineThreads(int usable, int instances) {
  return std::max(1, usable / std::max(1, instances));
}

}  // namespace sepconv
