#ifndef SEPCONV_ENGINE_MODEL_SPEC_H_
#define SEPCONV_ENGINE_MODEL_SPEC_H_

// What a model is: a sequence of depthwise-separable layers and their weights.
// Plain data; thread-compatible (share as `std::shared_ptr<const ModelSpec>`).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sepconv {

enum class Activation { kNone, kRelu, kRelu6 };

// "none", "relu", "relu6".
absl::string_view ActivationName(Activation activation);
absl::StatusOr<Activation> ParseActivation(absl::string_view name);

// One depthwise KxK convolution (groups = in_channels, in_channels *
// depth_multiplier outputs) followed by a 1x1 pointwise convolution, each with
// an optional bias and an optional activation after it. With the defaults it
// is the reference PyTorch `separableconv` module.
struct LayerSpec {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel = 3;  // odd, 1..7
  int64_t stride = 1;
  int64_t padding = -1;  // -1 means "same": dilation * (kernel / 2)
  int64_t dilation = 1;
  int64_t depth_multiplier = 1;
  bool depthwise_bias = true;
  bool pointwise_bias = true;
  Activation depthwise_activation = Activation::kNone;
  Activation pointwise_activation = Activation::kNone;

  int64_t EffectivePadding() const { return padding >= 0 ? padding : dilation * (kernel / 2); }
  // Channels between the depthwise and the pointwise convolution.
  int64_t MidChannels() const { return in_channels * depth_multiplier; }
};

// Weights in PyTorch's (and ONNX's) layout, fp32.
struct LayerWeights {
  std::vector<float> depthwise;       // [MidChannels, 1, kernel, kernel]
  std::vector<float> depthwise_bias;  // [MidChannels], empty when !depthwise_bias
  std::vector<float> pointwise;       // [out_channels, MidChannels, 1, 1]
  std::vector<float> pointwise_bias;  // [out_channels], empty when !pointwise_bias
};

struct Layer {
  LayerSpec spec;
  LayerWeights weights;
};

struct ModelSpec {
  std::vector<Layer> layers;

  int64_t InChannels() const { return layers.empty() ? 0 : layers.front().spec.in_channels; }
  int64_t OutChannels() const { return layers.empty() ? 0 : layers.back().spec.out_channels; }
};

// An NCHW shape.
struct Dims4 {
  int64_t n = 0;
  int64_t c = 0;
  int64_t h = 0;
  int64_t w = 0;

  friend bool operator==(const Dims4& a, const Dims4& b) {
    return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w;
  }
  friend bool operator!=(const Dims4& a, const Dims4& b) { return !(a == b); }
};

// n * c * h * w, for dims already validated (no overflow check).
inline int64_t Elements(const Dims4& d) { return d.n * d.c * d.h * d.w; }

// Checks every layer's hyper-parameters, that consecutive layers' channels
// chain, and that weight sizes match. The message names the layer and value.
absl::Status ValidateModel(const ModelSpec& model);

// One layer's output for `input` (n carried over, the layer's output
// channels, H and W past the depthwise kernel), for an input already
// validated (InferOutputShape): no checks.
inline Dims4 LayerOutputShape(const LayerSpec& s, const Dims4& input) {
  const int64_t pad = s.EffectivePadding(), reach = s.dilation * (s.kernel - 1) + 1;
  return Dims4{input.n, s.out_channels, (input.h + 2 * pad - reach) / s.stride + 1,
               (input.w + 2 * pad - reach) / s.stride + 1};
}

// The output shape for `input`, or INVALID_ARGUMENT naming the problem:
// non-positive dims, a channel mismatch, a spatial size smaller than a
// kernel's reach, or element counts that overflow int64.
absl::StatusOr<Dims4> InferOutputShape(const ModelSpec& model, const Dims4& input);

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_MODEL_SPEC_H_
