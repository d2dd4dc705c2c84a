#include "engine/flops.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "engine/internal/checked_math.h"

namespace sepconv {

using internal::CheckedMul;

absl::StatusOr<FlopCount> CountFlops(const ModelSpec& model, const Dims4& input) {
  // Validates the model and the input, and bounds every element count.
  if (absl::StatusOr<Dims4> out = InferOutputShape(model, input); !out.ok()) {
    return out.status();
  }
  FlopCount total;
  Dims4 current = input;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerSpec& s = model.layers[i].spec;
    const Dims4 out = LayerOutputShape(s, current);
    const int64_t ho = out.h, wo = out.w;
    const int64_t k2 = s.kernel * s.kernel;
    const std::optional<int64_t> dw = CheckedMul({2, current.n, ho, wo, k2, s.MidChannels()});
    const std::optional<int64_t> pw =
        CheckedMul({2, current.n, ho, wo, s.MidChannels(), s.out_channels});
    const std::optional<int64_t> standard =
        CheckedMul({2, current.n, ho, wo, k2, s.in_channels, s.out_channels});
    FlopCount layer;
    if (dw && pw && standard) layer = FlopCount{*dw, *pw, *standard};
    if (!dw || !pw || !standard || !internal::CheckedAdd(total.depthwise, layer.depthwise) ||
        !internal::CheckedAdd(total.pointwise, layer.pointwise) ||
        !internal::CheckedAdd(total.standard, layer.standard)) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", i, ": FLOP count overflows int64 for input [", input.n, ", ",
                       input.c, ", ", input.h, ", ", input.w, "]"));
    }
    total += layer;
    current = Dims4{current.n, s.out_channels, ho, wo};
  }
  return total;
}

}  // namespace sepconv
