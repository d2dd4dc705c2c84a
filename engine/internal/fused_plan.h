#ifndef SEPCONV_ENGINE_INTERNAL_FUSED_PLAN_H_
#define SEPCONV_ENGINE_INTERNAL_FUSED_PLAN_H_

// The fused execution of a model on one input shape (ActivationLayout
// kFusedNchw): every layer runs as tiles of output rows through this
// project's fused depthwise+pointwise kernels (engine/internal/fused_kernels.h),
// NCHW throughout, so nothing is reordered at the boundary: the first layer
// reads the callers' inputs and the last writes their outputs. The tiles of
// a layer are shared by the calling thread and its helpers (TilePool, not
// OpenMP); layers run one after another, their activations between them in
// the arena. Not thread-safe: belongs to
// one Plan.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "engine/executor.h"
#include "engine/internal/fused_kernels.h"
#include "engine/model_spec.h"

namespace sepconv {
namespace internal {

// One layer's weights in the form the fused kernels take, beside the
// model's own depthwise weights (used as they are): the depthwise bias
// (zeros without one), the pointwise weights packed for blocks of `mr`
// output channels (FusedLayerView::pw_packed) and the pointwise bias padded
// to whole blocks.
struct FusedLayerWeights {
  std::vector<float> dw_bias, pw_packed, pw_bias;
};

// Every layer's, for kernels with blocks of `mr` output channels.
std::vector<FusedLayerWeights> PackFusedWeights(const ModelSpec& model, int mr);

class FusedPlan {
 public:
  // The kernels for the ISA oneDNN dispatches to (ONEDNN_MAX_CPU_ISA caps
  // both), or nullptr below AVX2: then there is no fused plan.
  static const FusedKernels* KernelsForThisCpu();

  // The default tile: its depthwise output near this many bytes.
  static constexpr int64_t kDefaultTileBytes = int64_t{192} << 10;

  // `input` must be valid for `model`; `weights` are
  // PackFusedWeights(model, kernels.mr); both must outlive the plan (an
  // executor's plans share one packing). `threads` share each layer's tiles,
  // each tile's depthwise output is kept near `tile_bytes` (0: the default)
  // so that it stays in the core's cache.
  // With `stream_output` the last layer writes the output past the caches
  // (FusedLayerView::stream_output).
  FusedPlan(const ModelSpec& model, const Dims4& input, const FusedKernels& kernels,
            const std::vector<FusedLayerWeights>& weights, int threads, int64_t tile_bytes = 0,
            bool stream_output = false);
  FusedPlan(const FusedPlan&) = delete;
  FusedPlan& operator=(const FusedPlan&) = delete;

  // Working memory Execute needs: every thread's tile scratch, then two
  // activation buffers when there is more than one layer.
  size_t ArenaBytes() const { return arena_bytes_; }

  // Runs `items` (whose samples sum to the plan's n) using `arena`
  // (ArenaBytes(), 64-byte aligned).
  void Execute(absl::Span<const BatchItem> items, char* arena);

  int64_t tile_bytes() const { return tile_bytes_; }
  bool stream_output() const { return layers_.back().view.stream_output; }

  // "fused_nchw:<isa>" per layer, with its tile.
  std::vector<std::string> ImplNames() const;

 private:
  struct LayerData {
    FusedLayerView view;
    // A sample's plane is `blocks` pointwise blocks of pixels, shared by
    // `tiles` tiles as evenly as whole blocks allow (their sizes differ by
    // one block at most, so that the threads finish together).
    int64_t blocks = 1, tiles = 1;
  };
  // The largest tile's pixels.
  int64_t TilePixels(const LayerData& layer) const;
  // A layer's view and tiles; grows scratch_floats_ to what it needs.
  LayerData Prepare(const Layer& layer, const FusedLayerWeights& weights, const Dims4& in,
                    const Dims4& out);

  const FusedKernels& kernels_;
  const int threads_;
  const int64_t tile_bytes_;
  Dims4 input_;
  std::vector<LayerData> layers_;
  std::vector<Dims4> shapes_;  // each layer's input, then the output
  size_t scratch_floats_ = 0;  // per thread
  size_t act_offset_ = 0, act_bytes_ = 0, arena_bytes_ = 0;
  std::vector<const float*> inputs_;  // per sample, reused by Execute
  std::vector<float*> outputs_;
};

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_FUSED_PLAN_H_
