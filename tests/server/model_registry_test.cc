// Unit tests of server/model_registry: lookup rules, version order, readiness,
// and replacing/removing versions while a request holds the old one.

#include "server/models/model_registry.h"

#include <gtest/gtest.h>

#include <atomic>

#include "engine/random_model.h"

namespace sepconv {
namespace {

class FakeScheduler : public Scheduler {
 public:
  explicit FakeScheduler(std::atomic<int>* shutdowns) : shutdowns_(shutdowns) {}
  absl::Status Submit(std::unique_ptr<InferenceJob> job) override {
    if (stopped_) return absl::UnavailableError("stopped");
    job->done(absl::OkStatus());
    return absl::OkStatus();
  }
  void Shutdown(absl::Time) override {
    if (!stopped_.exchange(true)) ++*shutdowns_;
  }
  void Cancel(uint64_t) override {}  // jobs finish inside Submit
  int64_t queued() const override { return 0; }

 private:
  std::atomic<bool> stopped_{false};
  std::atomic<int>* shutdowns_;
};

class ModelRegistryTest : public ::testing::Test {
 protected:
  std::shared_ptr<ServedModel> Model(const std::string& name, const std::string& version) {
    return std::make_shared<ServedModel>(name, version,
                                         std::make_shared<const ModelSpec>(DefaultModel()),
                                         std::make_unique<FakeScheduler>(&shutdowns_), nullptr);
  }
  std::atomic<int> shutdowns_{0};
  ModelRegistry registry_;
};

TEST_F(ModelRegistryTest, UnknownModelAndVersionAreNotFound) {
  registry_.AddOrReplace(Model("a", "1"));
  auto missing = registry_.Find("b", "");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'b'"), absl::string_view::npos);
  auto bad_version = registry_.Find("a", "7");
  EXPECT_EQ(bad_version.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(bad_version.status().message().find("'7'"), absl::string_view::npos);
  EXPECT_FALSE(registry_.IsReady("b", ""));
  EXPECT_EQ(registry_.Versions("b").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelRegistryTest, EmptyVersionMeansHighestReadyNumericVersion) {
  registry_.AddOrReplace(Model("a", "2"));
  registry_.AddOrReplace(Model("a", "10"));
  registry_.AddOrReplace(Model("a", "9"));
  auto latest = registry_.Find("a", "");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ((*latest)->version(), "10");  // numerically, not "9" > "10"
  registry_.MarkUnavailable("a", "11", "load failed: bad file");
  latest = registry_.Find("a", "");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ((*latest)->version(), "10");
  auto versions = registry_.Versions("a");
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 4u);
  EXPECT_EQ((*versions)[0].version, "2");
  EXPECT_EQ((*versions)[3].version, "11");
  EXPECT_FALSE((*versions)[3].ready);
  EXPECT_EQ((*versions)[3].reason, "load failed: bad file");
}

TEST_F(ModelRegistryTest, NotReadyVersionIsUnavailableWithReason) {
  registry_.MarkUnavailable("a", "1", "load failed: truncated model.onnx");
  auto found = registry_.Find("a", "1");
  EXPECT_EQ(found.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(found.status().message().find("truncated model.onnx"), absl::string_view::npos);
  EXPECT_EQ(registry_.Find("a", "").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(registry_.AllModelsReady());
  registry_.AddOrReplace(Model("a", "1"));
  EXPECT_TRUE(registry_.AllModelsReady());
  EXPECT_TRUE(registry_.IsReady("a", "1"));
}

TEST_F(ModelRegistryTest, ReplacedVersionStaysAliveForItsHolder) {
  registry_.AddOrReplace(Model("a", "1"));
  auto held = registry_.Find("a", "1");
  ASSERT_TRUE(held.ok());
  std::shared_ptr<ServedModel> displaced = registry_.AddOrReplace(Model("a", "1"));
  ASSERT_EQ(displaced, *held);
  auto now = registry_.Find("a", "1");
  ASSERT_TRUE(now.ok());
  EXPECT_NE(*now, *held);
  // The holder can still use its (old) model until the caller shuts it down.
  bool done = false;
  auto job = std::make_unique<InferenceJob>();
  job->done = [&done](absl::Status s) { done = s.ok(); };
  EXPECT_TRUE((*held)->scheduler().Submit(std::move(job)).ok());
  EXPECT_TRUE(done);
  displaced->Shutdown(absl::Now());
  EXPECT_EQ(shutdowns_.load(), 1);
}

TEST_F(ModelRegistryTest, RemoveLastVersionForgetsModelAndNotifiesObservers) {
  int notifications = 0;
  registry_.AddObserver([&notifications] { ++notifications; });
  registry_.AddOrReplace(Model("a", "1"));
  registry_.AddOrReplace(Model("b", "1"));
  EXPECT_EQ(registry_.ModelNames(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(registry_.LoadedModels().size(), 2u);
  std::shared_ptr<ServedModel> removed = registry_.Remove("a", "1");
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(removed->name(), "a");
  EXPECT_EQ(registry_.ModelNames(), (std::vector<std::string>{"b"}));
  EXPECT_EQ(registry_.Remove("a", "1"), nullptr);
  EXPECT_EQ(notifications, 3);
}

}  // namespace
}  // namespace sepconv
