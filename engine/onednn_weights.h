#ifndef SEPCONV_ENGINE_ONEDNN_WEIGHTS_H_
#define SEPCONV_ENGINE_ONEDNN_WEIGHTS_H_

// A model's weights as oneDNN memories, reordered once per layout asked for.
// May throw dnnl::error and std::bad_alloc (the Executor catches them). Not
// thread-safe: each belongs to one Executor.

#include <cstddef>
#include <utility>
#include <vector>

#include "engine/model_spec.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace sepconv {

// The model's weights as oneDNN memories: plain (PyTorch layout) views of the
// ModelSpec, plus one reordered copy per layout a primitive asked for,
// made on first request and kept.
class WeightCache {
 public:
  // `model` must outlive the cache.
  WeightCache(const ModelSpec& model, const dnnl::engine& engine);

  // The layer's depthwise/pointwise weights in `desc` (reordered once).
  dnnl::memory Depthwise(size_t layer, const dnnl::memory::desc& desc, dnnl::stream& stream);
  dnnl::memory Pointwise(size_t layer, const dnnl::memory::desc& desc, dnnl::stream& stream);
  // The pointwise weights as given ([out, mid] row-major).
  const dnnl::memory& PointwisePlain(size_t layer) const { return layers_[layer].pw.plain; }
  // Biases (plain, 1-D); empty memory when the layer has none.
  const dnnl::memory& DepthwiseBias(size_t layer) const { return layers_[layer].dw_bias; }
  const dnnl::memory& PointwiseBias(size_t layer) const { return layers_[layer].pw_bias; }

 private:
  struct Weights {
    dnnl::memory plain;
    std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> reordered;
  };
  struct LayerMemories {
    Weights dw, pw;
    dnnl::memory dw_bias, pw_bias;
  };
  dnnl::memory Get(Weights& weights, const dnnl::memory::desc& desc, dnnl::stream& stream);

  dnnl::engine engine_;
  std::vector<LayerMemories> layers_;
};

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_ONEDNN_WEIGHTS_H_
