#include "engine/internal/plan_tuner.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace sepconv {
namespace internal {
namespace {

// The ISA table's guess first (what runs if the budget ends early), then
// the others.
std::vector<ActivationLayout> Candidates() {
  std::vector<ActivationLayout> candidates = {ResolveLayout(ActivationLayout::kAuto)};
  for (ActivationLayout layout : {ActivationLayout::kNhwcDirect, ActivationLayout::kNhwc,
                                  ActivationLayout::kBlocked8, ActivationLayout::kBlocked16}) {
    if (layout != candidates.front()) candidates.push_back(layout);
  }
  return candidates;
}
constexpr int kTimedRuns = 3;

struct Choices {
  // Held while a layout is being chosen: one shape is timed at a time in the
  // process (executors would skew each other's timings), and each key gets
  // one choice, so every executor of a model computes the same bits.
  absl::Mutex tuning;
  absl::Mutex mu;
  absl::flat_hash_map<std::string, ActivationLayout> layout ABSL_GUARDED_BY(mu);
};

Choices& TheChoices() {
  static Choices* const choices = new Choices;  // never destroyed
  return *choices;
}

// What the fastest layout depends on: layer shapes and input shape. Not the
// batch size: a sample's result must not depend on the batch it came in
// (each layout rounds differently), so all batch sizes of an image shape
// share the layout chosen on the first one seen.
std::string ChoiceKey(const ModelSpec& model, const Dims4& input) {
  std::string key = absl::StrCat(input.c, "x", input.h, "x", input.w);
  for (const Layer& layer : model.layers) {
    const LayerSpec& s = layer.spec;
    absl::StrAppend(&key, "|", s.in_channels, ",", s.out_channels, ",", s.kernel, ",", s.stride,
                    ",", s.EffectivePadding(), ",", s.dilation, ",", s.depth_multiplier, ",",
                    s.depthwise_bias, s.pointwise_bias, ",",
                    static_cast<int>(s.depthwise_activation), ",",
                    static_cast<int>(s.pointwise_activation));
  }
  return key;
}

}  // namespace

TuneResult BuildTunedPlan(const ModelSpec& model, const Dims4& input, const FlopCount& flops,
                          WeightCache& weights, const dnnl::engine& engine, dnnl::stream& stream,
                          absl::Duration budget) {
  const absl::Time start = absl::Now();
  const std::string key = ChoiceKey(model, input);
  TuneResult result;
  Choices& choices = TheChoices();
  auto find = [&] {
    absl::MutexLock lock(&choices.mu);
    auto it = choices.layout.find(key);
    return it == choices.layout.end() ? ActivationLayout::kAuto : it->second;
  };
  result.layout = find();
  // Not chosen yet: wait for any other tuning, then look again.
  std::optional<absl::MutexLock> tuning;
  if (result.layout == ActivationLayout::kAuto) {
    tuning.emplace(&choices.tuning);
    result.layout = find();
  }
  if (result.layout != ActivationLayout::kAuto) {
    result.plan =
        std::make_unique<Plan>(model, input, flops, result.layout, weights, engine, stream);
    result.spent = absl::Now() - start;
    return result;
  }

  // Timing runs read zeros and write a scratch output (the same work).
  const Dims4 out = InferOutputShape(model, input).value();
  std::vector<float> in_data(static_cast<size_t>(input.n * input.c * input.h * input.w));
  std::vector<float> out_data(static_cast<size_t>(out.n * out.c * out.h * out.w));
  const BatchItem item{in_data.data(), out_data.data(), input.n};
  const absl::Span<const BatchItem> items(&item, 1);
  absl::Duration best_time = absl::InfiniteDuration();
  std::vector<ActivationLayout> tried;
  for (ActivationLayout candidate : Candidates()) {
    if (result.plan != nullptr && absl::Now() - start >= budget) break;
    auto plan = std::make_unique<Plan>(model, input, flops, candidate, weights, engine, stream);
    // A layout without JIT kernels here falls back to one already tried.
    const ActivationLayout effective = plan->layout();
    if (std::find(tried.begin(), tried.end(), effective) != tried.end()) continue;
    tried.push_back(effective);
    plan->Execute(items, stream);  // first run: boundaries, caches
    absl::Duration plan_best = absl::InfiniteDuration();
    for (int run = 0; run < kTimedRuns; ++run) {
      if (run > 0 && absl::Now() - start >= budget) break;
      const absl::Time t0 = absl::Now();
      plan->Execute(items, stream);
      plan_best = std::min(plan_best, absl::Now() - t0);
    }
    ++result.candidates_timed;
    if (plan_best < best_time) {
      best_time = plan_best;
      result.layout = effective;
      result.plan = std::move(plan);
    }
  }
  {
    absl::MutexLock lock(&choices.mu);
    choices.layout.emplace(key, result.layout);
  }
  result.spent = absl::Now() - start;
  return result;
}

void ClearTunedChoices() {
  Choices& choices = TheChoices();
  absl::MutexLock lock(&choices.mu);
  choices.layout.clear();
}

}  // namespace internal
}  // namespace sepconv
