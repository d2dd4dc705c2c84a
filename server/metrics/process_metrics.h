#ifndef SEPCONV_SERVER_METRICS_PROCESS_METRICS_H_
#define SEPCONV_SERVER_METRICS_PROCESS_METRICS_H_

// The standard Prometheus process metrics of the calling process, read from
// /proc at scrape time (so they cost nothing between scrapes):
//   process_cpu_seconds_total        counter, user + system CPU time
//   process_resident_memory_bytes    gauge
//   process_virtual_memory_bytes     gauge
//   process_open_fds                 gauge
//   process_max_fds                  gauge, the soft RLIMIT_NOFILE
//   process_start_time_seconds       gauge, since the Unix epoch
// Linux only.

#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace sepconv {

struct ProcessStats {
  double cpu_seconds = 0;
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  double open_fds = 0;
  double max_fds = 0;
  double start_time_seconds = 0;
};

// A snapshot of this process; an error if /proc cannot be read or parsed.
// Thread-safe.
absl::StatusOr<ProcessStats> ReadProcessStats();

// A Collectable producing the families above from ReadProcessStats(); it
// produces none when /proc is unreadable. Thread-safe.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_METRICS_PROCESS_METRICS_H_
