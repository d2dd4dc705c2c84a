#ifndef SEPCONV_ENGINE_INTERNAL_ONEDNN_PLAN_H_
#define SEPCONV_ENGINE_INTERNAL_ONEDNN_PLAN_H_

// oneDNN internals of the Executor: the per-input-shape execution plan
// (Plan) and the knobs that shape it. Both may throw dnnl::error and
// std::bad_alloc; the Executor catches them. Not thread-safe: each belongs
// to one Executor.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "engine/executor.h"
#include "engine/flops.h"
#include "engine/internal/arena.h"
#include "engine/internal/fused_plan.h"
#include "engine/internal/onednn_weights.h"
#include "engine/model_spec.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace sepconv {

// How activations are laid out inside a plan (NCHW only at the boundary).
enum class ActivationLayout {
  kAuto,       // the fastest measured on this CPU (see ResolveLayout)
  kNhwc,       // channels last
  kBlocked8,   // nChw8c
  kBlocked16,  // nChw16c
  // nhwc, and the last pointwise conv runs as a matmul that writes NCHW
  // straight into each item's output (no output reorder).
  kNhwcDirect,
  // NCHW throughout, each layer's depthwise and pointwise convs fused on
  // row tiles by this project's kernels (engine/internal/fused_plan.h); nhwc
  // on a CPU below AVX2.
  kFusedNchw,
};

// What the tuner chooses for a plan: the layout, for kFusedNchw the size of
// a tile's depthwise output (0: FusedPlan's default) and whether the output
// is streamed past the caches (FusedLayerView::stream_output), and the
// threads it runs on (0: OpenMP's current maximum, i.e. the executor's).
struct PlanChoice {
  // Implicit from a layout: a plan in that layout with the defaults.
  PlanChoice(ActivationLayout layout = ActivationLayout::kAuto,  // NOLINT
             int64_t fused_tile_bytes = 0, int threads = 0, bool fused_stream = false)
      : layout(layout),
        fused_tile_bytes(fused_tile_bytes),
        threads(threads),
        fused_stream(fused_stream) {}

  ActivationLayout layout;
  int64_t fused_tile_bytes;
  int threads;
  bool fused_stream;

  friend bool operator==(const PlanChoice& a, const PlanChoice& b) {
    return a.layout == b.layout && a.fused_tile_bytes == b.fused_tile_bytes &&
           a.threads == b.threads && a.fused_stream == b.fused_stream;
  }
};

// kAuto resolved for the CPU oneDNN runs on.
ActivationLayout ResolveLayout(ActivationLayout layout);

// The ISA oneDNN dispatches to (ONEDNN_MAX_CPU_ISA counts), e.g. "avx2",
// "avx512_core_bf16".
std::string EffectiveIsaName();

// "auto", "nhwc", "nChw8c", "nChw16c", "nhwc_direct" or "fused".
const char* LayoutName(ActivationLayout layout);

// A choice as logs and benchmarks show it, e.g. "nChw8c on 2 thread(s)",
// "fused 128K streamed on 1 thread(s)"; threads 0 shows as "all threads".
std::string Describe(const PlanChoice& choice);

// Internal knobs of the executor, pinned by tests and benchmarks.
struct OneDnnTuning {
  ActivationLayout layout = ActivationLayout::kAuto;
  // Samples per execution of the primitives: a larger batch runs as a
  // sequence of micro-batches so that one micro-batch's activations stay in
  // cache instead of streaming every layer through DRAM. 0 = automatic
  // (MicroBatchSize, then timed; see ExecutorOptions.tune_budget_ms).
  int64_t micro_batch = 0;
  // Each plan in its own arena instead of one per executor (how plans held
  // their buffers before; for the memory benchmark).
  bool arena_per_plan = false;
};

// The micro-batch for a batch of `n` samples of shape `chw`: `requested`
// if positive, else as many samples as fit kMicroBatchBytes of
// activations (at least 1), never more than `n`. `model` must be valid for
// `chw`.
inline constexpr int64_t kMicroBatchBytes = int64_t{16} << 20;
int64_t MicroBatchSize(const ModelSpec& model, const Dims4& chw, int64_t n, int64_t requested);

// Everything to run the model on one input shape [n, c, h, w]: primitives
// created once and boundary reorders per item size. Its buffers (a layer's
// input/output, its depthwise output, one shared scratchpad) live in the
// executor's Arena, bound at Execute: ArenaBytes() of it. A layer with depth multiplier > 1 runs in
// parts (see WeightCache) so that every convolution has a JIT kernel. The layout asked for is a
// preference: if oneDNN has no JIT kernel for some layer in it (it would fall back to a reference
// kernel, 100x slower), the plan runs in nhwc. kFusedNchw runs a FusedPlan instead of oneDNN's
// primitives. With kNhwcDirect, a last layer in parts ends as with
// kNhwc (output reorder).
class Plan {
 public:
  Plan(const ModelSpec& model, const Dims4& input, const FlopCount& flops, const PlanChoice& choice,
       WeightCache& weights, const dnnl::engine& engine, dnnl::stream& stream);
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  // Runs `items` (whose samples sum to the plan's n; validated by the
  // caller) in `arena` (grown to ArenaBytes() if smaller; its contents are
  // dead between calls) and waits for the result.
  void Execute(absl::Span<const BatchItem> items, dnnl::stream& stream, internal::Arena& arena);

  // The working memory Execute needs from its arena.
  size_t ArenaBytes() const { return arena_bytes_; }

  const FlopCount& flops() const { return flops_; }
  // The layout the plan runs in (kNhwc when the one asked for fell back).
  ActivationLayout layout() const;
  // The layout, (fused) tile size and threads it runs with.
  PlanChoice choice() const;

  // The oneDNN implementation of every primitive the plan has made so far
  // (e.g. "jit:uni", "brgconv_1x1:avx512_core"; boundary reorders and direct
  // outputs appear once executed), in execution order. Tests check that
  // none is oneDNN's slow reference ("ref:...").
  std::vector<std::string> ImplNames() const;

  // Makes the boundary reorders (or direct output) a run of one item of
  // `samples` samples uses, as its first Execute would: ImplNames then
  // lists them before any run (a plan built from the tuning cache is
  // reported before it runs). Nothing for the fused kernels.
  void MakeBoundaries(int64_t samples);

 private:
  struct Step {
    dnnl::primitive primitive;
    std::unordered_map<int, dnnl::memory> args;
    std::string impl;
  };
  // Reorders between a user's NCHW tensor of `samples` samples and its slice
  // of the internal buffer.
  struct Boundary {
    dnnl::memory user, internal;
    dnnl::reorder reorder;
    std::string impl;
  };
  struct Buffer {
    std::unique_ptr<void, void (*)(void*)> data{nullptr, nullptr};
    size_t bytes = 0;
  };
  // The last pointwise conv as a matmul for `samples` samples: weights
  // [out, mid] times the nhwc mid slice seen as [samples, mid, h*w], into
  // [samples, out, h*w], i.e. NCHW.
  struct DirectOutput {
    dnnl::matmul primitive;
    dnnl::memory mid, dst;
    std::unordered_map<int, dnnl::memory> args;
    Buffer own_scratchpad;  // only if it needs more than the shared one
    std::string impl;
  };
  // Sets the last layer's pointwise parameters for direct output; returns
  // the scratchpad the whole batch's matmul needs.
  size_t PrepareDirectOutput(const ModelSpec& model, const WeightCache& weights);
  // Bytes of one sample of `shape` in the plan's layout.
  size_t SampleBytes(const Dims4& shape) const;
  // Places the activations (layer input and output share them: the input
  // is dead once the depthwise convs have run), the depthwise output and
  // the scratchpad in the arena.
  void LayOutArena(size_t act_bytes, size_t mid_bytes, size_t scratch_bytes);
  // Appends layer `layer`'s depthwise convs (`depthwise`), one per part
  // (`pds`), each into its part's slice (`part_bytes` apart) of the
  // depthwise output; or its pointwise convs, each from its part's slice,
  // all into the layer's output (the first with the bias; see WeightCache).
  void AddConvSteps(bool depthwise, const LayerSpec& spec, size_t layer,
                    absl::Span<const dnnl::convolution_forward::primitive_desc> pds,
                    size_t part_bytes, WeightCache& weights, dnnl::stream& stream);
  dnnl::matmul::primitive_desc DirectOutputPd(int64_t samples) const;
  DirectOutput& DirectOutputFor(int64_t samples);
  static Buffer Allocate(size_t bytes);
  Boundary& InputBoundary(int64_t samples);
  Boundary& OutputBoundary(int64_t samples);
  Boundary MakeBoundary(const dnnl::memory::desc& user, const dnnl::memory::desc& internal,
                        bool to_internal);

  // Points every buffer argument at its offset in the arena at `base`.
  void Bind(char* base);
  // A memory of `desc` whose data lives at `offset` in the arena (bound at
  // Execute).
  dnnl::memory ArenaMemory(const dnnl::memory::desc& desc, size_t offset);

  dnnl::engine engine_;
  // Threads the primitives are built and run with (OpenMP's maximum is set
  // to it around both: some oneDNN kernels split their work at creation).
  int threads_;
  FlopCount flops_;
  dnnl::memory::format_tag tag_;
  Dims4 input_, output_;
  size_t input_sample_bytes_ = 0, output_sample_bytes_ = 0;
  // Arena layout: activations at 0, then the depthwise output, then the
  // scratchpad, each 64-byte aligned.
  size_t mid_offset_ = 0, scratch_offset_ = 0, scratch_bytes_ = 0, arena_bytes_ = 0;
  std::vector<std::pair<dnnl::memory, size_t>> bindings_;  // memory, offset
  char* bound_ = nullptr;                                  // arena base bound
  dnnl::memory scratchpad_memory_;
  std::vector<Step> steps_;
  std::map<int64_t, Boundary> inputs_, outputs_;
  // Direct output (kNhwcDirect): the last layer's pointwise parameters.
  bool direct_output_ = false;
  int64_t last_mid_channels_ = 0;
  Activation last_activation_ = Activation::kNone;
  dnnl::memory last_weights_, last_bias_;
  std::map<int64_t, DirectOutput> direct_outputs_;
  // kFusedNchw: the fused plan runs instead of every oneDNN step.
  std::unique_ptr<internal::FusedPlan> fused_;
};

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_ONEDNN_PLAN_H_
