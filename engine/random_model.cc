#include "engine/random_model.h"

#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "engine/internal/checked_math.h"
#include "engine/internal/validate.h"

namespace sepconv {
namespace {

// 4 GiB of fp32: beyond that a config is a mistake, not a model.
constexpr int64_t kMaxRandomWeights = int64_t{1} << 30;

// SplitMix64 (Steele, Lea, Flood 2014): a fixed algorithm, so the weights
// are bit-identical on every machine and standard library.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [-bound, bound): the top 53 bits as a double in [0, 1).
  float Uniform(double bound) {
    const double unit = static_cast<double>(Next() >> 11) * 0x1.0p-53;
    return static_cast<float>((2.0 * unit - 1.0) * bound);
  }

 private:
  uint64_t state_;
};

std::vector<float> Fill(SplitMix64& rng, int64_t count, double bound) {
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = rng.Uniform(bound);
  return values;
}

}  // namespace

absl::StatusOr<ModelSpec> MakeRandomModel(const std::vector<LayerSpec>& layers, uint64_t seed) {
  // Validate the hyper-parameters before sizing anything from them; the
  // channel chain and weight sizes are checked on the result.
  if (layers.empty()) return absl::InvalidArgumentError("model has no layers");
  for (size_t i = 0; i < layers.size(); ++i) {
    if (absl::Status st = internal::ValidateLayerSpec(i, layers[i]); !st.ok()) return st;
  }
  // Refuse absurd sizes rather than die allocating them.
  int64_t total = 0;
  for (const LayerSpec& s : layers) {
    // Each product fits int64 (checked above); sums are checked here.
    std::optional<int64_t> sum = total;
    for (int64_t part : {s.MidChannels() * s.kernel * s.kernel, s.MidChannels(),
                         s.MidChannels() * s.out_channels, s.out_channels}) {
      if (sum) sum = internal::CheckedAdd(*sum, part);
    }
    if (!sum || *sum > kMaxRandomWeights) {
      return absl::ResourceExhaustedError(
          absl::StrCat("random weights for these layers exceed ", kMaxRandomWeights, " values"));
    }
    total = *sum;
  }
  // One stream, layer by layer: depthwise weight, depthwise bias, pointwise
  // weight, pointwise bias, each uniform in +-1/sqrt(fan_in) like PyTorch's
  // Conv2d defaults (fan_in = kernel^2 for depthwise, MidChannels for
  // pointwise).
  SplitMix64 rng(seed);
  ModelSpec model;
  for (const LayerSpec& s : layers) {
    Layer layer{s, {}};
    const double dw_bound = 1.0 / std::sqrt(static_cast<double>(s.kernel * s.kernel));
    const double pw_bound = 1.0 / std::sqrt(static_cast<double>(s.MidChannels()));
    layer.weights.depthwise = Fill(rng, s.MidChannels() * s.kernel * s.kernel, dw_bound);
    if (s.depthwise_bias) layer.weights.depthwise_bias = Fill(rng, s.MidChannels(), dw_bound);
    layer.weights.pointwise = Fill(rng, s.out_channels * s.MidChannels(), pw_bound);
    if (s.pointwise_bias) layer.weights.pointwise_bias = Fill(rng, s.out_channels, pw_bound);
    model.layers.push_back(std::move(layer));
  }
  if (absl::Status st = ValidateModel(model); !st.ok()) return st;
  return model;
}

ModelSpec DefaultModel() {
  LayerSpec spec;
  spec.in_channels = 32;
  spec.out_channels = 64;
  spec.kernel = 3;
  spec.stride = 1;
  // Valid by construction, so value() cannot fail.
  return MakeRandomModel({spec}, /*seed=*/0).value();
}

}  // namespace sepconv
