#include "engine/internal/plan_tuner.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
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
  for (PlanChoice streamed : {fused_small, fused_large}) {
    streamed.fused_stream = true;
    candidates.push_back(streamed);
  }
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

// Timed rounds of layout candidates (see TimeRounds) and of
// micro-batches.
constexpr int kMinLayoutRounds = 3;
constexpr int kLayoutRounds = 5;
constexpr double kHopelessMargin = 2.0;
constexpr double kContenderMargin = 1.25;
constexpr int kTimedRuns = 3;

struct Choices {
  std::optional<PlanChoice> FindPlan(const std::string& key) ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    auto it = plan.find(key);
    if (it == plan.end()) return std::nullopt;
    return it->second;
  }
  std::optional<int64_t> FindMicroBatch(const std::string& key) ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    auto it = micro_batch.find(key);
    if (it == micro_batch.end()) return std::nullopt;
    return it->second;
  }

  // Held while a layout is being chosen: one shape is timed at a time in the
  // process (executors would skew each other's timings), and each key gets
  // one choice, so every executor of a model computes the same bits.
  absl::Mutex tuning;
  // Where new choices are kept (UseTuningCache), if anywhere.
  std::unique_ptr<TuningCache> file ABSL_GUARDED_BY(tuning);
  absl::Mutex mu;
  absl::flat_hash_map<std::string, PlanChoice> plan ABSL_GUARDED_BY(mu);
  // Keys of `plan` read from the tuning cache whose first plan is not built
  // yet (its build reports where the choice came from).
  absl::flat_hash_set<std::string> from_file ABSL_GUARDED_BY(mu);
  // Keyed by ChoiceKey (which holds the threads) and batch size. Only
  // micro-batches that ran are remembered, never a failed one.
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

// A candidate plan, built and run once, and its timed runs. The timing's
// choice is what the plan runs with (a fallback's layout, not the one asked
// for).
struct TimedPlan {
  std::unique_ptr<Plan> plan;
  CandidateTiming timing;
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
    auto plan = std::make_unique<Plan>(model, input, flops, choice, weights, engine, stream);
    const PlanChoice effective = plan->choice();
    if (std::any_of(candidates.begin(), candidates.end(),
                    [&](const TimedPlan& c) { return c.timing.choice == effective; })) {
      continue;
    }
    plan->Execute(absl::MakeConstSpan(&data.item, 1), stream, arena);  // boundaries, caches
    candidates.push_back(TimedPlan{std::move(plan), CandidateTiming{effective}});
  }
  return candidates;
}

// A candidate's time as the tuner compares it (see SpinCharge). Through the
// server on an AVX2 EPYC, 2 threads, 1x32-64x112, where the tuner had found
// the two within a few percent of each other: oneDNN's
// nChw8c served at 1.07-2.65 ms against 0.90-0.97 for the fused kernels
// (1x128-128x56: 1.23-2.05 against 1.39). Plans that win by more, as
// oneDNN's do on the MobileNet body and on 14x14 planes of 512 channels,
// are still chosen.
absl::Duration Charged(const CandidateTiming& c) { return c.best * SpinCharge(c.choice); }

bool Faster(const CandidateTiming& a, const CandidateTiming& b) { return Charged(a) < Charged(b); }

// Times `candidates` (see TimeRounds), each run after the caches were
// flushed (see CacheEvictor).
void TimeCandidates(std::vector<TimedPlan>& candidates, const TimingData& data,
                    dnnl::stream& stream, Arena& arena, absl::Time deadline) {
  if (candidates.size() < 2) return;
  CacheEvictor evictor;
  const absl::Span<const BatchItem> items(&data.item, 1);
  std::vector<CandidateTiming> timings;
  for (const TimedPlan& candidate : candidates) timings.push_back(candidate.timing);
  TimeRounds(
      absl::MakeSpan(timings),
      [&](size_t i) {
        evictor.Evict();
        const absl::Time t0 = absl::Now();
        candidates[i].plan->Execute(items, stream, arena);
        return absl::Now() - t0;
      },
      deadline);
  for (size_t i = 0; i < candidates.size(); ++i) candidates[i].timing = timings[i];
}

// The result of a tuning that chose `choice` (0 `candidates_timed`: a
// remembered choice) for `plan`, begun at `start`.
TuneResult TuneResultFor(std::unique_ptr<Plan> plan, const PlanChoice& choice, int candidates_timed,
                         absl::Time start) {
  TuneResult result;
  result.plan = std::move(plan);
  result.choice = choice;
  result.candidates_timed = candidates_timed;
  result.spent = absl::Now() - start;
  return result;
}

// The fastest of `candidates` (not empty) as a result, with its runner-up.
TuneResult ResultOfTiming(std::vector<TimedPlan>& candidates, absl::Time start) {
  std::sort(candidates.begin(), candidates.end(),
            [](const TimedPlan& a, const TimedPlan& b) { return Faster(a.timing, b.timing); });
  const CandidateTiming best = candidates.front().timing;
  TuneResult result = TuneResultFor(std::move(candidates.front().plan), best.choice,
                                    static_cast<int>(candidates.size()), start);
  result.rounds = best.runs;
  if (candidates.size() > 1 && best.best > absl::ZeroDuration()) {
    result.runner_up = candidates[1].timing.choice;
    result.runner_up_ratio = absl::FDivDuration(Charged(candidates[1].timing), Charged(best));
  }
  return result;
}

}  // namespace

double SpinCharge(const PlanChoice& choice) {
  return choice.layout != ActivationLayout::kFusedNchw && choice.threads > 1 ? kSpinCharge : 1.0;
}

void TimeRounds(absl::Span<CandidateTiming> candidates,
                absl::FunctionRef<absl::Duration(size_t)> run, absl::Time deadline) {
  if (candidates.size() < 2) return;
  run(0);  // untimed: the first run after the flush's buffer is made is slower
  for (int round = 0; round < kLayoutRounds; ++round) {
    if (round >= kMinLayoutRounds && absl::Now() >= deadline) break;
    const absl::Duration leader =
        Charged(*std::min_element(candidates.begin(), candidates.end(), Faster));
    const double margin = round < 2 ? kHopelessMargin : kContenderMargin;
    for (size_t i = 0; i < candidates.size(); ++i) {
      CandidateTiming& candidate = candidates[i];
      if (Charged(candidate) > leader * margin) continue;
      candidate.best = std::min(candidate.best, run(i));
      ++candidate.runs;
    }
  }
}

TuneResult BuildTunedPlan(const ModelSpec& model, const Dims4& input, const FlopCount& flops,
                          WeightCache& weights, const dnnl::engine& engine, dnnl::stream& stream,
                          Arena& arena, absl::Duration budget) {
  const absl::Time start = absl::Now();
  const std::string key = ChoiceKey(model, input);
  Choices& choices = TheChoices();
  std::optional<PlanChoice> known = choices.FindPlan(key);
  // Not chosen yet: wait for any other tuning, then look again.
  std::optional<absl::MutexLock> tuning;
  if (!known) {
    tuning.emplace(&choices.tuning);
    known = choices.FindPlan(key);
  }
  if (known) {
    auto plan = std::make_unique<Plan>(model, input, flops, *known, weights, engine, stream);
    TuneResult result = TuneResultFor(std::move(plan), *known, /*candidates_timed=*/0, start);
    absl::MutexLock lock(&choices.mu);
    result.from_tuning_cache = choices.from_file.erase(key) > 0;
    return result;
  }
  const TimingData data(model, input);
  std::vector<TimedPlan> candidates =
      BuildCandidates(model, input, flops, weights, engine, stream, data, arena, start + budget);
  TimeCandidates(candidates, data, stream, arena, start + budget);
  TuneResult result = ResultOfTiming(candidates, start);
  {
    absl::MutexLock lock(&choices.mu);
    choices.plan.emplace(key, result.choice);
  }
  if (choices.file != nullptr) result.tuning_cache_status = choices.file->Put(key, result.choice);
  return result;
}

absl::Status UseTuningCache(const std::string& path) {
  Choices& choices = TheChoices();
  absl::MutexLock tuning(&choices.tuning);
  if (path.empty()) {
    choices.file.reset();
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<TuningCache>> file = TuningCache::Open(path, MachineFingerprint());
  if (!file.ok()) return file.status();
  {
    absl::MutexLock lock(&choices.mu);
    for (const TuningCacheEntry& entry : (*file)->entries()) {
      if (choices.plan.emplace(entry.key, entry.choice).second) choices.from_file.insert(entry.key);
    }
  }
  choices.file = *std::move(file);
  return absl::OkStatus();
}

std::optional<PlanChoice> TunedChoice(const ModelSpec& model, const Dims4& input) {
  return TheChoices().FindPlan(ChoiceKey(model, input));
}

void ClearTunedChoices() {
  Choices& choices = TheChoices();
  absl::MutexLock lock(&choices.mu);
  choices.plan.clear();
  choices.from_file.clear();
  choices.micro_batch.clear();
}

namespace {

// The micro-batches that ran, each with its best timed run, and the runs
// that failed.
struct MicroBatchTrial {
  struct Ran {
    int64_t micro_batch;
    absl::Duration best = absl::InfiniteDuration();
  };
  void Failed(absl::Status status) {
    if (failed++ == 0) first_failure = std::move(status);
  }
  std::vector<Ran> ran;
  int failed = 0;
  absl::Status first_failure;
};

// Runs each candidate once (building its plans) while time is left before
// `deadline`, and always until one has run; `first` is what the first
// candidate's run (already done) returned. A candidate whose run fails is
// dropped.
MicroBatchTrial RunEachOnce(absl::Span<const int64_t> candidates, absl::Status first,
                            absl::Time deadline, absl::FunctionRef<absl::Status(int64_t)> run) {
  MicroBatchTrial trial;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!trial.ran.empty() && absl::Now() >= deadline) break;
    absl::Status status = i == 0 ? std::move(first) : run(candidates[i]);
    if (status.ok()) {
      trial.ran.push_back({candidates[i]});
    } else {
      trial.Failed(std::move(status));
    }
  }
  return trial;
}

// Up to kTimedRuns rounds (the first always; none for a lone candidate)
// that interleave the candidates, each run warm (once untimed, then timed),
// as for layouts. A candidate whose run fails is dropped.
void TimeMicroBatches(MicroBatchTrial& trial, absl::Time deadline,
                      absl::FunctionRef<absl::Status(int64_t)> run) {
  for (int round = 0; round < kTimedRuns && trial.ran.size() > 1; ++round) {
    if (round > 0 && absl::Now() >= deadline) break;
    for (auto it = trial.ran.begin(); it != trial.ran.end();) {
      absl::Status status = run(it->micro_batch);
      const absl::Time t0 = absl::Now();
      if (status.ok()) status = run(it->micro_batch);
      if (!status.ok()) {
        trial.Failed(std::move(status));
        it = trial.ran.erase(it);
        continue;
      }
      it->best = std::min(it->best, absl::Now() - t0);
      ++it;
    }
  }
}

// The fastest candidate that ran, or (none ran) the first failure.
absl::StatusOr<MicroBatchChoice> ChoiceFrom(const MicroBatchTrial& trial) {
  if (trial.ran.empty()) {
    return absl::Status(trial.first_failure.code(),
                        absl::StrCat("every micro-batch candidate failed, the first with: ",
                                     trial.first_failure.message()));
  }
  MicroBatchChoice choice;
  choice.micro_batch =
      std::min_element(trial.ran.begin(), trial.ran.end(),
                       [](const MicroBatchTrial::Ran& a, const MicroBatchTrial::Ran& b) {
                         return a.best < b.best;
                       })
          ->micro_batch;
  choice.candidates_timed = static_cast<int>(trial.ran.size());
  choice.candidates_failed = trial.failed;
  choice.first_failure = trial.first_failure;
  return choice;
}

}  // namespace

absl::StatusOr<MicroBatchChoice> ChooseMicroBatch(const ModelSpec& model, const Dims4& input,
                                                  absl::Span<const int64_t> candidates,
                                                  absl::Duration budget,
                                                  absl::FunctionRef<absl::Status(int64_t)> run) {
  const absl::Time start = absl::Now();
  const std::string key = absl::StrCat(ChoiceKey(model, input), "|n", input.n);
  Choices& choices = TheChoices();
  MicroBatchChoice remembered;
  if (std::optional<int64_t> known = choices.FindMicroBatch(key)) {
    remembered.micro_batch = *known;
    return remembered;
  }
  // The first run, untimed, also chooses the layout (BuildTunedPlan takes
  // the tuning lock itself, so it must be done before we take it).
  absl::Status first = run(candidates.front());
  absl::MutexLock tuning(&choices.tuning);
  if (std::optional<int64_t> known = choices.FindMicroBatch(key)) {
    remembered.micro_batch = *known;
    remembered.spent = absl::Now() - start;
    return remembered;
  }
  MicroBatchTrial trial = RunEachOnce(candidates, std::move(first), start + budget, run);
  TimeMicroBatches(trial, start + budget, run);
  absl::StatusOr<MicroBatchChoice> choice = ChoiceFrom(trial);
  if (!choice.ok()) return choice.status();  // nothing remembered: the next batch tries again
  {
    absl::MutexLock lock(&choices.mu);
    choices.micro_batch.emplace(key, choice->micro_batch);
  }
  choice->spent = absl::Now() - start;
  return choice;
}

namespace {

// The largest cache of CPU 0 as the kernel describes it (sysfs: what lscpu
// shows), else as glibc's sysconf reads CPUID, else 32 MiB. The kernel's
// figure comes first: in a VM CPUID can report the host's cache, and a
// 2-vCPU EPYC guest whose kernel says 32 MiB of L3 got 256 MiB from
// sysconf, making each eviction 22 ms instead of 5 and leaving the tuner's
// budget one round.
size_t LastLevelCacheBytes() {
  size_t largest = 0;
  for (int index = 0; index < 16; ++index) {
    std::ifstream file(absl::StrCat("/sys/devices/system/cpu/cpu0/cache/index", index, "/size"));
    std::string text;
    if (!(file >> text)) break;
    size_t scale = 1;
    switch (text.empty() ? '\0' : text.back()) {
      case 'K':
        scale = size_t{1} << 10;
        break;
      case 'M':
        scale = size_t{1} << 20;
        break;
      case 'G':
        scale = size_t{1} << 30;
        break;
    }
    if (scale != 1) text.pop_back();
    uint64_t value = 0;
    if (absl::SimpleAtoi(text, &value)) largest = std::max<size_t>(largest, value * scale);
  }
  if (largest > 0) return largest;
  for (int name : {_SC_LEVEL3_CACHE_SIZE, _SC_LEVEL2_CACHE_SIZE}) {
    const long bytes = sysconf(name);
    if (bytes > 0) return static_cast<size_t>(bytes);
  }
  return size_t{32} << 20;
}

}  // namespace

CacheEvictor::CacheEvictor() {
  static const size_t bytes = std::min<size_t>(2 * LastLevelCacheBytes(), size_t{256} << 20);
  data_ = buffer_.Reserve(bytes);
}

void CacheEvictor::Evict() {
  for (size_t i = 0; i < buffer_.capacity(); i += 64) data_[i] = static_cast<char>(data_[i] + 1);
}

}  // namespace internal
}  // namespace sepconv
