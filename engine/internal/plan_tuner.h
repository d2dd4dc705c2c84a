#ifndef SEPCONV_ENGINE_INTERNAL_PLAN_TUNER_H_
#define SEPCONV_ENGINE_INTERNAL_PLAN_TUNER_H_

// Chooses how a Plan runs by measurement: builds the plan for one input
// shape in each candidate (this project's fused NCHW kernels at two tile
// sizes; oneDNN's primitives in nhwc with the direct NCHW matmul output,
// nhwc, nChw8c, nChw16c), times a few runs of each on this CPU, each
// starting with cold caches as a served request does, and keeps the
// fastest (oneDNN's plans on more than one thread charged for the CPU
// OpenMP's spinning threads keep after them, which a timed run cannot see:
// SpinCharge); on executors of more than one thread the fused and the
// ISA's layout are also timed on one thread, so the thread count too is
// measured, not assumed. The choice is remembered process-wide per layer shapes,
// image shape [c, h, w] and the executor's threads (not the weights, not the
// batch size: a sample's
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
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/flops.h"
#include "engine/internal/arena.h"
#include "engine/internal/onednn_plan.h"
#include "engine/internal/onednn_weights.h"
#include "engine/internal/tuning_cache.h"
#include "engine/model_spec.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace sepconv {
namespace internal {

// Pushes this process's data out of the CPU caches, as a server's network
// traffic and other processes do between two requests: a run timed after
// Evict starts as a served request does, with its weights, buffers and input
// in memory, not in cache. (Timed warm, back to back, layouts that move more
// data between primitives win by up to 1.6x what they lose in the server:
// 1x32-64x112 on a Zen 5, nChw16c 0.55 ms warm and 0.78 ms cold, fused 0.46
// and 0.50.) Evict writes a buffer of twice the last-level cache (at most
// 256 MiB), held as long as the evictor, in huge pages (an Arena): on a
// 2-vCPU Zen 5 guest, making 256 MiB of 4 KiB pages took 0.75-0.96 s of
// page faults, most of each tuning's time, and huge pages 22 ms.
class CacheEvictor {
 public:
  CacheEvictor();
  void Evict();

 private:
  Arena buffer_;
  char* data_ = nullptr;  // buffer_'s
};

// What the tuner multiplies a candidate's time by before comparing it:
// kSpinCharge (1.15) for oneDNN's plans on more than one thread, 1 for the
// others. libgomp's idle threads spin about 13 ms after a parallel region,
// longer than a server's requests are apart at one client, and hold a CPU
// that the server's transport needs; the fused kernels' helpers sleep after
// some microseconds.
inline constexpr double kSpinCharge = 1.15;
double SpinCharge(const PlanChoice& choice);

// One candidate's runs in the tuner's timed rounds.
struct CandidateTiming {
  PlanChoice choice;
  absl::Duration best = absl::InfiniteDuration();  // its fastest timed run
  int runs = 0;                                    // timed
};

// The tuner's timed rounds (BuildTunedPlan's; here for tests): `run(i)`
// runs candidate i once, after the caches were flushed, and returns its
// time. kMinLayoutRounds (3) to kLayoutRounds (5) rounds, more while time is
// left before `deadline` (none for a lone candidate), interleave the
// candidates, so that a burst of load from other processes hits them alike.
// Later rounds run only the candidates that can still win, so they cost
// little and a close call rests on more than one run each: after one run
// each, those over twice the leader's best (charged, see SpinCharge) drop
// out (fused streamed stores took 10-12 ms against 0.7-1.1 at 1x32-64x112 on
// an AVX2 EPYC); after two, those over 1.25x. (Building the MobileNet body's
// candidates took its whole 300 ms budget there: one round each, and the two
// best 1.04-1.14x apart.)
// Candidate 0 runs once untimed first: the first run after the flush's
// buffer is made is slower than the next. On a 2-vCPU Zen 5 guest, after
// 256 MiB of 4 KiB pages took 0.75-0.96 s of page faults, it took 3.4-5.1
// ms against 0.46-0.74 for the same plan's next two, and made the first
// candidate (the ISA's guess) look hopeless; in huge pages (now), 0.50-0.76
// against 0.42-0.46.
void TimeRounds(absl::Span<CandidateTiming> candidates,
                absl::FunctionRef<absl::Duration(size_t)> run, absl::Time deadline);

struct TuneResult {
  std::unique_ptr<Plan> plan;
  PlanChoice choice;         // the one chosen (kAuto resolved), as plan->choice()
  int candidates_timed = 0;  // 0: the choice was cached
  int rounds = 0;            // timed rounds the leader ran in
  // The second fastest and its best time over the chosen one's (>= 1; each
  // as charged, see above), when more than one candidate was timed: how
  // close the call was.
  std::optional<PlanChoice> runner_up;
  double runner_up_ratio = 0;
  absl::Duration spent;  // building and timing
  // The choice came from the tuning cache's file and this is its first plan
  // in the process (UseTuningCache; candidates_timed is 0).
  bool from_tuning_cache = false;
  // Whether a new choice was written to the tuning cache (OK without one).
  absl::Status tuning_cache_status;
};

// The plan for `input` in the fastest layout. Candidates are built and run
// once while `budget` lasts (the first always), then timed in 3 to 5
// interleaved rounds (more than 3 while the budget lasts; none for a lone
// candidate; after the first, only the candidates still close to the
// leader), each timed run after the caches were flushed (a write over twice
// the last-level cache, allocated for the tuning), the best run of each
// kept, so tuning one shape costs about budget + three rounds, the last two
// of the contenders only. Timing runs use `arena` (the caller's executor's).
TuneResult BuildTunedPlan(const ModelSpec& model, const Dims4& input, const FlopCount& flops,
                          WeightCache& weights, const dnnl::engine& engine, dnnl::stream& stream,
                          Arena& arena, absl::Duration budget);

struct MicroBatchChoice {
  int64_t micro_batch = 0;
  int candidates_timed = 0;    // that ran (0: the choice was cached)
  int candidates_failed = 0;   // whose run failed (never chosen)
  absl::Status first_failure;  // the first such run's
  absl::Duration spent;
};

// The fastest micro-batch (samples per plan execution) for a batch of
// `input.n` samples, among `candidates` (the first is the default, what runs
// if the budget ends early). `run(m)` runs the whole batch once in
// micro-batches of m (building the plans it needs on its first call) and
// says whether it did. Each candidate is run once untimed, then up to 3
// timed rounds interleave them (warm, as for layouts), the best of each
// kept, within `budget` (the first candidate is always run; none is timed
// when it is the only one). A candidate whose run fails is dropped: never
// chosen, never remembered, counted in `candidates_failed`; while none has
// run, the next is tried whatever the budget. If every run fails, returns
// the first failure (its code, with context) and remembers nothing, so the
// next call tries again. A choice is remembered process-wide per ChoiceKey,
// batch size and OpenMP thread count; a remembered choice calls no `run`.
// Thread-safe as BuildTunedPlan (timings are serialized with it). An
// exception from `run` propagates, remembering nothing.
absl::StatusOr<MicroBatchChoice> ChooseMicroBatch(const ModelSpec& model, const Dims4& input,
                                                  absl::Span<const int64_t> candidates,
                                                  absl::Duration budget,
                                                  absl::FunctionRef<absl::Status(int64_t)> run);

// Keeps every new choice in the tuning cache at `path` (see
// engine/internal/tuning_cache.h) and takes the choices it holds for this
// machine as if tuned in this process (a key chosen already keeps its
// choice); "" stops keeping them. Errors as TuningCache::Open's. Thread-safe.
absl::Status UseTuningCache(const std::string& path);

// The choice remembered for `input`'s key, if it was tuned (benchmarks
// label their rows with it).
std::optional<PlanChoice> TunedChoice(const ModelSpec& model, const Dims4& input);

// Forgets every remembered choice (tests and benchmarks that measure tuning).
void ClearTunedChoices();

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_PLAN_TUNER_H_
