#include "server/metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace sepconv {
namespace {

absl::StatusOr<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return absl::UnavailableError(absl::StrCat("cannot open ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Seconds since the epoch at which the machine booted ("btime" in /proc/stat).
absl::StatusOr<double> BootTime() {
  absl::StatusOr<std::string> stat = ReadFile("/proc/stat");
  if (!stat.ok()) return stat.status();
  for (absl::string_view line : absl::StrSplit(*stat, '\n')) {
    if (!absl::ConsumePrefix(&line, "btime ")) continue;
    double btime = 0;
    if (absl::SimpleAtod(line, &btime)) return btime;
  }
  return absl::InternalError("no btime in /proc/stat");
}

absl::StatusOr<double> CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return absl::UnavailableError("cannot list /proc/self/fd");
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the descriptor of `dir` itself
}

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return prometheus::MetricFamily{std::move(name), std::move(help), type, {metric}};
}

}  // namespace

absl::StatusOr<ProcessStats> ReadProcessStats() {
  absl::StatusOr<std::string> stat = ReadFile("/proc/self/stat");
  if (!stat.ok()) return stat.status();
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the
  // fields are counted from the last ')'. Field 3 (state) is fields[0] here.
  const size_t paren = stat->rfind(')');
  if (paren == std::string::npos) return absl::InternalError("malformed /proc/self/stat");
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*stat).substr(paren + 1), ' ', absl::SkipEmpty());
  auto field = [&fields](int number, double* out) {
    const size_t index = static_cast<size_t>(number - 3);
    return index < fields.size() &&
           absl::SimpleAtod(absl::StripAsciiWhitespace(fields[index]), out);
  };
  double utime = 0, stime = 0, starttime = 0, vsize = 0, rss_pages = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &starttime) || !field(23, &vsize) ||
      !field(24, &rss_pages)) {
    return absl::InternalError("malformed /proc/self/stat");
  }
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  absl::StatusOr<double> boot = BootTime();
  if (!boot.ok()) return boot.status();
  absl::StatusOr<double> open_fds = CountOpenFds();
  if (!open_fds.ok()) return open_fds.status();
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return absl::InternalError("getrlimit failed");

  ProcessStats stats;
  stats.cpu_seconds = (utime + stime) / ticks;
  stats.resident_memory_bytes = rss_pages * static_cast<double>(sysconf(_SC_PAGESIZE));
  stats.virtual_memory_bytes = vsize;
  stats.open_fds = *open_fds;
  stats.max_fds = static_cast<double>(limit.rlim_cur);
  stats.start_time_seconds = *boot + starttime / ticks;
  return stats;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  absl::StatusOr<ProcessStats> stats = ReadProcessStats();
  if (!stats.ok()) return {};
  using prometheus::MetricType;
  return {
      Family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
             MetricType::Counter, stats->cpu_seconds),
      Family("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
             stats->resident_memory_bytes),
      Family("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
             stats->virtual_memory_bytes),
      Family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
             stats->open_fds),
      Family("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
             stats->max_fds),
      Family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
             MetricType::Gauge, stats->start_time_seconds),
  };
}

}  // namespace sepconv
