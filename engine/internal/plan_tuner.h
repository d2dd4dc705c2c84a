#ifndef SEPCONV_ENGINE_INTERNAL_PLAN_TUNER_H_
#define SEPCONV_ENGINE_INTERNAL_PLAN_TUNER_H_

// Chooses a Plan's activation layout by measurement: builds the plan for one
// input shape in each candidate layout (nhwc with the direct NCHW matmul
// output, nhwc, nChw8c, nChw16c), times a few runs of each on this CPU and
// keeps the fastest. The choice is remembered process-wide per layer shapes
// and image shape [c, h, w] (not the weights, not the batch size: a sample's
// result must not depend on its batch, and layouts round differently): later
// plans for the same key (another batch size, another executor of the same
// model, a new version, a plan rebuilt after eviction) are built once, in
// the chosen layout, without timing. May throw what Plan throws (the
// Executor catches it). Thread-safe: one shape is tuned at a time in the
// process (others wait; concurrent timings would skew each other) and each
// key gets exactly one choice; the plans built belong to the caller's
// (single-threaded) Executor.

#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "engine/flops.h"
#include "engine/internal/onednn_plan.h"
#include "engine/internal/onednn_weights.h"
#include "engine/model_spec.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace sepconv {
namespace internal {

struct TuneResult {
  std::unique_ptr<Plan> plan;
  ActivationLayout layout = ActivationLayout::kAuto;  // the one chosen
  int candidates_timed = 0;                           // 0: the choice was cached
  absl::Duration spent;                               // building and timing
};

// The plan for `input` in the fastest layout. Candidates are timed until
// `budget` is spent (the first is always timed; each is built, run once, then
// timed up to 3 runs, the best kept), so tuning one shape costs about
// budget + one candidate's build and run.
TuneResult BuildTunedPlan(const ModelSpec& model, const Dims4& input, const FlopCount& flops,
                          WeightCache& weights, const dnnl::engine& engine, dnnl::stream& stream,
                          absl::Duration budget);

// Forgets every remembered choice (tests and benchmarks that measure tuning).
void ClearTunedChoices();

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_PLAN_TUNER_H_
