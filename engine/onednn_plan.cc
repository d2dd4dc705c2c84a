#include "engine/internal/onednn_plan.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/internal/cpu_placement.h"

namespace sepconv {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::primitive_attr;
using Conv = dnnl::convolution_forward;
constexpr memory::data_type kF32 = memory::data_type::f32;

memory::format_tag TagFor(ActivationLayout layout) {
  switch (layout) {
    case ActivationLayout::kNhwc:
    case ActivationLayout::kNhwcDirect:
    case ActivationLayout::kFusedNchw:  // without fused kernels for this CPU
      return memory::format_tag::nhwc;
    case ActivationLayout::kBlocked8:
      return memory::format_tag::nChw8c;
    case ActivationLayout::kBlocked16:
    case ActivationLayout::kAuto:
      break;
  }
  return memory::format_tag::nChw16c;
}

void AppendActivation(Activation activation, dnnl::post_ops& ops) {
  if (activation == Activation::kRelu) {
    ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
  } else if (activation == Activation::kRelu6) {
    ops.append_eltwise(1.f, algorithm::eltwise_clip, 0.f, 6.f);
  }
}

// User scratchpad, then post-ops: the destination's previous contents added
// (if `sum`), then the activation.
primitive_attr AttrFor(Activation activation, bool sum = false) {
  primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
  if (sum) ops.append_sum(1.f);
  AppendActivation(activation, ops);
  attr.set_post_ops(ops);
  return attr;
}

// One convolution's primitive descriptor; `bias` may be a zero desc.
Conv::primitive_desc MakeConv(const memory::desc& src, const memory::desc& weights,
                              const memory::desc& bias, const memory::desc& dst,
                              const memory::dims& strides, const memory::dims& dilates,
                              const memory::dims& pad_l, const memory::dims& pad_r,
                              const primitive_attr& attr, const dnnl::engine& engine) {
  const memory::desc weights_any(weights.dims(), kF32, memory::format_tag::any);
  if (bias.is_zero()) {
    return Conv::primitive_desc(
        Conv::desc(dnnl::prop_kind::forward_inference, algorithm::convolution_direct, src,
                   weights_any, dst, strides, dilates, pad_l, pad_r),
        attr, engine);
  }
  return Conv::primitive_desc(
      Conv::desc(dnnl::prop_kind::forward_inference, algorithm::convolution_direct, src,
                 weights_any, bias, dst, strides, dilates, pad_l, pad_r),
      attr, engine);
}

// The right/bottom padding oneDNN needs for exactly `out` outputs (PyTorch
// pads symmetrically and drops what the stride does not reach).
int64_t TrailingPad(int64_t in, int64_t out, int64_t pad, int64_t stride, int64_t reach) {
  return std::max<int64_t>(0, (out - 1) * stride + reach - in - pad);
}

size_t RoundUp64(size_t bytes) { return (bytes + 63) / 64 * 64; }

// Sets OpenMP's maximum thread count for the scope, then restores it.
class OmpThreadsScope {
 public:
  explicit OmpThreadsScope(int threads) : saved_(omp_get_max_threads()) {
    if (threads != saved_) omp_set_num_threads(threads);
  }
  ~OmpThreadsScope() {
    if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
  }
  OmpThreadsScope(const OmpThreadsScope&) = delete;
  OmpThreadsScope& operator=(const OmpThreadsScope&) = delete;

 private:
  const int saved_;
};

// A layer's primitive descriptors. A layer in parts (see WeightCache) runs
// every part's depthwise conv, each into its own slice of the mid buffer,
// then every part's pointwise conv, all into the layer's output: the first
// with the pointwise bias, the others adding to it (sum post-op), the
// activation after the last one only.
struct LayerPds {
  std::vector<Conv::primitive_desc> dw, pw;
  size_t part_bytes = 0;  // one part's slice of the mid buffer
};

// Every layer's primitive descriptors for activations in `tag`, the sizes
// of the buffers they share and the output shape.
struct LayerDescs {
  std::vector<LayerPds> layers;
  size_t act_bytes = 0, mid_bytes = 0, scratch_bytes = 0;
  Dims4 output;
};

LayerDescs DescribeLayers(const ModelSpec& model, const Dims4& input, memory::format_tag tag,
                          const WeightCache& weights, const dnnl::engine& engine) {
  const int64_t n = input.n;
  auto act_desc = [&](int64_t c, int64_t h, int64_t w) {
    return memory::desc({n, c, h, w}, kF32, tag);
  };
  LayerDescs pds;
  pds.act_bytes = act_desc(input.c, input.h, input.w).get_size();
  Dims4 cur = input;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerSpec& s = model.layers[i].spec;
    const int64_t pad = s.EffectivePadding(), reach = s.dilation * (s.kernel - 1) + 1;
    const Dims4 out = LayerOutputShape(s, cur);
    const int64_t ho = out.h, wo = out.w;
    const int64_t parts = weights.Parts(i), part_mid = s.MidChannels() / parts;
    const memory::desc src = act_desc(cur.c, cur.h, cur.w);
    const memory::desc mid = act_desc(part_mid, ho, wo);
    const memory::desc dst = act_desc(s.out_channels, ho, wo);
    const memory::desc dw_bias =
        s.depthwise_bias ? memory::desc({part_mid}, kF32, memory::format_tag::x) : memory::desc();
    const memory::desc pw_bias = s.pointwise_bias
                                     ? memory::desc({s.out_channels}, kF32, memory::format_tag::x)
                                     : memory::desc();
    const memory::desc dw_weights({s.in_channels, part_mid / s.in_channels, 1, s.kernel, s.kernel},
                                  kF32, memory::format_tag::goihw);
    const memory::desc pw_weights({s.out_channels, part_mid, 1, 1}, kF32, memory::format_tag::oihw);
    LayerPds layer_pds;
    layer_pds.part_bytes = RoundUp64(mid.get_size());
    for (int64_t j = 0; j < parts; ++j) {
      layer_pds.dw.push_back(MakeConv(src, dw_weights, dw_bias, mid, {s.stride, s.stride},
                                      {s.dilation - 1, s.dilation - 1}, {pad, pad},
                                      {TrailingPad(cur.h, ho, pad, s.stride, reach),
                                       TrailingPad(cur.w, wo, pad, s.stride, reach)},
                                      AttrFor(s.depthwise_activation), engine));
      const bool last = j + 1 == parts;
      layer_pds.pw.push_back(MakeConv(mid, pw_weights, j == 0 ? pw_bias : memory::desc(), dst,
                                      {1, 1}, {0, 0}, {0, 0}, {0, 0},
                                      AttrFor(last ? s.pointwise_activation : Activation::kNone,
                                              /*sum=*/j > 0),
                                      engine));
      pds.scratch_bytes =
          std::max({pds.scratch_bytes, layer_pds.dw.back().scratchpad_desc().get_size(),
                    layer_pds.pw.back().scratchpad_desc().get_size()});
    }
    pds.act_bytes = std::max(pds.act_bytes, dst.get_size());
    pds.mid_bytes = std::max(pds.mid_bytes, parts * layer_pds.part_bytes);
    pds.layers.push_back(std::move(layer_pds));
    cur = Dims4{n, s.out_channels, ho, wo};
  }
  pds.output = cur;
  return pds;
}

// Whether oneDNN fell back to a reference (slow, C++ loop) kernel anywhere.
bool UsesReference(const LayerDescs& pds) {
  for (const LayerPds& layer : pds.layers) {
    for (const auto* list : {&layer.dw, &layer.pw}) {
      for (const Conv::primitive_desc& pd : *list) {
        if (absl::StartsWith(pd.impl_info_str(), "ref")) return true;
      }
    }
  }
  return false;
}

// DescribeLayers in `tag`, or in nhwc (and `tag` set to it) if oneDNN has
// no JIT kernel in `tag` for some layer.
LayerDescs DescribeLayersWithJit(const ModelSpec& model, const Dims4& input,
                                 const WeightCache& weights, const dnnl::engine& engine,
                                 memory::format_tag& tag) {
  LayerDescs pds = DescribeLayers(model, input, tag, weights, engine);
  if (tag == memory::format_tag::nhwc || !UsesReference(pds)) return pds;
  tag = memory::format_tag::nhwc;
  return DescribeLayers(model, input, tag, weights, engine);
}

}  // namespace

ActivationLayout ResolveLayout(ActivationLayout layout) {
  if (layout != ActivationLayout::kAuto) return layout;
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  if (isa == dnnl::cpu_isa::avx512_core || isa == dnnl::cpu_isa::avx512_core_vnni ||
      isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx) {
    return ActivationLayout::kBlocked16;
  }
  if (isa == dnnl::cpu_isa::avx2 || isa == dnnl::cpu_isa::avx2_vnni) {
    return ActivationLayout::kBlocked8;
  }
  return ActivationLayout::kNhwc;
}

std::string EffectiveIsaName() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  switch (isa) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return absl::StrCat("isa#", static_cast<int>(isa));
  }
}

const char* LayoutName(ActivationLayout layout) {
  switch (layout) {
    case ActivationLayout::kAuto:
      return "auto";
    case ActivationLayout::kNhwc:
      return "nhwc";
    case ActivationLayout::kBlocked8:
      return "nChw8c";
    case ActivationLayout::kBlocked16:
      return "nChw16c";
    case ActivationLayout::kNhwcDirect:
      return "nhwc_direct";
    case ActivationLayout::kFusedNchw:
      return "fused";
  }
  return "?";
}

std::string Describe(const PlanChoice& choice) {
  return absl::StrCat(
      LayoutName(choice.layout),
      choice.fused_tile_bytes > 0 ? absl::StrCat(" ", choice.fused_tile_bytes >> 10, "K") : "",
      choice.fused_stream ? " streamed" : "",
      choice.threads > 0 ? absl::StrCat(" on ", choice.threads, " thread(s)") : " on all threads");
}

int64_t MicroBatchSize(const ModelSpec& model, const Dims4& chw, int64_t n, int64_t requested) {
  if (requested > 0) return std::min(requested, n);
  // Per sample: the largest layer input + depthwise output + layer output.
  Dims4 cur = chw;
  int64_t per_sample = 0;
  for (const Layer& layer : model.layers) {
    const LayerSpec& s = layer.spec;
    const Dims4 out = LayerOutputShape(s, cur);
    per_sample = std::max(per_sample, static_cast<int64_t>(sizeof(float)) *
                                          (cur.c * cur.h * cur.w +
                                           (s.MidChannels() + s.out_channels) * out.h * out.w));
    cur = out;
  }
  return std::clamp<int64_t>(kMicroBatchBytes / std::max<int64_t>(per_sample, 1), 1, n);
}

Plan::Buffer Plan::Allocate(size_t bytes) {
  // 64-byte aligned (a cache line, an AVX-512 vector), zeroed once so that
  // blocked layouts' channel padding never holds NaN garbage.
  const size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  void* data = std::aligned_alloc(64, rounded);
  if (data == nullptr) throw std::bad_alloc();
  std::memset(data, 0, rounded);
  Buffer buffer;
  buffer.data = std::unique_ptr<void, void (*)(void*)>(data, &std::free);
  buffer.bytes = rounded;
  return buffer;
}

Plan::Plan(const ModelSpec& model, const Dims4& input, const FlopCount& flops,
           const PlanChoice& choice, WeightCache& weights, const dnnl::engine& engine,
           dnnl::stream& stream)
    : engine_(engine),
      threads_(choice.threads > 0 ? choice.threads : omp_get_max_threads()),
      flops_(flops),
      tag_(TagFor(ResolveLayout(choice.layout))),
      input_(input),
      // A last layer in parts (depth multiplier > 1) ends like kNhwc.
      direct_output_(ResolveLayout(choice.layout) == ActivationLayout::kNhwcDirect &&
                     weights.Parts(model.layers.size() - 1) == 1) {
  if (ResolveLayout(choice.layout) == ActivationLayout::kFusedNchw) {
    if (const internal::FusedKernels* kernels = internal::FusedPlan::KernelsForThisCpu()) {
      fused_ = std::make_unique<internal::FusedPlan>(model, input, *kernels,
                                                     weights.Fused(kernels->mr), threads_,
                                                     choice.fused_tile_bytes, choice.fused_stream);
      arena_bytes_ = fused_->ArenaBytes();
      return;
    }
  }
  const OmpThreadsScope omp_threads(threads_);
  // Pass 1: primitive descriptors, to size the shared buffers.
  const LayerDescs pds = DescribeLayersWithJit(model, input, weights, engine, tag_);
  output_ = pds.output;
  size_t scratch_bytes = pds.scratch_bytes;
  if (direct_output_) scratch_bytes = std::max(scratch_bytes, PrepareDirectOutput(model, weights));
  input_sample_bytes_ = SampleBytes(input_);
  output_sample_bytes_ = SampleBytes(output_);
  // Pass 2: the arena's layout, then the steps.
  LayOutArena(pds.act_bytes, pds.mid_bytes, scratch_bytes);
  for (size_t i = 0; i < pds.layers.size(); ++i) {
    const LayerPds& p = pds.layers[i];
    AddConvSteps(/*depthwise=*/true, model.layers[i].spec, i, p.dw, p.part_bytes, weights, stream);
    // With direct output the last pointwise conv is a matmul per item.
    if (direct_output_ && i + 1 == pds.layers.size()) break;
    AddConvSteps(/*depthwise=*/false, model.layers[i].spec, i, p.pw, p.part_bytes, weights, stream);
  }
}

size_t Plan::PrepareDirectOutput(const ModelSpec& model, const WeightCache& weights) {
  const size_t last = model.layers.size() - 1;
  const LayerSpec& s = model.layers[last].spec;
  last_mid_channels_ = s.MidChannels();
  last_activation_ = s.pointwise_activation;
  last_weights_ = weights.PointwisePlain(last);
  last_bias_ = weights.PointwiseBias(last);
  return DirectOutputPd(input_.n).scratchpad_desc().get_size();
}

size_t Plan::SampleBytes(const Dims4& shape) const {
  return memory::desc({shape.n, shape.c, shape.h, shape.w}, kF32, tag_).get_size() / shape.n;
}

void Plan::LayOutArena(size_t act_bytes, size_t mid_bytes, size_t scratch_bytes) {
  mid_offset_ = RoundUp64(act_bytes);
  scratch_offset_ = mid_offset_ + RoundUp64(mid_bytes);
  scratch_bytes_ = RoundUp64(std::max<size_t>(scratch_bytes, 1));
  arena_bytes_ = scratch_offset_ + scratch_bytes_;
  scratchpad_memory_ = ArenaMemory(memory::desc({static_cast<int64_t>(scratch_bytes_)},
                                                memory::data_type::u8, memory::format_tag::x),
                                   scratch_offset_);
}

void Plan::AddConvSteps(bool depthwise, const LayerSpec& spec, size_t layer,
                        absl::Span<const Conv::primitive_desc> pds, size_t part_bytes,
                        WeightCache& weights, dnnl::stream& stream) {
  for (size_t j = 0; j < pds.size(); ++j) {
    const Conv::primitive_desc& pd = pds[j];
    const int64_t part = static_cast<int64_t>(j);
    const size_t slice = mid_offset_ + j * part_bytes;  // the part's depthwise output
    Step step{
        Conv(pd),
        {{DNNL_ARG_SRC, ArenaMemory(pd.src_desc(), depthwise ? 0 : slice)},
         {DNNL_ARG_WEIGHTS, depthwise ? weights.Depthwise(layer, part, pd.weights_desc(), stream)
                                      : weights.Pointwise(layer, part, pd.weights_desc(), stream)},
         {DNNL_ARG_DST, ArenaMemory(pd.dst_desc(), depthwise ? slice : 0)},
         {DNNL_ARG_SCRATCHPAD, scratchpad_memory_}},
        pd.impl_info_str()};
    if (depthwise && spec.depthwise_bias) {
      step.args[DNNL_ARG_BIAS] = weights.DepthwiseBias(layer, part);
    } else if (!depthwise && j == 0 && spec.pointwise_bias) {
      step.args[DNNL_ARG_BIAS] = weights.PointwiseBias(layer);
    }
    steps_.push_back(std::move(step));
  }
}

dnnl::matmul::primitive_desc Plan::DirectOutputPd(int64_t samples) const {
  const int64_t co = output_.c, cm = last_mid_channels_, hw = output_.h * output_.w;
  const memory::desc weights({1, co, cm}, kF32, memory::dims{co * cm, cm, 1});
  const memory::desc mid({samples, cm, hw}, kF32, memory::dims{hw * cm, 1, cm});
  const memory::desc dst({samples, co, hw}, kF32, memory::dims{co * hw, hw, 1});
  primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
  // A per-output-channel bias: matmul's bias argument would only broadcast
  // along the last dim here, a binary add broadcasts along any.
  if (last_bias_) {
    ops.append_binary(algorithm::binary_add,
                      memory::desc({1, co, 1}, kF32, memory::dims{co, 1, 1}));
  }
  AppendActivation(last_activation_, ops);
  attr.set_post_ops(ops);
  // oneDNN's `src` is the left operand: the [out, mid] weights, broadcast.
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(weights, mid, dst), attr, engine_);
}

Plan::DirectOutput& Plan::DirectOutputFor(int64_t samples) {
  auto it = direct_outputs_.find(samples);
  if (it != direct_outputs_.end()) return it->second;
  const dnnl::matmul::primitive_desc pd = DirectOutputPd(samples);
  DirectOutput out;
  out.primitive = dnnl::matmul(pd);
  out.mid = memory(pd.weights_desc(), engine_, DNNL_MEMORY_NONE);
  out.dst = memory(pd.dst_desc(), engine_, DNNL_MEMORY_NONE);
  out.impl = pd.impl_info_str();
  out.args = {{DNNL_ARG_SRC, memory(pd.src_desc(), engine_, last_weights_.get_data_handle())},
              {DNNL_ARG_WEIGHTS, out.mid},
              {DNNL_ARG_DST, out.dst},
              {DNNL_ARG_SCRATCHPAD, scratchpad_memory_}};
  if (pd.scratchpad_desc().get_size() > scratch_bytes_) {
    out.own_scratchpad = Allocate(pd.scratchpad_desc().get_size());
    out.args[DNNL_ARG_SCRATCHPAD] =
        memory(pd.scratchpad_desc(), engine_, out.own_scratchpad.data.get());
  }
  if (last_bias_) {
    out.args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] =
        memory(memory::desc({1, output_.c, 1}, kF32, memory::dims{output_.c, 1, 1}), engine_,
               last_bias_.get_data_handle());
  }
  return direct_outputs_.emplace(samples, std::move(out)).first->second;
}

Plan::Boundary Plan::MakeBoundary(const memory::desc& user, const memory::desc& internal,
                                  bool to_internal) {
  Boundary b{
      memory(user, engine_, DNNL_MEMORY_NONE), memory(internal, engine_, DNNL_MEMORY_NONE), {}, {}};
  const dnnl::reorder::primitive_desc pd = to_internal
                                               ? dnnl::reorder::primitive_desc(b.user, b.internal)
                                               : dnnl::reorder::primitive_desc(b.internal, b.user);
  b.reorder = dnnl::reorder(pd);
  b.impl = pd.impl_info_str();
  return b;
}

Plan::Boundary& Plan::InputBoundary(int64_t samples) {
  auto it = inputs_.find(samples);
  if (it != inputs_.end()) return it->second;
  const memory::dims dims = {samples, input_.c, input_.h, input_.w};
  return inputs_
      .emplace(samples, MakeBoundary(memory::desc(dims, kF32, memory::format_tag::nchw),
                                     memory::desc(dims, kF32, tag_), /*to_internal=*/true))
      .first->second;
}

Plan::Boundary& Plan::OutputBoundary(int64_t samples) {
  auto it = outputs_.find(samples);
  if (it != outputs_.end()) return it->second;
  const memory::dims dims = {samples, output_.c, output_.h, output_.w};
  return outputs_
      .emplace(samples, MakeBoundary(memory::desc(dims, kF32, memory::format_tag::nchw),
                                     memory::desc(dims, kF32, tag_), /*to_internal=*/false))
      .first->second;
}

ActivationLayout Plan::layout() const {
  if (fused_) return ActivationLayout::kFusedNchw;
  if (direct_output_) return ActivationLayout::kNhwcDirect;
  if (tag_ == memory::format_tag::nhwc) return ActivationLayout::kNhwc;
  if (tag_ == memory::format_tag::nChw8c) return ActivationLayout::kBlocked8;
  return ActivationLayout::kBlocked16;
}

PlanChoice Plan::choice() const {
  return PlanChoice{layout(), fused_ ? fused_->tile_bytes() : 0, threads_,
                    fused_ && fused_->stream_output()};
}

std::vector<std::string> Plan::ImplNames() const {
  if (fused_) return fused_->ImplNames();
  std::vector<std::string> names;
  for (const auto& [samples, b] : inputs_) names.push_back(b.impl);
  for (const Step& step : steps_) names.push_back(step.impl);
  for (const auto& [samples, out] : direct_outputs_) names.push_back(out.impl);
  for (const auto& [samples, b] : outputs_) names.push_back(b.impl);
  return names;
}

void Plan::MakeBoundaries(int64_t samples) {
  if (fused_) return;
  const OmpThreadsScope omp_threads(threads_);
  InputBoundary(samples);
  if (direct_output_) {
    DirectOutputFor(samples);
  } else {
    OutputBoundary(samples);
  }
}

memory Plan::ArenaMemory(const memory::desc& desc, size_t offset) {
  memory m(desc, engine_, DNNL_MEMORY_NONE);
  bindings_.emplace_back(m, offset);
  return m;
}

void Plan::Bind(char* base) {
  for (auto& [m, offset] : bindings_) m.set_data_handle(base + offset);
  bound_ = base;
}

void Plan::Execute(absl::Span<const BatchItem> items, dnnl::stream& stream,
                   internal::Arena& arena) {
  char* activations = arena.Reserve(arena_bytes_);
  if (fused_) {
    fused_->Execute(items, activations);
    return;
  }
  const OmpThreadsScope omp_threads(threads_);
  internal::KeepOpenMpTeamOffCallersCpu(threads_);
  if (activations != bound_) Bind(activations);
  // Each item's NCHW samples go straight into their slice of the batch (N
  // is outermost in every internal layout, so a slice is contiguous).
  int64_t offset = 0;
  for (const BatchItem& item : items) {
    Boundary& b = InputBoundary(item.samples);
    b.user.set_data_handle(const_cast<float*>(item.input));  // NOLINT: reorder source
    b.internal.set_data_handle(activations + offset * input_sample_bytes_);
    b.reorder.execute(stream, b.user, b.internal);
    offset += item.samples;
  }
  for (Step& step : steps_) step.primitive.execute(stream, step.args);
  offset = 0;
  if (direct_output_) {
    // Straight from the last depthwise output (nhwc) into each item's NCHW.
    char* mid = activations + mid_offset_;
    const size_t mid_sample_bytes = sizeof(float) * last_mid_channels_ * output_.h * output_.w;
    for (const BatchItem& item : items) {
      DirectOutput& out = DirectOutputFor(item.samples);
      out.mid.set_data_handle(mid + offset * mid_sample_bytes);
      out.dst.set_data_handle(item.output);
      out.primitive.execute(stream, out.args);
      offset += item.samples;
    }
    stream.wait();
    return;
  }
  for (const BatchItem& item : items) {
    Boundary& b = OutputBoundary(item.samples);
    b.internal.set_data_handle(activations + offset * output_sample_bytes_);
    b.user.set_data_handle(item.output);
    b.reorder.execute(stream, b.internal, b.user);
    offset += item.samples;
  }
  stream.wait();
}

}  // namespace sepconv
