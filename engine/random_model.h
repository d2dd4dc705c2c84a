#ifndef SEPCONV_ENGINE_RANDOM_MODEL_H_
#define SEPCONV_ENGINE_RANDOM_MODEL_H_

// Deterministic seeded weights, for the built-in default model, demos,
// benchmarks and configs that describe layers without an ONNX file.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_spec.h"

namespace sepconv {

// Fills every layer's weights like PyTorch's default Conv2d init (uniform in
// +-1/sqrt(fan_in)) from a fixed-algorithm generator seeded with `seed`, so
// the same specs and seed give the same weights on every machine. Validates.
absl::StatusOr<ModelSpec> MakeRandomModel(const std::vector<LayerSpec>& layers, uint64_t seed);

// The built-in default model `sepconv`: the reference module with in_ch 32,
// out_ch 64, kernel 3, stride 1, biases, seed 0.
ModelSpec DefaultModel();

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_RANDOM_MODEL_H_
