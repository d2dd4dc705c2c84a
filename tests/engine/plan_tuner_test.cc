// The layout tuner: it times candidates once per (layer shapes, input shape,
// threads), remembers the choice, returns a plan in that layout that gives
// the reference's answer, and stays within its budget's rules.

#include "engine/internal/plan_tuner.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "engine/flops.h"
#include "engine/internal/onednn_weights.h"
#include "engine/random_model.h"
#include "engine/reference.h"
#include "gtest/gtest.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "tests/testing/temp_tree.h"

namespace sepconv {
namespace internal {
namespace {

LayerSpec Spec(int64_t in, int64_t out, int64_t dm = 1) {
  LayerSpec s;
  s.in_channels = in;
  s.out_channels = out;
  s.depth_multiplier = dm;
  s.pointwise_activation = Activation::kRelu;
  return s;
}

class PlanTunerTest : public ::testing::Test {
 protected:
  void SetUp() override { ClearTunedChoices(); }
  void TearDown() override {
    ASSERT_TRUE(UseTuningCache("").ok());
    ClearTunedChoices();
  }

  TuneResult Tune(const ModelSpec& model, const Dims4& input, absl::Duration budget) {
    return BuildTunedPlan(model, input, CountFlops(model, input).value(), *weights_, engine_,
                          stream_, arena_, budget);
  }

  // Runs `plan` on a varied input; checks the reference's answer and that no
  // primitive is oneDNN's reference kernel.
  void ExpectCorrect(const ModelSpec& model, const Dims4& input, Plan& plan) {
    std::vector<float> in(static_cast<size_t>(input.n * input.c * input.h * input.w));
    for (size_t i = 0; i < in.size(); ++i) in[i] = std::sin(0.37f * static_cast<float>(i));
    const Dims4 out = InferOutputShape(model, input).value();
    std::vector<float> result(static_cast<size_t>(out.n * out.c * out.h * out.w), NAN);
    const BatchItem item{in.data(), result.data(), input.n};
    plan.Execute(absl::MakeConstSpan(&item, 1), stream_, arena_);
    const std::vector<float> expected = ReferenceForward(model, input, in).value();
    double diff = 0, scale = 1e-30;
    for (size_t i = 0; i < expected.size(); ++i) {
      diff = std::max(diff, std::fabs(double{result[i]} - double{expected[i]}));
      scale = std::max(scale, std::fabs(double{expected[i]}));
    }
    EXPECT_LE(diff / scale, 1e-5);
    for (const std::string& impl : plan.ImplNames()) {
      EXPECT_FALSE(absl::StartsWith(impl, "ref")) << impl;
    }
  }

  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  std::unique_ptr<WeightCache> weights_;
  Arena arena_;
};

// Only plans whose OpenMP threads spin after them pay the charge.
TEST(SpinChargeTest, ChargesOnlyOneDnnPlansOnMoreThanOneThread) {
  EXPECT_EQ(SpinCharge(PlanChoice(ActivationLayout::kFusedNchw, int64_t{128} << 10, 2)), 1.0);
  EXPECT_EQ(SpinCharge(PlanChoice(ActivationLayout::kFusedNchw, 0, 1)), 1.0);
  EXPECT_EQ(SpinCharge(PlanChoice(ActivationLayout::kBlocked8, 0, 1)), 1.0);
  EXPECT_EQ(SpinCharge(PlanChoice(ActivationLayout::kBlocked8, 0, 2)), kSpinCharge);
  EXPECT_EQ(SpinCharge(PlanChoice(ActivationLayout::kNhwc, 0, 4)), kSpinCharge);
  EXPECT_GT(kSpinCharge, 1.0);
}

// The first run after the flush's buffer is made can be an outlier: it must
// not decide. Candidate 0 is the fastest, but the first run of all takes
// 10 ms more. The slowest drops out after one run (over twice the leader),
// the second after two (over 1.25x).
TEST(TimeRoundsTest, TheFirstRunIsUntimedAndHopelessCandidatesDropOut) {
  const absl::Duration normal[] = {absl::Milliseconds(1), absl::Milliseconds(1.5),
                                   absl::Milliseconds(5)};
  std::vector<CandidateTiming> candidates(3);
  for (CandidateTiming& c : candidates) c.choice = PlanChoice(ActivationLayout::kBlocked16, 0, 1);
  std::vector<size_t> runs;
  TimeRounds(
      absl::MakeSpan(candidates),
      [&](size_t i) {
        runs.push_back(i);
        return normal[i] + (runs.size() == 1 ? absl::Milliseconds(10) : absl::ZeroDuration());
      },
      absl::InfiniteFuture());
  EXPECT_EQ(candidates[0].best, normal[0]);
  EXPECT_EQ(candidates[0].runs, 5);
  EXPECT_EQ(candidates[1].best, normal[1]);
  EXPECT_EQ(candidates[1].runs, 2);
  EXPECT_EQ(candidates[2].runs, 1);
  EXPECT_EQ(runs.size(), 1u + 5 + 2 + 1);
  EXPECT_EQ(runs.front(), 0u);
}

// Three rounds at least, whatever the deadline; a lone candidate is not run.
TEST(TimeRoundsTest, ThreeRoundsPastTheDeadlineAndNoneForALoneCandidate) {
  std::vector<CandidateTiming> candidates(2);
  int runs = 0;
  auto run = [&](size_t i) {
    ++runs;
    return absl::Milliseconds(1 + 0.1 * static_cast<double>(i));
  };
  TimeRounds(absl::MakeSpan(candidates), run, absl::InfinitePast());
  EXPECT_EQ(candidates[0].runs, 3);
  EXPECT_EQ(candidates[1].runs, 3);
  EXPECT_EQ(runs, 1 + 3 + 3);
  runs = 0;
  TimeRounds(absl::MakeSpan(candidates).subspan(0, 1), run, absl::InfiniteFuture());
  EXPECT_EQ(runs, 0);
}

TEST_F(PlanTunerTest, TimesOnceThenReusesTheChoice) {
  for (int64_t dm : {1, 2}) {
    SCOPED_TRACE(dm);
    const ModelSpec model = MakeRandomModel({Spec(19, 24), Spec(24, 13, dm)}, 3).value();
    weights_ = std::make_unique<WeightCache>(model, engine_);
    const Dims4 input{2, 19, 15, 17};
    TuneResult first = Tune(model, input, absl::Seconds(10));
    ASSERT_NE(first.plan, nullptr);
    // Every candidate fits a 10 s budget; fallbacks to nhwc are timed once.
    // At most: the ISA's layout and the fused kernels at two tile sizes, on
    // the executor's threads and (with more than one) on one thread, the
    // fused kernels streaming their output at both tile sizes, then
    // nhwc_direct, nhwc and nChw8c.
    EXPECT_GE(first.candidates_timed, 2);
    EXPECT_LE(first.candidates_timed, 11);
    EXPECT_NE(first.choice.layout, ActivationLayout::kAuto);
    EXPECT_EQ(first.plan->layout(), first.choice.layout);
    // All 5 rounds fit the budget, and the chosen plan ran in each (a
    // candidate leaves the rounds only when slower than the leader was).
    EXPECT_EQ(first.rounds, 5);
    ASSERT_TRUE(first.runner_up.has_value());
    EXPECT_FALSE(*first.runner_up == first.choice);
    EXPECT_GE(first.runner_up_ratio, 1.0);
    ExpectCorrect(model, input, *first.plan);

    TuneResult again = Tune(model, input, absl::Seconds(10));
    EXPECT_EQ(again.candidates_timed, 0);
    EXPECT_EQ(again.choice.layout, first.choice.layout);
    ASSERT_NE(again.plan, nullptr);
    EXPECT_EQ(again.plan->layout(), first.choice.layout);
    ExpectCorrect(model, input, *again.plan);

    // Another batch size of the image shape takes the same layout, untimed
    // (a sample's result must not depend on its batch).
    const Dims4 batch{5, 19, 15, 17};
    TuneResult batched = Tune(model, batch, absl::Seconds(10));
    EXPECT_EQ(batched.candidates_timed, 0);
    EXPECT_EQ(batched.plan->layout(), first.choice.layout);
    ExpectCorrect(model, batch, *batched.plan);

    // Another image shape is a new choice.
    const Dims4 other{1, 19, 9, 9};
    TuneResult second_shape = Tune(model, other, absl::Seconds(10));
    EXPECT_GE(second_shape.candidates_timed, 2);
    ExpectCorrect(model, other, *second_shape.plan);
  }
}

TEST_F(PlanTunerTest, ZeroBudgetTimesOnlyTheFirstCandidate) {
  const ModelSpec model = MakeRandomModel({Spec(16, 32)}, 1).value();
  weights_ = std::make_unique<WeightCache>(model, engine_);
  const Dims4 input{1, 16, 12, 12};
  TuneResult result = Tune(model, input, absl::ZeroDuration());
  EXPECT_EQ(result.candidates_timed, 1);
  EXPECT_EQ(result.rounds, 0);
  EXPECT_FALSE(result.runner_up.has_value());
  EXPECT_EQ(result.choice.layout, result.plan->layout());
  ExpectCorrect(model, input, *result.plan);
}

// The tuner with a tuning cache in a file of the test's own, on one model and
// input shape.
class TuningCachePlanTest : public PlanTunerTest {
 protected:
  void SetUp() override {
    PlanTunerTest::SetUp();
    ASSERT_TRUE(UseTuningCache(path_).ok());
    weights_ = std::make_unique<WeightCache>(model_, engine_);
  }
  TuneResult Tune(const Dims4& input) {
    return PlanTunerTest::Tune(model_, input, absl::Seconds(2));
  }
  // As a new process: nothing remembered but the file.
  void Restart() {
    ClearTunedChoices();
    ASSERT_TRUE(UseTuningCache(path_).ok());
  }

  testing::TempTree tree_{"plan_tuner_"};
  const std::string path_ = (tree_.path() / "cache.tsv").string();
  const ModelSpec model_ = MakeRandomModel({Spec(16, 24)}, 5).value();
  const Dims4 input_{1, 16, 14, 14};
};

// A restart with the same tuning cache builds the shape as the first process
// chose it, without timing, and says so once.
TEST_F(TuningCachePlanTest, KeepsAChoiceForTheNextProcess) {
  TuneResult first = Tune(input_);
  EXPECT_GE(first.candidates_timed, 2);
  EXPECT_FALSE(first.from_tuning_cache);
  EXPECT_TRUE(first.tuning_cache_status.ok()) << first.tuning_cache_status;

  Restart();
  TuneResult next = Tune(input_);
  EXPECT_EQ(next.candidates_timed, 0);
  EXPECT_TRUE(next.from_tuning_cache);
  EXPECT_TRUE(next.choice == first.choice) << Describe(next.choice);
  EXPECT_TRUE(next.plan->choice() == first.choice) << Describe(next.plan->choice());
  ExpectCorrect(model_, input_, *next.plan);
  // Another batch size of the image shape: the same choice, reported once.
  TuneResult batched = Tune(Dims4{3, 16, 14, 14});
  EXPECT_EQ(batched.candidates_timed, 0);
  EXPECT_FALSE(batched.from_tuning_cache);
}

// The file, not a timing, decides: a choice edited into it (nhwc on one
// thread, which a timing seldom picks) is what the next process builds.
TEST_F(TuningCachePlanTest, BuildsThePlanTheFileSays) {
  ASSERT_GE(Tune(input_).candidates_timed, 2);
  std::ifstream in(path_);
  std::stringstream written;
  written << in.rdbuf();
  std::string edited;
  for (absl::string_view line : absl::StrSplit(written.str(), '\n', absl::SkipEmpty())) {
    if (line.front() == '#') continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
    ASSERT_EQ(fields.size(), 6u) << line;
    absl::StrAppend(&edited, fields[0], "\t", fields[1], "\tnhwc\t0\t1\t0\n");
  }
  tree_.Write("cache.tsv", edited);

  Restart();
  TuneResult next = Tune(input_);
  EXPECT_EQ(next.candidates_timed, 0);
  EXPECT_TRUE(next.plan->choice() == PlanChoice(ActivationLayout::kNhwc, 0, 1))
      << Describe(next.plan->choice());
  ExpectCorrect(model_, input_, *next.plan);
}

// A run for ChooseMicroBatch that records each micro-batch it is given and
// takes 10 ms, except `fast`, which returns at once, and `failing`, which
// fails at once (the sleeps are the test's, not the machine's: the order
// holds on any CPU).
std::function<absl::Status(int64_t)> RecordingRun(std::vector<int64_t>& runs, int64_t fast,
                                                  int64_t failing = -1) {
  return [&runs, fast, failing](int64_t micro) {
    runs.push_back(micro);
    if (micro == failing)
      return absl::ResourceExhaustedError(absl::StrCat("no memory for ", micro));
    if (micro != fast) absl::SleepFor(absl::Milliseconds(10));
    return absl::OkStatus();
  };
}

// The micro-batch tuner runs every candidate, keeps the fastest (here the
// only one that does not sleep), remembers it per batch size, and with no
// budget runs the default only.
TEST_F(PlanTunerTest, MicroBatchTimedOnceThenRemembered) {
  const ModelSpec model = MakeRandomModel({Spec(8, 8)}, 1).value();
  const Dims4 input{6, 8, 9, 9};
  const std::vector<int64_t> candidates = {3, 1, 2, 6};
  std::vector<int64_t> runs;
  const auto run = RecordingRun(runs, /*fast=*/2);
  absl::StatusOr<MicroBatchChoice> first =
      ChooseMicroBatch(model, input, candidates, absl::Seconds(10), run);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->micro_batch, 2);
  EXPECT_EQ(first->candidates_timed, 4);
  EXPECT_EQ(first->candidates_failed, 0);
  for (int64_t micro : candidates) {
    EXPECT_GE(std::count(runs.begin(), runs.end(), micro), 2) << micro;  // built, timed
  }

  runs.clear();
  absl::StatusOr<MicroBatchChoice> again =
      ChooseMicroBatch(model, input, candidates, absl::Seconds(10), run);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->micro_batch, 2);
  EXPECT_EQ(again->candidates_timed, 0);
  EXPECT_TRUE(runs.empty());

  // Another batch size is another choice; no budget times the default only.
  runs.clear();
  const Dims4 other{5, 8, 9, 9};
  absl::StatusOr<MicroBatchChoice> unbudgeted =
      ChooseMicroBatch(model, other, candidates, absl::ZeroDuration(), run);
  ASSERT_TRUE(unbudgeted.ok()) << unbudgeted.status();
  EXPECT_EQ(unbudgeted->micro_batch, 3);
  EXPECT_EQ(unbudgeted->candidates_timed, 1);
  EXPECT_EQ(runs, (std::vector<int64_t>{3}));  // one candidate: nothing to time
}

// A candidate whose run fails returns at once, so timed as if it had run it
// would be among the fastest (with 6, the fastest that runs): it is dropped
// instead, never chosen, and the choice remembered is one that ran.
TEST_F(PlanTunerTest, MicroBatchFailedRunIsNeitherChosenNorRemembered) {
  const ModelSpec model = MakeRandomModel({Spec(8, 8)}, 1).value();
  const Dims4 input{6, 8, 9, 9};
  const std::vector<int64_t> candidates = {3, 1, 2, 6};
  std::vector<int64_t> runs;
  const auto run = RecordingRun(runs, /*fast=*/6, /*failing=*/2);
  absl::StatusOr<MicroBatchChoice> first =
      ChooseMicroBatch(model, input, candidates, absl::Seconds(10), run);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->micro_batch, 6);
  EXPECT_EQ(first->candidates_timed, 3);
  EXPECT_EQ(first->candidates_failed, 1);
  EXPECT_EQ(first->first_failure.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(std::count(runs.begin(), runs.end(), 2), 1);  // not run again once failed

  // The same key again: the remembered choice, no run.
  runs.clear();
  absl::StatusOr<MicroBatchChoice> again =
      ChooseMicroBatch(model, input, candidates, absl::Seconds(10), run);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->micro_batch, 6);
  EXPECT_EQ(again->candidates_timed, 0);
  EXPECT_TRUE(runs.empty());
}

// When every run fails, the tuning fails with the first failure (every
// candidate tried, even with no budget, since none ran) and remembers
// nothing: the next tuning of the key runs and times the candidates.
TEST_F(PlanTunerTest, MicroBatchEveryRunFailingIsAnErrorNotRemembered) {
  const ModelSpec model = MakeRandomModel({Spec(8, 8)}, 1).value();
  const Dims4 input{6, 8, 9, 9};
  const std::vector<int64_t> candidates = {3, 1, 2, 6};
  std::vector<int64_t> runs;
  auto failing = [&](int64_t micro) {
    runs.push_back(micro);
    return absl::InternalError(absl::StrCat("oneDNN: cannot run ", micro));
  };
  absl::StatusOr<MicroBatchChoice> failed =
      ChooseMicroBatch(model, input, candidates, absl::ZeroDuration(), failing);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(failed.status().message(), "cannot run 3")) << failed.status();
  EXPECT_EQ(runs, candidates);
  EXPECT_FALSE(TunedChoice(model, input).has_value());  // no layout was tuned either

  runs.clear();
  absl::StatusOr<MicroBatchChoice> next =
      ChooseMicroBatch(model, input, candidates, absl::Seconds(10), RecordingRun(runs, /*fast=*/1));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->micro_batch, 1);
  EXPECT_EQ(next->candidates_timed, 4);
  EXPECT_EQ(next->candidates_failed, 0);
  EXPECT_FALSE(runs.empty());
}

}  // namespace
}  // namespace internal
}  // namespace sepconv
