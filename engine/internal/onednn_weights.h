#ifndef SEPCONV_ENGINE_INTERNAL_ONEDNN_WEIGHTS_H_
#define SEPCONV_ENGINE_INTERNAL_ONEDNN_WEIGHTS_H_

// A model's weights as oneDNN memories, reordered once per layout asked for.
// May throw dnnl::error and std::bad_alloc (the Executor catches them). Not
// thread-safe: each belongs to one Executor.

#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "engine/internal/fused_plan.h"
#include "engine/model_spec.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace sepconv {

// The model's weights as oneDNN memories: plain (PyTorch layout) views of the
// ModelSpec, plus one reordered copy per layout a primitive asked for,
// made on first request and kept.
//
// A layer runs as `Parts(layer)` depthwise+pointwise pairs. With depth
// multiplier 1 that is one part, the layer itself. With depth multiplier
// dm > 1 (which oneDNN's JIT depthwise kernels do not handle) it is dm parts:
// part j is a depthwise conv with groups = in_channels whose channel c is the
// layer's mid channel c * dm + j (weights and bias), and a pointwise conv
// over those in_channels inputs, i.e. the pointwise columns c * dm + j. The
// parts' pointwise outputs summed (plus the layer's pointwise bias, once) are
// the layer's pointwise output. Parts' plain weights are split at
// construction.
class WeightCache {
 public:
  // `model` must outlive the cache.
  WeightCache(const ModelSpec& model, const dnnl::engine& engine);

  // 1 or the layer's depth multiplier (see above).
  int64_t Parts(size_t layer) const { return static_cast<int64_t>(layers_[layer].parts.size()); }
  // The part's depthwise weights ([in, 1, 1, K, K] goihw for a split part)
  // and pointwise weights ([out, in, 1, 1]) in `desc` (reordered once).
  dnnl::memory Depthwise(size_t layer, int64_t part, const dnnl::memory::desc& desc,
                         dnnl::stream& stream);
  dnnl::memory Pointwise(size_t layer, int64_t part, const dnnl::memory::desc& desc,
                         dnnl::stream& stream);
  // The part's depthwise bias (plain, 1-D); empty memory when the layer has
  // none.
  const dnnl::memory& DepthwiseBias(size_t layer, int64_t part) const {
    return layers_[layer].parts[part].dw_bias;
  }
  // The layer's pointwise weights as given ([out, mid] row-major) and its
  // pointwise bias (empty memory when it has none).
  const dnnl::memory& PointwisePlain(size_t layer) const { return layers_[layer].pw_plain; }
  const dnnl::memory& PointwiseBias(size_t layer) const { return layers_[layer].pw_bias; }

  // The weights in the fused kernels' layout for blocks of `mr` output
  // channels (PackFusedWeights), packed on first request and kept: every
  // fused plan of the executor shares them.
  const std::vector<internal::FusedLayerWeights>& Fused(int mr);

 private:
  struct Weights {
    dnnl::memory plain;
    std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> reordered;
  };
  struct Part {
    Weights dw, pw;
    dnnl::memory dw_bias;
  };
  struct LayerMemories {
    std::vector<Part> parts;
    dnnl::memory pw_plain, pw_bias;
    // The split parts' plain weights (views above point into them).
    std::vector<std::vector<float>> storage;
  };
  dnnl::memory Get(Weights& weights, const dnnl::memory::desc& desc, dnnl::stream& stream);

  const ModelSpec& model_;
  dnnl::engine engine_;
  std::vector<LayerMemories> layers_;
  std::map<int, std::vector<internal::FusedLayerWeights>> fused_;  // by mr
};

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_ONEDNN_WEIGHTS_H_
