// The bench's plot script: every step's point is labelled with its load.

#include "client/bench_report.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "client/bench.h"
#include "gtest/gtest.h"

namespace sepconv::client {
namespace {

StepResult Step(const char* mode, double load, double infer_per_sec, double p99_ms) {
  StepResult r;
  r.mode = mode;
  r.load = load;
  r.infer_per_sec = infer_per_sec;
  r.p50_ms = p99_ms / 2;
  r.p90_ms = p99_ms * 0.8;
  r.p99_ms = p99_ms;
  return r;
}

TEST(PlotScriptTest, LabelsEachPointWithItsConcurrency) {
  const std::string script = PlotScript(
      {Step("concurrency", 1, 900, 1.5), Step("concurrency", 16, 1200, 20)}, "t", "/tmp/x.png");
  EXPECT_TRUE(absl::StrContains(script, "with labels")) << script;
  EXPECT_TRUE(absl::StrContains(script, "900.000 1.5000 \"c=1\"\n")) << script;
  EXPECT_TRUE(absl::StrContains(script, "1200.000 20.0000 \"c=16\"\n")) << script;
}

TEST(PlotScriptTest, LabelsEachPointWithItsRateInOpenLoop) {
  const std::string script = PlotScript({Step("rate", 500, 498, 3)}, "t", "/tmp/x.png");
  EXPECT_TRUE(absl::StrContains(script, "498.000 3.0000 \"500/s\"\n")) << script;
}

}  // namespace
}  // namespace sepconv::client
