#include "engine/onednn_plan.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

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

primitive_attr AttrFor(Activation activation) {
  primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
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

int64_t MicroBatchSize(const ModelSpec& model, const Dims4& chw, int64_t n, int64_t requested) {
  if (requested > 0) return std::min(requested, n);
  // Per sample: the largest layer input + depthwise output + layer output.
  int64_t h = chw.h, w = chw.w, c = chw.c, per_sample = 0;
  for (const Layer& layer : model.layers) {
    const LayerSpec& s = layer.spec;
    const int64_t pad = s.EffectivePadding(), reach = s.dilation * (s.kernel - 1) + 1;
    const int64_t ho = (h + 2 * pad - reach) / s.stride + 1,
                  wo = (w + 2 * pad - reach) / s.stride + 1;
    per_sample =
        std::max(per_sample, static_cast<int64_t>(sizeof(float)) *
                                 (c * h * w + (s.MidChannels() + s.out_channels) * ho * wo));
    h = ho;
    w = wo;
    c = s.out_channels;
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
           ActivationLayout layout, WeightCache& weights, const dnnl::engine& engine,
           dnnl::stream& stream)
    : engine_(engine),
      flops_(flops),
      tag_(TagFor(ResolveLayout(layout))),
      input_(input),
      direct_output_(ResolveLayout(layout) == ActivationLayout::kNhwcDirect) {
  const int64_t n = input.n;
  auto act_desc = [&](int64_t c, int64_t h, int64_t w) {
    return memory::desc({n, c, h, w}, kF32, tag_);
  };

  // Pass 1: primitive descriptors, to size the shared buffers.
  struct LayerPds {
    Conv::primitive_desc dw, pw;
  };
  std::vector<LayerPds> pds;
  size_t act_bytes = act_desc(input.c, input.h, input.w).get_size();
  size_t mid_bytes = 0, scratch_bytes = 0;
  Dims4 cur = input;
  for (const Layer& layer : model.layers) {
    const LayerSpec& s = layer.spec;
    const int64_t pad = s.EffectivePadding(), reach = s.dilation * (s.kernel - 1) + 1;
    const int64_t ho = (cur.h + 2 * pad - reach) / s.stride + 1;
    const int64_t wo = (cur.w + 2 * pad - reach) / s.stride + 1;
    const memory::desc src = act_desc(cur.c, cur.h, cur.w);
    const memory::desc mid = act_desc(s.MidChannels(), ho, wo);
    const memory::desc dst = act_desc(s.out_channels, ho, wo);
    const memory::desc dw_bias = s.depthwise_bias
                                     ? memory::desc({s.MidChannels()}, kF32, memory::format_tag::x)
                                     : memory::desc();
    const memory::desc pw_bias = s.pointwise_bias
                                     ? memory::desc({s.out_channels}, kF32, memory::format_tag::x)
                                     : memory::desc();
    LayerPds layer_pds{
        MakeConv(src,
                 memory::desc({s.in_channels, s.depth_multiplier, 1, s.kernel, s.kernel}, kF32,
                              memory::format_tag::goihw),
                 dw_bias, mid, {s.stride, s.stride}, {s.dilation - 1, s.dilation - 1}, {pad, pad},
                 {TrailingPad(cur.h, ho, pad, s.stride, reach),
                  TrailingPad(cur.w, wo, pad, s.stride, reach)},
                 AttrFor(s.depthwise_activation), engine),
        MakeConv(
            mid,
            memory::desc({s.out_channels, s.MidChannels(), 1, 1}, kF32, memory::format_tag::oihw),
            pw_bias, dst, {1, 1}, {0, 0}, {0, 0}, {0, 0}, AttrFor(s.pointwise_activation), engine)};
    act_bytes = std::max(act_bytes, dst.get_size());
    mid_bytes = std::max(mid_bytes, mid.get_size());
    scratch_bytes = std::max({scratch_bytes, layer_pds.dw.scratchpad_desc().get_size(),
                              layer_pds.pw.scratchpad_desc().get_size()});
    pds.push_back(std::move(layer_pds));
    cur = Dims4{n, s.out_channels, ho, wo};
  }
  output_ = cur;
  if (direct_output_) {
    const size_t last = model.layers.size() - 1;
    const LayerSpec& s = model.layers[last].spec;
    last_mid_channels_ = s.MidChannels();
    last_activation_ = s.pointwise_activation;
    last_weights_ = weights.PointwisePlain(last);
    last_bias_ = weights.PointwiseBias(last);
    scratch_bytes = std::max(scratch_bytes, DirectOutputPd(n).scratchpad_desc().get_size());
  }
  input_sample_bytes_ = act_desc(input.c, input.h, input.w).get_size() / n;
  output_sample_bytes_ = act_desc(output_.c, output_.h, output_.w).get_size() / n;

  // Pass 2: buffers once, then the steps. Layer input and output share
  // `activations_` (the input is dead once the depthwise conv has run).
  activations_ = Allocate(act_bytes);
  mid_ = Allocate(mid_bytes);
  scratchpad_ = Allocate(scratch_bytes);
  scratchpad_memory_ = memory(memory::desc({static_cast<int64_t>(scratchpad_.bytes)},
                                           memory::data_type::u8, memory::format_tag::x),
                              engine, scratchpad_.data.get());
  const memory& scratch = scratchpad_memory_;
  for (size_t i = 0; i < pds.size(); ++i) {
    const LayerPds& p = pds[i];
    Step dw{Conv(p.dw),
            {{DNNL_ARG_SRC, memory(p.dw.src_desc(), engine, activations_.data.get())},
             {DNNL_ARG_WEIGHTS, weights.Depthwise(i, p.dw.weights_desc(), stream)},
             {DNNL_ARG_DST, memory(p.dw.dst_desc(), engine, mid_.data.get())},
             {DNNL_ARG_SCRATCHPAD, scratch}}};
    if (model.layers[i].spec.depthwise_bias) dw.args[DNNL_ARG_BIAS] = weights.DepthwiseBias(i);
    Step pw{Conv(p.pw),
            {{DNNL_ARG_SRC, memory(p.pw.src_desc(), engine, mid_.data.get())},
             {DNNL_ARG_WEIGHTS, weights.Pointwise(i, p.pw.weights_desc(), stream)},
             {DNNL_ARG_DST, memory(p.pw.dst_desc(), engine, activations_.data.get())},
             {DNNL_ARG_SCRATCHPAD, scratch}}};
    if (model.layers[i].spec.pointwise_bias) pw.args[DNNL_ARG_BIAS] = weights.PointwiseBias(i);
    steps_.push_back(std::move(dw));
    // With direct output the last pointwise conv is a matmul per item.
    if (!direct_output_ || i + 1 < pds.size()) steps_.push_back(std::move(pw));
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
  DirectOutput out{dnnl::matmul(pd),
                   memory(pd.weights_desc(), engine_, DNNL_MEMORY_NONE),
                   memory(pd.dst_desc(), engine_, DNNL_MEMORY_NONE),
                   {},
                   {}};
  out.args = {{DNNL_ARG_SRC, memory(pd.src_desc(), engine_, last_weights_.get_data_handle())},
              {DNNL_ARG_WEIGHTS, out.mid},
              {DNNL_ARG_DST, out.dst},
              {DNNL_ARG_SCRATCHPAD, scratchpad_memory_}};
  if (pd.scratchpad_desc().get_size() > scratchpad_.bytes) {
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
      memory(user, engine_, DNNL_MEMORY_NONE), memory(internal, engine_, DNNL_MEMORY_NONE), {}};
  b.reorder = to_internal ? dnnl::reorder(b.user, b.internal) : dnnl::reorder(b.internal, b.user);
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

void Plan::Execute(absl::Span<const BatchItem> items, dnnl::stream& stream) {
  char* activations = static_cast<char*>(activations_.data.get());
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
    char* mid = static_cast<char*>(mid_.data.get());
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
