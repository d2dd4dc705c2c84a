#include "engine/internal/fused_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/internal/tile_pool.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace sepconv {
namespace internal {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }
size_t RoundUp64(size_t bytes) { return (bytes + 63) / 64 * 64; }

// Tiles per sample: as many as keep a tile's depthwise output near
// `tile_bytes` (a tile is whole pointwise blocks of pixels), enough that
// every thread gets work, and a number in all (n per sample) the threads
// share evenly where the blocks allow.
int64_t TileCount(int64_t n, int64_t blocks, int64_t mid, int64_t block, int64_t tile_bytes,
                  int threads) {
  const int64_t fit = std::max<int64_t>(1, tile_bytes / (block * mid * int64_t{4}));
  int64_t tiles = std::max(CeilDiv(blocks, fit), std::min(blocks, CeilDiv(threads, n)));
  while (tiles < blocks && (n * tiles) % threads != 0) ++tiles;
  return tiles;
}

}  // namespace

const FusedKernels* FusedPlan::KernelsForThisCpu() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core:
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx:
      return &FusedKernelsAvx512();
    case dnnl::cpu_isa::avx2:
    case dnnl::cpu_isa::avx2_vnni:
      return &FusedKernelsAvx2();
    default:
      return nullptr;
  }
}

std::vector<FusedLayerWeights> PackFusedWeights(const ModelSpec& model, int mr) {
  std::vector<FusedLayerWeights> packed;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    const LayerSpec& s = layer.spec;
    const int64_t mid = s.MidChannels(), blocks = CeilDiv(s.out_channels, mr);
    FusedLayerWeights w;
    w.dw_bias = s.depthwise_bias ? layer.weights.depthwise_bias : std::vector<float>(mid, 0.f);
    w.pw_bias.assign(blocks * mr, 0.f);
    if (s.pointwise_bias) {
      std::copy(layer.weights.pointwise_bias.begin(), layer.weights.pointwise_bias.end(),
                w.pw_bias.begin());
    }
    w.pw_packed.assign(blocks * mid * mr, 0.f);
    for (int64_t o = 0; o < s.out_channels; ++o) {
      for (int64_t m = 0; m < mid; ++m) {
        w.pw_packed[((o / mr) * mid + m) * mr + o % mr] = layer.weights.pointwise[o * mid + m];
      }
    }
    packed.push_back(std::move(w));
  }
  return packed;
}

FusedPlan::FusedPlan(const ModelSpec& model, const Dims4& input, const FusedKernels& kernels,
                     const std::vector<FusedLayerWeights>& weights, int threads, int64_t tile_bytes,
                     bool stream_output)
    : kernels_(kernels),
      threads_(std::max(1, threads)),
      tile_bytes_(tile_bytes > 0 ? tile_bytes : kDefaultTileBytes),
      input_(input) {
  Dims4 cur = input;
  shapes_.push_back(cur);
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    const Dims4 next = LayerOutputShape(layer.spec, cur);
    layers_.push_back(Prepare(layer, weights[i], cur, next));
    cur = next;
    shapes_.push_back(cur);
  }
  layers_.back().view.stream_output = stream_output;
  size_t act_floats = 0;  // activations between layers, per buffer
  for (size_t i = 1; i + 1 < shapes_.size(); ++i) {
    act_floats = std::max(act_floats, static_cast<size_t>(Elements(shapes_[i])));
  }
  act_offset_ = RoundUp64(sizeof(float) * scratch_floats_ * threads_);
  act_bytes_ = RoundUp64(sizeof(float) * act_floats);
  arena_bytes_ = act_offset_ + 2 * act_bytes_;
}

FusedPlan::LayerData FusedPlan::Prepare(const Layer& layer, const FusedLayerWeights& weights,
                                        const Dims4& in, const Dims4& out) {
  const LayerSpec& s = layer.spec;
  LayerData d;
  const int64_t plane = out.h * out.w, block = kernels_.block_pixels;
  d.blocks = CeilDiv(plane, block);
  d.tiles = TileCount(in.n, d.blocks, s.MidChannels(), block, tile_bytes_, threads_);
  FusedLayerView& v = d.view;
  v.in_channels = s.in_channels;
  v.mid_channels = s.MidChannels();
  v.out_channels = s.out_channels;
  v.depth_multiplier = s.depth_multiplier;
  v.kernel = s.kernel;
  v.stride = s.stride;
  v.dilation = s.dilation;
  v.pad = s.EffectivePadding();
  v.in_h = in.h;
  v.in_w = in.w;
  v.out_h = out.h;
  v.out_w = out.w;
  v.dw_weights = layer.weights.depthwise.data();
  v.dw_bias = weights.dw_bias.data();
  v.pw_packed = weights.pw_packed.data();
  v.pw_bias = weights.pw_bias.data();
  v.dw_activation = s.depthwise_activation;
  v.pw_activation = s.pointwise_activation;
  const int64_t lanes = kernels_.lanes, reach = (s.kernel - 1) * s.dilation;
  // The rows a tile's pixels touch (a partial one at each end), and slack
  // past them: the last row's vector and the last pointwise block, which
  // starts up to a row in, may run past them.
  const int64_t tile_rows = CeilDiv(TilePixels(d), out.w) + 1;
  // A line more, as the tile's rows start up to a line in (see
  // FusedLayerView::mid_ld). Rows an odd number of cache lines apart: the
  // pointwise product reads each of kMidsPerPass rows in turn, and rows an
  // even number of lines apart share part of L1's sets only (512 bytes
  // apart, an eighth of them), so they evicted each other and every read
  // went to L2.
  v.mid_ld = RoundUp(RoundUp(tile_rows * out.w + block, lanes) + lanes + kLineFloats, kLineFloats);
  if (v.mid_ld / kLineFloats % 2 == 0) v.mid_ld += kLineFloats;
  v.phase_ld = RoundUp(std::max({v.pad + in.w, CeilDiv(in.w + 2 * v.pad, s.stride),
                                 RoundUp(out.w, lanes) + reach / s.stride + 1}),
                       lanes);
  v.read_in_place = s.kernel == 3 && s.stride == 1 && s.dilation == 1;
  const int64_t rows_read = (tile_rows - 1) * s.stride + reach + 1;
  // A strided layer's row buffer (FillPhases) after the rows.
  const int64_t row_buffer = s.stride > 1 ? s.stride * v.phase_ld : 0;
  const int64_t input_floats =
      v.read_in_place ? v.phase_ld : rows_read * s.stride * v.phase_ld + row_buffer;
  const int64_t floats = v.mid_channels * v.mid_ld + input_floats;
  scratch_floats_ = std::max(scratch_floats_, static_cast<size_t>(RoundUp(floats, 16)));
  return d;
}

void FusedPlan::Execute(absl::Span<const BatchItem> items, char* arena) {
  inputs_.clear();
  outputs_.clear();
  const int64_t in_sample = input_.c * input_.h * input_.w;
  const Dims4& last = shapes_.back();
  const int64_t out_sample = last.c * last.h * last.w;
  for (const BatchItem& item : items) {
    for (int64_t i = 0; i < item.samples; ++i) {
      inputs_.push_back(item.input + i * in_sample);
      outputs_.push_back(item.output + i * out_sample);
    }
  }
  const int64_t n = static_cast<int64_t>(inputs_.size());
  float* act[2] = {reinterpret_cast<float*>(arena + act_offset_),
                   reinterpret_cast<float*>(arena + act_offset_ + act_bytes_)};
  TilePool& pool = TilePool::ForThisThread();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerData& layer = layers_[l];
    const Dims4 &in = shapes_[l], &out = shapes_[l + 1];
    const bool first = l == 0, final = l + 1 == layers_.size();
    pool.Run(threads_, n * layer.tiles, [&](int64_t t, int worker) {
      const int64_t sample = t / layer.tiles, tile = t % layer.tiles;
      // Tile `tile`'s share of the blocks, which differ by one at most.
      const int64_t block = kernels_.block_pixels;
      const int64_t p0 = tile * layer.blocks / layer.tiles * block;
      const int64_t p1 = std::min((tile + 1) * layer.blocks / layer.tiles * block, out.h * out.w);
      const float* src = first ? inputs_[sample] : act[(l - 1) % 2] + sample * in.c * in.h * in.w;
      float* dst = final ? outputs_[sample] : act[l % 2] + sample * out.c * out.h * out.w;
      kernels_.tile(layer.view, src, dst, p0, p1,
                    reinterpret_cast<float*>(arena) + scratch_floats_ * worker);
    });
  }
}

int64_t FusedPlan::TilePixels(const LayerData& layer) const {
  return CeilDiv(layer.blocks, layer.tiles) * kernels_.block_pixels;
}

std::vector<std::string> FusedPlan::ImplNames() const {
  std::vector<std::string> names;
  for (const LayerData& layer : layers_) {
    names.push_back(absl::StrCat("fused_nchw:", kernels_.isa, " (", layer.tiles, " tiles of up to ",
                                 TilePixels(layer), " pixels",
                                 layer.view.stream_output ? ", output streamed" : "", ")"));
  }
  return names;
}

}  // namespace internal
}  // namespace sepconv
