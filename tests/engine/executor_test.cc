#include "engine/executor.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/flops.h"
#include "engine/internal/onednn_executor.h"
#include "engine/internal/plan_tuner.h"
#include "engine/random_model.h"
#include "engine/reference.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_util.h"

namespace sepconv {
namespace {

using ::testing::HasSubstr;
using testing::Spec;

constexpr double kMaxRelativeError = 1e-5;

// max|a - b| / max(max|b|, tiny): relative to the output's scale, so that
// near-zero elements (ReLU) do not blow the ratio up.
double RelativeError(const std::vector<float>& actual, const std::vector<float>& expected) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff = std::max(diff, std::fabs(double{actual[i]} - double{expected[i]}));
    scale = std::max(scale, std::fabs(double{expected[i]}));
  }
  return diff / scale;
}

// Deterministic input in [-1, 1) (a simple LCG; only needs to be varied).
std::vector<float> Input(const Dims4& d, uint32_t seed) {
  std::vector<float> values(static_cast<size_t>(d.n * d.c * d.h * d.w));
  uint32_t state = seed * 2654435761u + 1;
  for (float& v : values) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / static_cast<float>(1 << 23) - 1.0f;
  }
  return values;
}

std::unique_ptr<Executor> MakeExecutor(const ModelSpec& model, ExecutorOptions options = {},
                                       ActivationLayout layout = ActivationLayout::kAuto,
                                       int64_t micro_batch = 0) {
  auto executor = internal::CreateOneDnnExecutor(std::make_shared<const ModelSpec>(model), options,
                                                 OneDnnTuning{layout, micro_batch});
  EXPECT_TRUE(executor.ok()) << executor.status();
  return executor.ok() ? std::move(*executor) : nullptr;
}

// Runs `executor` on `input` and checks it against the reference and the
// FLOP count; returns the engine's output.
std::vector<float> RunAndCheck(Executor& executor, const Dims4& input_dims,
                               const std::vector<float>& input) {
  const ModelSpec& model = executor.model();
  const Dims4 out_dims = InferOutputShape(model, input_dims).value();
  std::vector<float> output(static_cast<size_t>(Elements(out_dims)), NAN);
  absl::StatusOr<FlopCount> flops = executor.Run(input_dims, input.data(), output.data());
  EXPECT_TRUE(flops.ok()) << flops.status();
  if (!flops.ok()) return output;
  const FlopCount expected_flops = CountFlops(model, input_dims).value();
  EXPECT_EQ(flops->depthwise, expected_flops.depthwise);
  EXPECT_EQ(flops->pointwise, expected_flops.pointwise);
  EXPECT_EQ(flops->standard, expected_flops.standard);
  const std::vector<float> expected = ReferenceForward(model, input_dims, input).value();
  EXPECT_LE(RelativeError(output, expected), kMaxRelativeError);
  return output;
}

constexpr ActivationLayout kLayouts[] = {
    ActivationLayout::kAuto,      ActivationLayout::kNhwc,       ActivationLayout::kBlocked8,
    ActivationLayout::kBlocked16, ActivationLayout::kNhwcDirect, ActivationLayout::kFusedNchw};

// Sweep over (kernel, stride); each test loops over dilation, depth
// multiplier (1, and 2 and 3, which run in parts), biases and activations on
// an odd spatial size with channel counts that are not multiples of 8 or 16,
// cycling the internal layouts.
class ExecutorSweepTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(ExecutorSweepTest, MatchesTheReference) {
  const auto [kernel, stride] = GetParam();
  const Activation activations[] = {Activation::kNone, Activation::kRelu, Activation::kRelu6};
  int variant = 0;
  for (int dilation : {1, 2}) {
    for (int dm : {1, 2, 3}) {
      for (bool bias : {true, false}) {
        for (Activation act : activations) {
          LayerSpec s = Spec(5 + 14 * (variant % 2), 7 + 10 * (variant % 3));
          s.kernel = kernel;
          s.stride = stride;
          s.dilation = dilation;
          s.depth_multiplier = dm;
          s.depthwise_bias = bias;
          s.pointwise_bias = !bias || variant % 2 == 0;
          s.depthwise_activation = act;
          s.pointwise_activation = activations[(variant + 1) % 3];
          SCOPED_TRACE(absl::StrCat("K", kernel, " s", stride, " d", dilation, " dm", dm, " bias",
                                    bias, " act", ActivationName(act), " C", s.in_channels, "->",
                                    s.out_channels));
          const ModelSpec model = MakeRandomModel({s}, variant).value();
          const ActivationLayout layout = kLayouts[variant % std::size(kLayouts)];
          SCOPED_TRACE(absl::StrCat("layout ", static_cast<int>(layout)));
          std::unique_ptr<Executor> executor = MakeExecutor(model, {}, layout);
          ASSERT_NE(executor, nullptr);
          const Dims4 dims{1 + variant % 3, s.in_channels, 13, 11};
          // Inputs of scale 4 so that ReLU6 clips somewhere.
          std::vector<float> input = Input(dims, variant);
          for (float& v : input) v *= 4;
          RunAndCheck(*executor, dims, input);
          ++variant;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(KernelsAndStrides, ExecutorSweepTest,
                         ::testing::Combine(::testing::Values(1, 3, 5, 7), ::testing::Values(1, 2)),
                         [](const auto& info) {
                           return absl::StrCat("K", std::get<0>(info.param), "S",
                                               std::get<1>(info.param));
                         });

TEST(ExecutorTest, EveryLayoutMatchesTheReference) {
  LayerSpec s = Spec(19, 33);
  s.depthwise_activation = Activation::kRelu6;
  const ModelSpec model = MakeRandomModel({s, Spec(33, 18)}, 3).value();
  for (ActivationLayout layout : kLayouts) {
    SCOPED_TRACE(static_cast<int>(layout));
    std::unique_ptr<Executor> executor = MakeExecutor(model, {}, layout);
    ASSERT_NE(executor, nullptr);
    const Dims4 dims{3, 19, 15, 9};
    RunAndCheck(*executor, dims, Input(dims, 5));
  }
}

TEST(ExecutorTest, BatchSizesOneToEight) {
  const ModelSpec model = MakeRandomModel({Spec(20, 24)}, 11).value();
  std::unique_ptr<Executor> executor = MakeExecutor(model);
  ASSERT_NE(executor, nullptr);
  for (int64_t n = 1; n <= 8; ++n) {
    SCOPED_TRACE(n);
    const Dims4 dims{n, 20, 9, 7};
    RunAndCheck(*executor, dims, Input(dims, static_cast<uint32_t>(n)));
  }
}

TEST(ExecutorTest, MultiLayerChains) {
  LayerSpec a = Spec(3, 17);
  a.stride = 2;
  a.pointwise_activation = Activation::kRelu6;
  LayerSpec b = Spec(17, 8);
  b.kernel = 5;
  b.padding = 0;
  b.depth_multiplier = 2;
  b.depthwise_activation = Activation::kRelu;
  LayerSpec c = Spec(8, 21);
  c.kernel = 7;
  c.dilation = 2;
  c.stride = 2;
  c.pointwise_bias = false;
  LayerSpec d = Spec(21, 32);  // grows the buffer back
  d.kernel = 1;
  const ModelSpec model = MakeRandomModel({a, b, c, d}, 5).value();
  std::unique_ptr<Executor> executor = MakeExecutor(model);
  ASSERT_NE(executor, nullptr);
  for (const Dims4& dims : {Dims4{2, 3, 31, 29}, Dims4{1, 3, 17, 40}}) {
    RunAndCheck(*executor, dims, Input(dims, 9));
  }
}

void CheckBatchedItems(const ModelSpec& model, ActivationLayout layout, int64_t micro_batch);

TEST(ExecutorTest, BatchedItemsEachGetTheirOwnOutput) {
  LayerSpec s = Spec(12, 20);
  s.stride = 2;
  LayerSpec last = Spec(20, 9);
  last.pointwise_activation = Activation::kRelu6;
  const ModelSpec model = MakeRandomModel({s, last}, 21).value();
  for (ActivationLayout layout : kLayouts) {
    SCOPED_TRACE(static_cast<int>(layout));
    CheckBatchedItems(model, layout, /*micro_batch=*/0);
  }
}

// Micro-batches that split items and span item boundaries (9 samples in
// items of 1, 3, 2, 3).
TEST(ExecutorTest, MicroBatchesSplitAndSpanItems) {
  LayerSpec s = Spec(12, 20);
  s.stride = 2;
  const ModelSpec model = MakeRandomModel({s, Spec(20, 9)}, 22).value();
  for (int64_t micro : {1, 2, 4, 100}) {
    for (ActivationLayout layout : {ActivationLayout::kBlocked16, ActivationLayout::kNhwcDirect}) {
      SCOPED_TRACE(absl::StrCat("micro ", micro, " layout ", static_cast<int>(layout)));
      CheckBatchedItems(model, layout, micro);
    }
  }
}

// A batch whose activations exceed kMicroBatchBytes is split, the
// micro-batch chosen by timing (1, 2 or the whole batch of 3 here): the
// answer is the reference's whichever wins, again once remembered.
TEST(ExecutorTest, TunedMicroBatchesMatchTheReference) {
  internal::ClearTunedChoices();
  const ModelSpec model = MakeRandomModel({Spec(8, 8)}, 24).value();
  const Dims4 dims{3, 8, 400, 400};  // 15 MB of activations per sample
  ASSERT_LT(MicroBatchSize(model, dims, dims.n, 0), dims.n);
  std::unique_ptr<Executor> executor = MakeExecutor(model);
  ASSERT_NE(executor, nullptr);
  const std::vector<float> input = Input(dims, 8);
  const std::vector<float> first = RunAndCheck(*executor, dims, input);
  EXPECT_EQ(RunAndCheck(*executor, dims, input), first);
  internal::ClearTunedChoices();
}

void CheckBatchedItems(const ModelSpec& model, ActivationLayout layout, int64_t micro_batch) {
  std::unique_ptr<Executor> executor = MakeExecutor(model, {/*threads=*/2}, layout, micro_batch);
  ASSERT_NE(executor, nullptr);
  const int64_t c = 12, h = 11, w = 13;
  const Dims4 out_one = InferOutputShape(model, Dims4{1, c, h, w}).value();
  const int64_t out_size = out_one.c * out_one.h * out_one.w;

  const std::vector<int64_t> samples = {1, 3, 2, 3};
  std::vector<std::vector<float>> inputs, outputs;
  std::vector<BatchItem> items;
  for (size_t i = 0; i < samples.size(); ++i) {
    inputs.push_back(Input(Dims4{samples[i], c, h, w}, 100 + i));
    outputs.emplace_back(samples[i] * out_size, NAN);
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    items.push_back(BatchItem{inputs[i].data(), outputs[i].data(), samples[i]});
  }
  absl::StatusOr<FlopCount> flops = executor->Run(Dims4{0, c, h, w}, items);
  ASSERT_TRUE(flops.ok()) << flops.status();
  EXPECT_EQ(flops->pointwise, CountFlops(model, Dims4{9, c, h, w}).value().pointwise);
  for (size_t i = 0; i < samples.size(); ++i) {
    SCOPED_TRACE(i);
    const Dims4 dims{samples[i], c, h, w};
    if (micro_batch == 0) {
      std::vector<float> single(samples[i] * out_size, NAN);
      ASSERT_TRUE(executor->Run(dims, inputs[i].data(), single.data()).ok());
      EXPECT_EQ(outputs[i], single);  // bit-identical to its own run
    }
    EXPECT_LE(RelativeError(outputs[i], ReferenceForward(model, dims, inputs[i]).value()),
              kMaxRelativeError);
  }
}

TEST(ExecutorTest, PlanCacheReuseAndEviction) {
  const ModelSpec model = MakeRandomModel({Spec(16, 32)}, 2).value();
  for (int capacity : {1, 64}) {
    SCOPED_TRACE(capacity);
    ExecutorOptions options;
    options.max_cached_shapes = capacity;
    std::unique_ptr<Executor> executor = MakeExecutor(model, options);
    ASSERT_NE(executor, nullptr);
    const Dims4 a{2, 16, 10, 10}, b{1, 16, 7, 12};
    const std::vector<float> in_a = Input(a, 1), in_b = Input(b, 2);
    const std::vector<float> first_a = RunAndCheck(*executor, a, in_a);
    const std::vector<float> first_b = RunAndCheck(*executor, b, in_b);
    for (int round = 0; round < 3; ++round) {
      EXPECT_EQ(RunAndCheck(*executor, a, in_a), first_a);
      EXPECT_EQ(RunAndCheck(*executor, b, in_b), first_b);
    }
    // Same shape, new data: the cached plan must not hold stale results.
    const std::vector<float> other = Input(a, 77);
    EXPECT_NE(RunAndCheck(*executor, a, other), first_a);
  }
}

// Plans of several shapes share one arena: each finds it holding the other
// shapes' data (blocked layouts' padded channels included: 12 and 20
// channels are no multiple of 8 or 16) and still gives the reference's
// answer, bit-identical to plans that own their buffers; a byte budget so
// small that every new plan evicts the others (and frees the arena) changes
// nothing either.
TEST(ExecutorTest, SharedArenaMatchesPerPlanBuffers) {
  LayerSpec s = Spec(12, 20);
  s.stride = 2;
  const ModelSpec model = MakeRandomModel({s, Spec(20, 12)}, 23).value();
  const Dims4 shapes[] = {{3, 12, 21, 19}, {1, 12, 9, 9}, {2, 12, 30, 8}, {1, 12, 9, 9}};
  for (ActivationLayout layout : kLayouts) {
    for (int64_t max_bytes : {int64_t{1} << 30, int64_t{0}}) {
      SCOPED_TRACE(absl::StrCat("layout ", static_cast<int>(layout), " bytes ", max_bytes));
      ExecutorOptions options;
      options.max_cached_plan_bytes = max_bytes;
      auto shared = internal::CreateOneDnnExecutor(std::make_shared<const ModelSpec>(model),
                                                   options, OneDnnTuning{layout, 0, false});
      auto own = internal::CreateOneDnnExecutor(std::make_shared<const ModelSpec>(model), options,
                                                OneDnnTuning{layout, 0, true});
      ASSERT_TRUE(shared.ok() && own.ok());
      for (int round = 0; round < 2; ++round) {
        for (const Dims4& dims : shapes) {
          const std::vector<float> input = Input(dims, static_cast<uint32_t>(dims.h + round));
          EXPECT_EQ(RunAndCheck(**shared, dims, input), RunAndCheck(**own, dims, input));
        }
      }
    }
  }
}

TEST(ExecutorTest, ThreadOptionsGiveTheSameAnswer) {
  const ModelSpec model = DefaultModel();
  const Dims4 dims{2, 32, 12, 12};
  const std::vector<float> input = Input(dims, 4);
  for (int threads : {0, 1, 2}) {
    ExecutorOptions options;
    options.threads = threads;
    std::unique_ptr<Executor> executor = MakeExecutor(model, options);
    ASSERT_NE(executor, nullptr);
    RunAndCheck(*executor, dims, input);
  }
}

TEST(ExecutorTest, ErrorsAreStatusesNamingTheProblem) {
  const ModelSpec model = MakeRandomModel({Spec(4, 8)}, 0).value();
  std::unique_ptr<Executor> executor = MakeExecutor(model);
  ASSERT_NE(executor, nullptr);
  std::vector<float> in(4 * 8 * 8), out(8 * 8 * 8);
  auto expect = [](const absl::Status& status, const char* fragment) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(fragment));
  };
  expect(executor->Run(Dims4{1, 3, 8, 8}, in.data(), out.data()).status(),
         "input has 3 channels, the model expects 4");
  expect(executor->Run(Dims4{0, 4, 8, 8}, in.data(), out.data()).status(),
         "samples must be positive, got 0");
  expect(executor->Run(Dims4{1, 4, 0, 8}, in.data(), out.data()).status(),
         "input dim h must be positive, got 0");
  expect(executor->Run(Dims4{1, 4, 8, 8}, nullptr, out.data()).status(), "null input");
  expect(executor->Run(Dims4{1, 4, 8, 8}, absl::Span<const BatchItem>()).status(),
         "at least one batch item");
  LayerSpec s = Spec(4, 8);
  s.kernel = 5;
  s.padding = 0;
  std::unique_ptr<Executor> strict = MakeExecutor(MakeRandomModel({s}, 0).value());
  ASSERT_NE(strict, nullptr);
  expect(strict->Run(Dims4{1, 4, 3, 8}, in.data(), out.data()).status(),
         "input height 3 (+ 2 * padding 0) is smaller than the kernel reach 5");
  // The executor still works after errors.
  RunAndCheck(*executor, Dims4{1, 4, 8, 8}, Input(Dims4{1, 4, 8, 8}, 1));
}

TEST(ExecutorTest, WarmBuildsPlansThatRunCorrectly) {
  const ModelSpec model = MakeRandomModel({Spec(12, 20), Spec(20, 9)}, 5).value();
  for (int budget_ms : {0, 300}) {
    SCOPED_TRACE(budget_ms);
    ExecutorOptions options;
    options.tune_budget_ms = budget_ms;
    std::unique_ptr<Executor> executor = MakeExecutor(model, options);
    ASSERT_NE(executor, nullptr);
    const Dims4 shapes[] = {{1, 12, 11, 13}, {3, 12, 8, 8}};
    ASSERT_TRUE(executor->Warm(shapes).ok());
    for (const Dims4& dims : shapes) RunAndCheck(*executor, dims, Input(dims, 9));
    const Dims4 wrong[] = {{1, 12, 8, 8}, {1, 5, 8, 8}};
    const absl::Status status = executor->Warm(wrong);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("the model expects 12"));
  }
}

// Create warms ExecutorOptions.warm_shapes: their layouts are then chosen,
// so building those plans again times nothing.
TEST(ExecutorTest, CreateWarmsTheGivenShapes) {
  internal::ClearTunedChoices();
  const ModelSpec model = MakeRandomModel({Spec(12, 20)}, 6).value();
  const Dims4 warmed{1, 12, 10, 10}, cold{1, 12, 7, 7};
  ExecutorOptions options;
  options.warm_shapes = {warmed};
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(std::make_shared<const ModelSpec>(model), options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  WeightCache weights(model, engine);
  internal::Arena arena;
  auto tune = [&](const Dims4& dims) {
    return internal::BuildTunedPlan(model, dims, CountFlops(model, dims).value(), weights, engine,
                                    stream, arena, absl::Seconds(1))
        .candidates_timed;
  };
  EXPECT_EQ(tune(warmed), 0);
  EXPECT_GE(tune(cold), 1);
  RunAndCheck(**executor, warmed, Input(warmed, 3));
  internal::ClearTunedChoices();
}

// on_plan_tuned reports each shape the executor's tuner times, once: not a
// shape run again, nor a choice another executor already timed.
TEST(ExecutorTest, ReportsEachTunedShapeOnce) {
  internal::ClearTunedChoices();
  const ModelSpec model = MakeRandomModel({Spec(8, 16), Spec(16, 8)}, 7).value();
  std::vector<PlanReport> reports;
  ExecutorOptions options;
  options.threads = 2;
  options.tune_budget_ms = 50;
  options.on_plan_tuned = [&](const PlanReport& report) { reports.push_back(report); };
  std::unique_ptr<Executor> first = MakeExecutor(model, options);
  ASSERT_NE(first, nullptr);
  const Dims4 a{1, 8, 9, 11}, b{2, 8, 6, 6};
  RunAndCheck(*first, a, Input(a, 1));
  RunAndCheck(*first, a, Input(a, 2));
  RunAndCheck(*first, b, Input(b, 3));
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].input, a);
  EXPECT_EQ(reports[1].input, b);
  for (const PlanReport& report : reports) {
    EXPECT_FALSE(report.kernels.empty());
    EXPECT_GE(report.threads, 1);
    EXPECT_LE(report.threads, 2);
    EXPECT_GE(report.candidates_timed, 1);
    // A runner-up exactly when more than one candidate was timed.
    EXPECT_EQ(report.runner_up.empty(), report.candidates_timed == 1) << report.runner_up;
    if (!report.runner_up.empty()) {
      EXPECT_THAT(report.runner_up, ::testing::HasSubstr(" on "));
      EXPECT_GE(report.runner_up_ratio, 1.0);
      // At least 3 timed rounds, whatever the 50 ms budget left.
      EXPECT_GE(report.rounds, 3);
    }
    EXPECT_GT(report.spent, absl::ZeroDuration());
  }
  std::unique_ptr<Executor> second = MakeExecutor(model, options);
  ASSERT_NE(second, nullptr);
  RunAndCheck(*second, a, Input(a, 4));
  EXPECT_EQ(reports.size(), 2u);
  internal::ClearTunedChoices();
}

TEST(ExecutorTest, CreateRejectsInvalidModels) {
  ModelSpec model = MakeRandomModel({Spec(4, 8)}, 0).value();
  model.layers[0].weights.pointwise.pop_back();
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(std::make_shared<const ModelSpec>(model));
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(executor.status().message()), HasSubstr("pointwise weight"));
  EXPECT_EQ(Executor::Create(nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  ExecutorOptions options;
  options.threads = -1;
  EXPECT_EQ(
      Executor::Create(std::make_shared<const ModelSpec>(DefaultModel()), options).status().code(),
      absl::StatusCode::kInvalidArgument);
  options.threads = 0;
  options.tune_budget_ms = -1;
  EXPECT_EQ(
      Executor::Create(std::make_shared<const ModelSpec>(DefaultModel()), options).status().code(),
      absl::StatusCode::kInvalidArgument);
  options.tune_budget_ms = 0;
  options.max_cached_plan_bytes = -1;
  EXPECT_EQ(
      Executor::Create(std::make_shared<const ModelSpec>(DefaultModel()), options).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sepconv
