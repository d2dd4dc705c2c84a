#ifndef SEPCONV_CLIENT_METRICS_SCRAPE_H_
#define SEPCONV_CLIENT_METRICS_SCRAPE_H_

// Reads the server-side counters the bench reports (metric names as in
// docs/architecture.md, "Metrics")
// from a Prometheus text exposition at http://host:port/path. Plain HTTP/1.0
// over a socket, bounded by a timeout. Stateless; thread-safe.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sepconv::client {

// Sums over every series of one model (and version, unless `version` is
// empty); requests are summed over every status.
struct ServerCounters {
  double requests = 0;       // sepconv_inference_requests_total
  double samples = 0;        // sepconv_inference_samples_total
  double executions = 0;     // sepconv_inference_executions_total
  double queue_sum = 0;      // sepconv_queue_duration_seconds_sum
  double queue_count = 0;    // sepconv_queue_duration_seconds_count
  double compute_sum = 0;    // sepconv_compute_duration_seconds_sum
  double compute_count = 0;  // sepconv_compute_duration_seconds_count
  bool found = false;        // any sepconv_ series of the model was seen
};

// The body of a 200 response to GET `url` ("http://host:port/path").
absl::StatusOr<std::string> HttpGet(const std::string& url, absl::Duration timeout);

// Parses Prometheus text format; malformed lines are an error naming the line.
absl::StatusOr<ServerCounters> ParseCounters(absl::string_view text, const std::string& model,
                                             const std::string& version);

absl::StatusOr<ServerCounters> ScrapeCounters(const std::string& url, const std::string& model,
                                              const std::string& version, absl::Duration timeout);

}  // namespace sepconv::client

#endif  // SEPCONV_CLIENT_METRICS_SCRAPE_H_
