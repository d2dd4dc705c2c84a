#ifndef SEPCONV_ENGINE_EXECUTOR_H_
#define SEPCONV_ENGINE_EXECUTOR_H_

// Runs a ModelSpec on oneDNN. Primitives are built once per input shape
// and reused; every shape's intermediate buffers live in one grow-only
// buffer per executor; weights are reordered once, at Create.
// Between layers activations stay in the layout the plan chose by timing:
// blocked or channels-last for oneDNN's primitives, NCHW throughout for the
// fused depthwise-pointwise kernels.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/flops.h"
#include "engine/model_spec.h"

namespace sepconv {

// What the tuner chose for a new input shape (see tune_budget_ms).
struct PlanReport {
  Dims4 input;                       // full NCHW, n as the request brought it
  std::vector<std::string> kernels;  // per layer, e.g. "fused_nchw:avx2 (...)", "jit_1x1:avx2"
  int threads = 0;                   // intra-op threads the plan runs on
  int candidates_timed = 0;
  int rounds = 0;  // timed runs of the chosen plan
  // The second fastest candidate (e.g. "nChw8c on 2 thread(s)", empty when
  // only one was timed) and its best time over the chosen one's (oneDNN's
  // plans on more than one thread charged for OpenMP's spinning threads;
  // see SpinCharge in engine/internal/plan_tuner.h).
  std::string runner_up;
  double runner_up_ratio = 0;
  absl::Duration spent;  // building and timing the candidates
  // The choice came from the tuning cache (UseTuningCache), timed by an
  // earlier process: nothing was timed (candidates_timed is 0).
  bool from_tuning_cache = false;
  // Why a new choice could not be written to the tuning cache (OK when it
  // was, or when there is none); the choice is used all the same.
  absl::Status tuning_cache_status;
};

struct ExecutorOptions {
  // Intra-op (OpenMP) threads used by Run; 0 keeps the OpenMP default.
  int threads = 0;
  // Plans (primitives, per input shape) kept; the least recently used is
  // dropped beyond this many, or when the working memory the kept plans
  // need (activations, depthwise output, scratchpad; all run in one
  // grow-only buffer of the executor, as large as the largest kept plan
  // needs) adds up to more than max_cached_plan_bytes. The plan just used
  // is always kept.
  int max_cached_shapes = 64;
  int64_t max_cached_plan_bytes = int64_t{512} << 20;
  // Time allowed for choosing a new input shape's internal layout, and a
  // new batch size's micro-batch (samples per execution, for batches whose
  // activations are too large to run whole; see MicroBatchSize), by timing the candidates on this
  // CPU (see engine/internal/plan_tuner.h); the choices are remembered process-wide per layer
  // shapes, input shape (and batch size and thread count for the micro-batch), so each is tuned
  // once. 0 times one layout only and takes the size-based micro-batch.
  int tune_budget_ms = 300;
  // Called, on the thread that runs the executor, after a shape's plan was
  // chosen by timing, or built from the tuning cache's choice the first time
  // in the process (not for a choice remembered from an earlier timing in
  // the process): servers log it, so the kernels serving each shape are
  // known.
  std::function<void(const PlanReport&)> on_plan_tuned = nullptr;
  // Input shapes (full NCHW) Create warms before returning (see Warm): a
  // shape the model rejects fails Create.
  std::vector<Dims4> warm_shapes = {};
};

// Keeps the plans the engine chooses by timing (tune_budget_ms above) in the
// file at `path`, one line per input shape and kind of machine, and builds
// the shapes the file already holds for this kind of machine (the same CPU
// model, oneDNN ISA and version, number of usable CPUs and engine version)
// as chosen there, without timing them: restarts and replicas then start
// faster and serve each shape with one plan, hence the same bits. The file
// is created on the first new choice; a folder it cannot be written in, an
// unreadable file or a malformed line is an error here. Process-wide; call
// it before creating executors (a shape chosen already in this process
// keeps its choice). "" stops keeping choices. Thread-safe.
absl::Status UseTuningCache(const std::string& path);

// One caller's part of a batch: `samples` NCHW samples of shape [C, H, W]
// read from `input` and written to `output` (both dense, row-major fp32).
struct BatchItem {
  const float* input = nullptr;
  float* output = nullptr;
  int64_t samples = 0;
};

// Not thread-safe: give each worker thread its own Executor (they may share
// one ModelSpec). Never throws; oneDNN errors come back as absl::Status.
class Executor {
 public:
  // Then warms options.warm_shapes.
  static absl::StatusOr<std::unique_ptr<Executor>> Create(std::shared_ptr<const ModelSpec> model,
                                                          ExecutorOptions options = {});
  virtual ~Executor() = default;

  // Runs the model once on the concatenation of `items` along N; each item's
  // output receives exactly its own samples. `chw` gives C, H and W (its n
  // is ignored). Returns the FLOPs of the whole batch.
  virtual absl::StatusOr<FlopCount> Run(const Dims4& chw, absl::Span<const BatchItem> items) = 0;

  // Convenience for one dense NCHW tensor.
  absl::StatusOr<FlopCount> Run(const Dims4& input_dims, const float* input, float* output) {
    BatchItem item{input, output, input_dims.n};
    return Run(input_dims, absl::MakeConstSpan(&item, 1));
  }

  // Builds (and tunes) the plans for each of `shapes` (full NCHW input
  // dims; n is the batch size a request brings) by running the model once on
  // zeros, so that a later Run of that shape as one batch item pays no plan
  // creation. Errors as Run's (e.g. a shape the model rejects).
  absl::Status Warm(absl::Span<const Dims4> shapes);

  virtual const ModelSpec& model() const = 0;

  // The shapes Create warmed (ExecutorOptions.warm_shapes). A thread that
  // will run requests warms them again itself before its first one (see
  // Warm): the plans are built by then, but the thread's own engine state
  // (the fused kernels' helper threads, OpenMP's team, its allocator arena)
  // is made on its first run.
  virtual absl::Span<const Dims4> warm_shapes() const { return {}; }

 protected:
  Executor() = default;
};

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_EXECUTOR_H_
