#include "engine/model_spec.h"

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/internal/checked_math.h"
#include "engine/internal/validate.h"

namespace sepconv {
namespace {

using internal::CheckedAdd;
using internal::CheckedMul;

absl::Status LayerError(size_t index, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("layer ", index, ": ", what));
}

absl::Status CheckPositive(size_t index, absl::string_view name, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return LayerError(index, absl::StrCat(name, " must be positive, got ", value));
}

absl::Status CheckWeightSize(size_t index, absl::string_view name, size_t actual,
                             int64_t expected) {
  if (static_cast<int64_t>(actual) == expected) return absl::OkStatus();
  return LayerError(index, absl::StrCat(name, " has ", actual, " values, expected ", expected));
}

absl::Status ValidateLayerWeights(size_t i, const Layer& layer) {
  const LayerSpec& s = layer.spec;
  const LayerWeights& w = layer.weights;
  const int64_t mid = s.MidChannels();
  if (absl::Status st =
          CheckWeightSize(i, "depthwise weight", w.depthwise.size(), mid * s.kernel * s.kernel);
      !st.ok()) {
    return st;
  }
  if (absl::Status st =
          CheckWeightSize(i, "depthwise bias", w.depthwise_bias.size(), s.depthwise_bias ? mid : 0);
      !st.ok()) {
    return st;
  }
  if (absl::Status st =
          CheckWeightSize(i, "pointwise weight", w.pointwise.size(), s.out_channels * mid);
      !st.ok()) {
    return st;
  }
  return CheckWeightSize(i, "pointwise bias", w.pointwise_bias.size(),
                         s.pointwise_bias ? s.out_channels : 0);
}

// Output extent of one spatial dim, or an error naming the layer and value.
absl::StatusOr<int64_t> OutputExtent(size_t i, absl::string_view dim_name, int64_t in,
                                     const LayerSpec& s) {
  const int64_t pad = s.EffectivePadding();
  const int64_t reach = s.dilation * (s.kernel - 1) + 1;  // checked by ValidateLayerSpec
  const std::optional<int64_t> padded = CheckedAdd(in, 2 * pad);
  if (!padded) {
    return LayerError(i, absl::StrCat("input ", dim_name, " ", in, " overflows int64"));
  }
  if (*padded < reach) {
    return LayerError(i, absl::StrCat("input ", dim_name, " ", in, " (+ 2 * padding ", pad,
                                      ") is smaller than the kernel reach ", reach));
  }
  return (*padded - reach) / s.stride + 1;
}

absl::Status CheckElements(absl::string_view what, int64_t n, int64_t c, int64_t h, int64_t w) {
  if (CheckedMul({n, c, h, w, static_cast<int64_t>(sizeof(float))})) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " of shape [", n, ", ", c, ", ", h, ", ", w, "] overflows int64 bytes"));
}

}  // namespace

namespace internal {

absl::Status ValidateLayerSpec(size_t i, const LayerSpec& s) {
  if (absl::Status st = CheckPositive(i, "in_channels", s.in_channels); !st.ok()) return st;
  if (absl::Status st = CheckPositive(i, "out_channels", s.out_channels); !st.ok()) return st;
  if (s.kernel < 1 || s.kernel > 7 || s.kernel % 2 == 0) {
    return LayerError(i, absl::StrCat("kernel must be odd and in 1..7, got ", s.kernel));
  }
  if (absl::Status st = CheckPositive(i, "stride", s.stride); !st.ok()) return st;
  if (absl::Status st = CheckPositive(i, "dilation", s.dilation); !st.ok()) return st;
  if (absl::Status st = CheckPositive(i, "depth_multiplier", s.depth_multiplier); !st.ok()) {
    return st;
  }
  // Padding beyond the kernel's reach would only add rows of pure bias; it
  // is rejected (as by several oneDNN kernels) rather than half-supported.
  const std::optional<int64_t> reach_minus_one = CheckedMul({s.dilation, s.kernel - 1});
  if (!reach_minus_one) {
    return LayerError(i, absl::StrCat("dilation ", s.dilation, " overflows the kernel reach"));
  }
  if (s.padding < -1 || s.padding > *reach_minus_one) {
    return LayerError(i, absl::StrCat("padding must be -1 (same) or in 0..", *reach_minus_one,
                                      " (dilation * (kernel - 1)), got ", s.padding));
  }
  if (!CheckedMul({s.in_channels, s.depth_multiplier, s.kernel, s.kernel}) ||
      !CheckedMul({s.in_channels, s.depth_multiplier, s.out_channels})) {
    return LayerError(i, absl::StrCat("weight size overflows int64 (in_channels ", s.in_channels,
                                      ", depth_multiplier ", s.depth_multiplier, ", out_channels ",
                                      s.out_channels, ")"));
  }
  return absl::OkStatus();
}

}  // namespace internal

absl::string_view ActivationName(Activation activation) {
  switch (activation) {
    case Activation::kNone:
      return "none";
    case Activation::kRelu:
      return "relu";
    case Activation::kRelu6:
      return "relu6";
  }
  return "unknown";
}

absl::StatusOr<Activation> ParseActivation(absl::string_view name) {
  if (name == "none") return Activation::kNone;
  if (name == "relu") return Activation::kRelu;
  if (name == "relu6") return Activation::kRelu6;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown activation \"", name, "\" (expected none, relu or relu6)"));
}

absl::Status ValidateModel(const ModelSpec& model) {
  if (model.layers.empty()) return absl::InvalidArgumentError("model has no layers");
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    if (absl::Status st = internal::ValidateLayerSpec(i, layer.spec); !st.ok()) return st;
    if (i > 0 && layer.spec.in_channels != model.layers[i - 1].spec.out_channels) {
      return LayerError(
          i, absl::StrCat("in_channels ", layer.spec.in_channels, " does not match layer ", i - 1,
                          "'s out_channels ", model.layers[i - 1].spec.out_channels));
    }
    if (absl::Status st = ValidateLayerWeights(i, layer); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<Dims4> InferOutputShape(const ModelSpec& model, const Dims4& input) {
  if (absl::Status st = ValidateModel(model); !st.ok()) return st;
  const struct {
    const char* name;
    int64_t value;
  } dims[] = {{"n", input.n}, {"c", input.c}, {"h", input.h}, {"w", input.w}};
  for (const auto& d : dims) {
    if (d.value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input dim ", d.name, " must be positive, got ", d.value));
    }
  }
  if (input.c != model.InChannels()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input has ", input.c, " channels, the model expects ", model.InChannels()));
  }
  if (absl::Status st = CheckElements("input", input.n, input.c, input.h, input.w); !st.ok()) {
    return st;
  }
  Dims4 current = input;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerSpec& s = model.layers[i].spec;
    absl::StatusOr<int64_t> h = OutputExtent(i, "height", current.h, s);
    if (!h.ok()) return h.status();
    absl::StatusOr<int64_t> w = OutputExtent(i, "width", current.w, s);
    if (!w.ok()) return w.status();
    const std::string where = absl::StrCat("layer ", i, ": ");
    if (absl::Status st =
            CheckElements(where + "depthwise output", current.n, s.MidChannels(), *h, *w);
        !st.ok()) {
      return st;
    }
    if (absl::Status st = CheckElements(where + "output", current.n, s.out_channels, *h, *w);
        !st.ok()) {
      return st;
    }
    current = Dims4{current.n, s.out_channels, *h, *w};
  }
  return current;
}

}  // namespace sepconv
