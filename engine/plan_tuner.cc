#include "engine/internal/plan_tuner.h"

#include <omp.h>
#include <unistd.h>

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

// On `threads` (the executor's) and, when more than one, on 1 thread too:
// the ISA table's guess first (what runs if the budget ends early), then
// the fused kernels at two tile sizes (a quarter and about half of a 1 MiB
// L2), the same on one thread (a second thread pays only if the work
// outweighs waking it and sharing the memory bus), then oneDNN's other
// layouts.
std::vector<PlanChoice> Candidates(int threads) {
  const ActivationLayout guess = ResolveLayout(ActivationLayout::kAuto);
  const PlanChoice fused_small{ActivationLayout::kFusedNchw, int64_t{128} << 10, threads};
  const PlanChoice fused_large{ActivationLayout::kFusedNchw, int64_t{512} << 10, threads};
  std::vector<PlanChoice> candidates = {{guess, 0, threads}, fused_small, fused_large};
  if (threads > 1) {
    for (PlanChoice one : {fused_small, fused_large, PlanChoice{guess, 0, threads}}) {
      one.threads = 1;
      candidates.push_back(one);
    }
  }
  for (ActivationLayout layout : {ActivationLayout::kNhwcDirect, ActivationLayout::kNhwc,
                                  ActivationLayout::kBlocked8, ActivationLayout::kBlocked16}) {
    if (layout != guess) candidates.push_back({layout, 0, threads});
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
  absl::flat_hash_map<std::string, PlanChoice> plan ABSL_GUARDED_BY(mu);
  // Keyed by ChoiceKey (which holds the threads) and batch size.
  absl::flat_hash_map<std::string, int64_t> micro_batch ABSL_GUARDED_BY(mu);
};

Choices& TheChoices() {
  static Choices* const choices = new Choices;  // never destroyed
  return *choices;
}

// What the fastest plan depends on: layer shapes, input shape and the
// threads the executor may use. Not the batch size: a sample's result must
// not depend on the batch it came in (each layout rounds differently), so
// all batch sizes of an image shape share the plan chosen on the first one
// seen.
std::string ChoiceKey(const ModelSpec& model, const Dims4& input) {
  std::string key = absl::StrCat(input.c, "x", input.h, "x", input.w, "|t", omp_get_max_threads());
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

// A candidate plan, built and run once, and its best timed run.
struct TimedPlan {
  std::unique_ptr<Plan> plan;
  PlanChoice choice;  // what it runs with (a fallback's layout, not the one asked for)
  absl::Duration best = absl::InfiniteDuration();
};

// The input timing runs read (zeros) and the output they write (the same
// work as any other values).
struct TimingData {
  TimingData(const ModelSpec& model, const Dims4& input)
      : in(static_cast<size_t>(Elements(input))),
        out(static_cast<size_t>(Elements(InferOutputShape(model, input).value()))),
        item{in.data(), out.data(), input.n} {}
  std::vector<float> in, out;
  BatchItem item;
};

// Builds and runs once each candidate while time is left before `deadline`
// (the first always); a candidate that falls back to a plan already built
// is dropped.
std::vector<TimedPlan> BuildCandidates(const ModelSpec& model, const Dims4& input,
                                       const FlopCount& flops, WeightCache& weights,
                                       const dnnl::engine& engine, dnnl::stream& stream,
                                       const TimingData& data, Arena& arena, absl::Time deadline) {
  std::vector<TimedPlan> candidates;
  for (const PlanChoice& choice : Candidates(omp_get_max_threads())) {
    if (!candidates.empty() && absl::Now() >= deadline) break;
    auto plan = std::make_unique<Plan>(model, input, flops, choice.layout, weights, engine, stream,
                                       choice.fused_tile_bytes, choice.threads);
    const PlanChoice effective = plan->choice();
    if (std::any_of(candidates.begin(), candidates.end(),
                    [&](const TimedPlan& c) { return c.choice == effective; })) {
      continue;
    }
    plan->Execute(absl::MakeConstSpan(&data.item, 1), stream, arena);  // boundaries, caches
    candidates.push_back(TimedPlan{std::move(plan), effective});
  }
  return candidates;
}

// Up to kTimedRuns rounds (the first always; none for a lone candidate)
// that interleave the candidates, so that a burst of load from other
// processes hits them alike; each timed run starts with cold caches (see
// CacheEvictor).
void TimeCandidates(std::vector<TimedPlan>& candidates, const TimingData& data,
                    dnnl::stream& stream, Arena& arena, absl::Time deadline) {
  if (candidates.size() < 2) return;
  CacheEvictor evictor;
  const absl::Span<const BatchItem> items(&data.item, 1);
  for (int round = 0; round < kTimedRuns; ++round) {
    if (round > 0 && absl::Now() >= deadline) break;
    for (TimedPlan& candidate : candidates) {
      evictor.Evict();
      const absl::Time t0 = absl::Now();
      candidate.plan->Execute(items, stream, arena);
      candidate.best = std::min(candidate.best, absl::Now() - t0);
    }
  }
}

TuneResult BuildTunedPlan(const ModelSpec& model, const Dims4& input, const FlopCount& flops,
                          WeightCache& weights, const dnnl::engine& engine, dnnl::stream& stream,
                          Arena& arena, absl::Duration budget) {
  const absl::Time start = absl::Now();
  const std::string key = ChoiceKey(model, input);
  TuneResult result;
  Choices& choices = TheChoices();
  auto find = [&]() -> std::optional<PlanChoice> {
    absl::MutexLock lock(&choices.mu);
    auto it = choices.plan.find(key);
    if (it == choices.plan.end()) return std::nullopt;
    return it->second;
  };
  std::optional<PlanChoice> known = find();
  // Not chosen yet: wait for any other tuning, then look again.
  std::optional<absl::MutexLock> tuning;
  if (!known) {
    tuning.emplace(&choices.tuning);
    known = find();
  }
  if (known) {
    result.plan = std::make_unique<Plan>(model, input, flops, known->layout, weights, engine,
                                         stream, known->fused_tile_bytes, known->threads);
    result.layout = known->layout;
    result.fused_tile_bytes = known->fused_tile_bytes;
    result.threads = known->threads;
    result.spent = absl::Now() - start;
    return result;
  }
  const TimingData data(model, input);
  std::vector<TimedPlan> candidates =
      BuildCandidates(model, input, flops, weights, engine, stream, data, arena, start + budget);
  TimeCandidates(candidates, data, stream, arena, start + budget);
  TimedPlan& best =
      *std::min_element(candidates.begin(), candidates.end(),
                        [](const TimedPlan& a, const TimedPlan& b) { return a.best < b.best; });
  result.candidates_timed = static_cast<int>(candidates.size());
  result.layout = best.choice.layout;
  result.fused_tile_bytes = best.choice.fused_tile_bytes;
  result.threads = best.choice.threads;
  result.plan = std::move(best.plan);
  {
    absl::MutexLock lock(&choices.mu);
    choices.plan.emplace(key, best.choice);
  }
  result.spent = absl::Now() - start;
  return result;
}

std::optional<PlanChoice> TunedChoice(const ModelSpec& model, const Dims4& input) {
  Choices& choices = TheChoices();
  absl::MutexLock lock(&choices.mu);
  auto it = choices.plan.find(ChoiceKey(model, input));
  if (it == choices.plan.end()) return std::nullopt;
  return it->second;
}

void ClearTunedChoices() {
  Choices& choices = TheChoices();
  absl::MutexLock lock(&choices.mu);
  choices.plan.clear();
  choices.micro_batch.clear();
}

MicroBatchChoice ChooseMicroBatch(const ModelSpec& model, const Dims4& input,
                                  absl::Span<const int64_t> candidates, absl::Duration budget,
                                  absl::FunctionRef<void(int64_t)> run) {
  const absl::Time start = absl::Now();
  const std::string key = absl::StrCat(ChoiceKey(model, input), "|n", input.n);
  Choices& choices = TheChoices();
  auto find = [&]() -> std::optional<int64_t> {
    absl::MutexLock lock(&choices.mu);
    auto it = choices.micro_batch.find(key);
    if (it == choices.micro_batch.end()) return std::nullopt;
    return it->second;
  };
  MicroBatchChoice result;
  if (std::optional<int64_t> known = find()) {
    result.micro_batch = *known;
    return result;
  }
  // The first run, untimed, also chooses the layout (BuildTunedPlan takes
  // the tuning lock itself, so it must be done before we take it).
  run(candidates.front());
  absl::MutexLock tuning(&choices.tuning);
  if (std::optional<int64_t> known = find()) {
    result.micro_batch = *known;
    result.spent = absl::Now() - start;
    return result;
  }
  struct Candidate {
    int64_t micro_batch;
    absl::Duration best = absl::InfiniteDuration();
  };
  std::vector<Candidate> timed;
  for (int64_t micro : candidates) {
    if (!timed.empty() && absl::Now() - start >= budget) break;
    if (micro != candidates.front()) run(micro);  // builds its plans
    timed.push_back(Candidate{micro});
  }
  for (int round = 0; round < kTimedRuns && timed.size() > 1; ++round) {
    if (round > 0 && absl::Now() - start >= budget) break;
    for (Candidate& candidate : timed) {  // interleaved and warm, as for layouts
      run(candidate.micro_batch);
      const absl::Time t0 = absl::Now();
      run(candidate.micro_batch);
      candidate.best = std::min(candidate.best, absl::Now() - t0);
    }
  }
  result.micro_batch =
      std::min_element(timed.begin(), timed.end(), [](const Candidate& a, const Candidate& b) {
        return a.best < b.best;
      })->micro_batch;
  result.candidates_timed = static_cast<int>(timed.size());
  {
    absl::MutexLock lock(&choices.mu);
    choices.micro_batch.emplace(key, result.micro_batch);
  }
  result.spent = absl::Now() - start;
  return result;
}

CacheEvictor::CacheEvictor() {
  long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (llc <= 0) llc = 32L << 20;
  buffer_.resize(std::min<size_t>(2 * static_cast<size_t>(llc), size_t{256} << 20));
}

void CacheEvictor::Evict() {
  for (size_t i = 0; i < buffer_.size(); i += 64) buffer_[i] = static_cast<char>(buffer_[i] + 1);
}

}  // namespace internal
}  // namespace sepconv
