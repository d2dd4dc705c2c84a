#include "engine/flops.h"

#include <cstdint>

#include "engine/random_model.h"
#include "gtest/gtest.h"

namespace sepconv {
namespace {

LayerSpec Spec(int64_t in, int64_t out, int64_t kernel = 3, int64_t stride = 1, int64_t dm = 1) {
  LayerSpec s;
  s.in_channels = in;
  s.out_channels = out;
  s.kernel = kernel;
  s.stride = stride;
  s.depth_multiplier = dm;
  return s;
}

ModelSpec Model(const std::vector<LayerSpec>& specs) { return MakeRandomModel(specs, 1).value(); }

TEST(CountFlopsTest, SeedLayerMatchesTheFormula) {
  // D_F = 112, D_K = 3, M = 32, N = 64.
  absl::StatusOr<FlopCount> f = CountFlops(Model({Spec(32, 64)}), Dims4{1, 32, 112, 112});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->depthwise, 2 * 112 * 112 * 9 * 32);
  EXPECT_EQ(f->pointwise, 2 * 112 * 112 * 32 * 64);
  EXPECT_EQ(f->standard, int64_t{2} * 112 * 112 * 9 * 32 * 64);
}

TEST(CountFlopsTest, UsesTheOutputSizeAndScalesWithBatch) {
  struct Case {
    LayerSpec spec;
    Dims4 input;
    int64_t out_hw;  // output size per spatial dim
  };
  const Case cases[] = {
      {Spec(128, 128, 3, 1), {16, 128, 56, 56}, 56}, {Spec(512, 512, 3, 2), {3, 512, 14, 14}, 7},
      {Spec(7, 33, 5, 2), {2, 7, 17, 17}, 9},        {Spec(8, 4, 7, 1, 3), {5, 8, 9, 9}, 9},
      {Spec(3, 5, 1, 2, 2), {1, 3, 10, 10}, 5},
  };
  for (const Case& c : cases) {
    const LayerSpec& s = c.spec;
    absl::StatusOr<FlopCount> f = CountFlops(Model({s}), c.input);
    ASSERT_TRUE(f.ok()) << f.status();
    const int64_t positions = c.input.n * c.out_hw * c.out_hw, k2 = s.kernel * s.kernel;
    EXPECT_EQ(f->depthwise, 2 * positions * k2 * s.in_channels * s.depth_multiplier);
    EXPECT_EQ(f->pointwise, 2 * positions * s.in_channels * s.depth_multiplier * s.out_channels);
    EXPECT_EQ(f->standard, 2 * positions * k2 * s.in_channels * s.out_channels);
  }
}

TEST(CountFlopsTest, SeparableOverStandardIsOneOverNPlusOneOverKSquared) {
  for (int64_t k : {1, 3, 5, 7}) {
    for (int64_t n : {1, 16, 64, 1000}) {
      absl::StatusOr<FlopCount> f = CountFlops(Model({Spec(24, n, k)}), Dims4{2, 24, 15, 15});
      ASSERT_TRUE(f.ok()) << f.status();
      const double ratio =
          static_cast<double>(f->depthwise + f->pointwise) / static_cast<double>(f->standard);
      EXPECT_NEAR(ratio, 1.0 / n + 1.0 / (k * k), 1e-12) << "N=" << n << " K=" << k;
    }
  }
}

TEST(CountFlopsTest, SumsLayersOfAChain) {
  const ModelSpec model = Model({Spec(32, 64), Spec(64, 128, 3, 2)});
  absl::StatusOr<FlopCount> f = CountFlops(model, Dims4{1, 32, 56, 56});
  ASSERT_TRUE(f.ok());
  const int64_t a = 56 * 56, b = 28 * 28;
  EXPECT_EQ(f->depthwise, 2 * (a * 9 * 32 + b * 9 * 64));
  EXPECT_EQ(f->pointwise, 2 * (a * 32 * 64 + b * 64 * 128));
  EXPECT_EQ(f->standard, 2 * (a * 9 * 32 * 64 + b * 9 * 64 * 128));
}

TEST(CountFlopsTest, PropagatesShapeErrorsAndOverflow) {
  const ModelSpec model = Model({Spec(32, 64)});
  EXPECT_EQ(CountFlops(model, Dims4{1, 31, 8, 8}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Elements fit in int64, FLOPs (x 2 x 9 x 64) do not.
  const absl::Status big =
      CountFlops(model, Dims4{int64_t{1} << 20, 32, 1 << 14, 1 << 14}).status();
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big.message().find("FLOP count overflows"), absl::string_view::npos) << big;
}

}  // namespace
}  // namespace sepconv
