#ifndef SEPCONV_CLIENT_BENCH_REPORT_H_
#define SEPCONV_CLIENT_BENCH_REPORT_H_

// Renders bench results: an aligned table for people, CSV and JSON for
// programs, and a latency-vs-throughput PNG through gnuplot. Stateless;
// thread-safe.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/bench.h"

namespace sepconv::client {

std::string FormatTable(const std::vector<StepResult>& results);
// A header line and one row per step; `errors` is "CODE:n;CODE:n".
std::string FormatCsv(const std::vector<StepResult>& results);
// {"steps": [{...}, ...]}
std::string FormatJson(const std::vector<StepResult>& results);

// FAILED_PRECONDITION with an install hint when gnuplot is not on PATH.
absl::Status CheckGnuplot();
// PERMISSION_DENIED naming `path` when it cannot be written (checked before a
// long run rather than after it).
absl::Status CheckWritable(const std::string& path);
// The gnuplot script WritePlot runs: p50/p90/p99 latency against throughput,
// each step's point labelled with its load ("c=16" in flight, or "500/s").
std::string PlotScript(const std::vector<StepResult>& results, const std::string& title,
                       const std::string& png_path);
// Writes a PNG of p50/p90/p99 latency against throughput with gnuplot.
absl::Status WritePlot(const std::vector<StepResult>& results, const std::string& title,
                       const std::string& png_path);

}  // namespace sepconv::client

#endif  // SEPCONV_CLIENT_BENCH_REPORT_H_
