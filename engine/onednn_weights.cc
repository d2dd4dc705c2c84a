#include "engine/onednn_weights.h"

namespace sepconv {

using dnnl::memory;
constexpr memory::data_type kF32 = memory::data_type::f32;

WeightCache::WeightCache(const ModelSpec& model, const dnnl::engine& engine) : engine_(engine) {
  // oneDNN takes non-const handles; plain weights are only ever read.
  auto view = [&](const std::vector<float>& values, const memory::dims& dims,
                  memory::format_tag tag) {
    if (values.empty()) return memory();
    return memory(memory::desc(dims, kF32, tag), engine,
                  const_cast<float*>(values.data()));  // NOLINT: read-only source
  };
  for (const Layer& layer : model.layers) {
    const LayerSpec& s = layer.spec;
    LayerMemories m;
    m.dw.plain =
        view(layer.weights.depthwise, {s.in_channels, s.depth_multiplier, 1, s.kernel, s.kernel},
             memory::format_tag::goihw);
    m.pw.plain = view(layer.weights.pointwise, {s.out_channels, s.MidChannels(), 1, 1},
                      memory::format_tag::oihw);
    m.dw_bias = view(layer.weights.depthwise_bias, {s.MidChannels()}, memory::format_tag::x);
    m.pw_bias = view(layer.weights.pointwise_bias, {s.out_channels}, memory::format_tag::x);
    layers_.push_back(std::move(m));
  }
}

dnnl::memory WeightCache::Depthwise(size_t layer, const memory::desc& desc, dnnl::stream& stream) {
  return Get(layers_[layer].dw, desc, stream);
}

dnnl::memory WeightCache::Pointwise(size_t layer, const memory::desc& desc, dnnl::stream& stream) {
  return Get(layers_[layer].pw, desc, stream);
}

dnnl::memory WeightCache::Get(Weights& weights, const memory::desc& desc, dnnl::stream& stream) {
  if (weights.plain.get_desc() == desc) return weights.plain;
  for (const auto& [cached_desc, cached] : weights.reordered) {
    if (cached_desc == desc) return cached;
  }
  memory reordered(desc, engine_);
  dnnl::reorder(weights.plain, reordered).execute(stream, weights.plain, reordered);
  stream.wait();
  weights.reordered.emplace_back(desc, reordered);
  return reordered;
}

}  // namespace sepconv
