#include "engine/internal/onednn_weights.h"

#include <algorithm>

namespace sepconv {

using dnnl::memory;
constexpr memory::data_type kF32 = memory::data_type::f32;

WeightCache::WeightCache(const ModelSpec& model, const dnnl::engine& engine)
    : model_(model), engine_(engine) {
  // oneDNN takes non-const handles; plain weights are only ever read.
  auto view = [&](const std::vector<float>& values, const memory::dims& dims,
                  memory::format_tag tag) {
    if (values.empty()) return memory();
    return memory(memory::desc(dims, kF32, tag), engine,
                  const_cast<float*>(values.data()));  // NOLINT: read-only source
  };
  for (const Layer& layer : model.layers) {
    const LayerSpec& s = layer.spec;
    const LayerWeights& w = layer.weights;
    const int64_t dm = s.depth_multiplier, c = s.in_channels, o = s.out_channels;
    const int64_t taps = s.kernel * s.kernel, mid = s.MidChannels();
    LayerMemories m;
    m.pw_plain = view(w.pointwise, {o, mid, 1, 1}, memory::format_tag::oihw);
    m.pw_bias = view(w.pointwise_bias, {o}, memory::format_tag::x);
    if (dm == 1) {
      Part part;
      part.dw.plain = view(w.depthwise, {c, 1, 1, s.kernel, s.kernel}, memory::format_tag::goihw);
      part.pw.plain = m.pw_plain;
      part.dw_bias = view(w.depthwise_bias, {c}, memory::format_tag::x);
      m.parts.push_back(std::move(part));
      layers_.push_back(std::move(m));
      continue;
    }
    // Split part j: mid channel c * dm + j becomes channel c.
    m.storage.reserve(3 * dm);
    for (int64_t j = 0; j < dm; ++j) {
      std::vector<float> dw(c * taps), dw_bias, pw(o * c);
      for (int64_t ci = 0; ci < c; ++ci) {
        std::copy_n(w.depthwise.begin() + (ci * dm + j) * taps, taps, dw.begin() + ci * taps);
        if (!w.depthwise_bias.empty()) dw_bias.push_back(w.depthwise_bias[ci * dm + j]);
      }
      for (int64_t oi = 0; oi < o; ++oi) {
        for (int64_t ci = 0; ci < c; ++ci) pw[oi * c + ci] = w.pointwise[oi * mid + ci * dm + j];
      }
      Part part;
      part.dw.plain = view(m.storage.emplace_back(std::move(dw)), {c, 1, 1, s.kernel, s.kernel},
                           memory::format_tag::goihw);
      part.dw_bias = view(m.storage.emplace_back(std::move(dw_bias)), {c}, memory::format_tag::x);
      part.pw.plain =
          view(m.storage.emplace_back(std::move(pw)), {o, c, 1, 1}, memory::format_tag::oihw);
      m.parts.push_back(std::move(part));
    }
    layers_.push_back(std::move(m));
  }
}

dnnl::memory WeightCache::Depthwise(size_t layer, int64_t part, const memory::desc& desc,
                                    dnnl::stream& stream) {
  return Get(layers_[layer].parts[part].dw, desc, stream);
}

dnnl::memory WeightCache::Pointwise(size_t layer, int64_t part, const memory::desc& desc,
                                    dnnl::stream& stream) {
  return Get(layers_[layer].parts[part].pw, desc, stream);
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

const std::vector<internal::FusedLayerWeights>& WeightCache::Fused(int mr) {
  auto it = fused_.find(mr);
  if (it == fused_.end()) it = fused_.emplace(mr, internal::PackFusedWeights(model_, mr)).first;
  return it->second;
}

}  // namespace sepconv
