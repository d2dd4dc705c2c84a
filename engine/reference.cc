#include "engine/reference.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace sepconv {
namespace {

double Activate(Activation activation, double x) {
  switch (activation) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return std::max(x, 0.0);
    case Activation::kRelu6:
      return std::min(std::max(x, 0.0), 6.0);
  }
  return x;
}

// One layer, NCHW in and out: `in` is [n, c, h, w], the result [n, out, ho, wo].
std::vector<float> LayerForward(const Layer& layer, const Dims4& in_dims,
                                const std::vector<float>& in, const Dims4& out_dims) {
  const LayerSpec& s = layer.spec;
  const LayerWeights& w = layer.weights;
  const int64_t n = in_dims.n, c = in_dims.c, h = in_dims.h, wd = in_dims.w;
  const int64_t ho = out_dims.h, wo = out_dims.w, k = s.kernel, pad = s.EffectivePadding();
  const int64_t mid = s.MidChannels(), dm = s.depth_multiplier;

  std::vector<double> depthwise(static_cast<size_t>(n * mid * ho * wo));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t m = 0; m < mid; ++m) {
      const int64_t ci = m / dm;  // the input channel of this group
      const float* plane = &in[static_cast<size_t>((b * c + ci) * h * wd)];
      for (int64_t y = 0; y < ho; ++y) {
        for (int64_t x = 0; x < wo; ++x) {
          double acc = s.depthwise_bias ? w.depthwise_bias[m] : 0.0;
          for (int64_t ky = 0; ky < k; ++ky) {
            const int64_t iy = y * s.stride - pad + ky * s.dilation;
            if (iy < 0 || iy >= h) continue;
            for (int64_t kx = 0; kx < k; ++kx) {
              const int64_t ix = x * s.stride - pad + kx * s.dilation;
              if (ix < 0 || ix >= wd) continue;
              acc += static_cast<double>(w.depthwise[(m * k + ky) * k + kx]) * plane[iy * wd + ix];
            }
          }
          depthwise[static_cast<size_t>(((b * mid + m) * ho + y) * wo + x)] =
              Activate(s.depthwise_activation, acc);
        }
      }
    }
  }

  const int64_t out = s.out_channels, plane = ho * wo;
  std::vector<float> result(static_cast<size_t>(n * out * plane));
  std::vector<double> acc(static_cast<size_t>(plane));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t o = 0; o < out; ++o) {
      std::fill(acc.begin(), acc.end(), s.pointwise_bias ? w.pointwise_bias[o] : 0.0);
      for (int64_t m = 0; m < mid; ++m) {
        const double weight = w.pointwise[o * mid + m];
        const double* src = &depthwise[static_cast<size_t>((b * mid + m) * plane)];
        for (int64_t p = 0; p < plane; ++p) acc[p] += weight * src[p];
      }
      float* dst = &result[static_cast<size_t>((b * out + o) * plane)];
      for (int64_t p = 0; p < plane; ++p) {
        dst[p] = static_cast<float>(Activate(s.pointwise_activation, acc[p]));
      }
    }
  }
  return result;
}

}  // namespace

absl::StatusOr<std::vector<float>> ReferenceForward(const ModelSpec& model, const Dims4& input_dims,
                                                    const std::vector<float>& input) {
  absl::StatusOr<Dims4> out = InferOutputShape(model, input_dims);
  if (!out.ok()) return out.status();
  const int64_t expected = input_dims.n * input_dims.c * input_dims.h * input_dims.w;
  if (static_cast<int64_t>(input.size()) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("input has ", input.size(), " values, its shape needs ", expected));
  }
  Dims4 dims = input_dims;
  std::vector<float> current = input;
  for (const Layer& layer : model.layers) {
    const LayerSpec& s = layer.spec;
    const int64_t pad = s.EffectivePadding(), reach = s.dilation * (s.kernel - 1) + 1;
    const Dims4 next{dims.n, s.out_channels, (dims.h + 2 * pad - reach) / s.stride + 1,
                     (dims.w + 2 * pad - reach) / s.stride + 1};
    current = LayerForward(layer, dims, current, next);
    dims = next;
  }
  return current;
}

}  // namespace sepconv
