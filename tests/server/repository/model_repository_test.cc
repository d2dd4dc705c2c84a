#include "server/models/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/loader/onnx_test_graph.h"
#include "tests/server/repository/seeded_graph.h"
#include "tests/testing/temp_tree.h"

namespace sepconv {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_onnx::ConvAttrs;
using testing_onnx::TestGraph;

// A one-block graph whose weights depend on `seed`.
TestGraph SeededGraph(uint32_t seed, int64_t out_channels = 4) {
  return testing::SeededGraph(seed, {8, out_channels, /*batch_norm=*/false, /*relu=*/false});
}

class ModelRepositoryTest : public ::testing::Test {
 protected:
  void Write(const std::string& relative, const std::string& bytes) {
    tree_.Write(relative, bytes);
  }
  void WriteOnnx(const std::string& relative, uint32_t seed, int64_t out_channels = 4) {
    Write(relative, SeededGraph(seed, out_channels).Serialize());
  }
  ModelRepository Repo() {
    RepositoryOptions options;
    options.root = root_.string();
    options.default_scheduler.max_batch_size = 6;
    options.default_scheduler.max_queue_delay = absl::Microseconds(300);
    options.default_scheduler.instances = 2;
    return ModelRepository(options);
  }

  static const VersionLoad* Find(const std::vector<VersionLoad>& loads, const std::string& model,
                                 int64_t version) {
    for (const VersionLoad& l : loads) {
      if (l.model == model && l.version == version) return &l;
    }
    return nullptr;
  }
  static std::vector<int64_t> Versions(const std::vector<VersionLoad>& loads,
                                       const std::string& model) {
    std::vector<int64_t> v;
    for (const VersionLoad& l : loads) {
      if (l.model == model) v.push_back(l.version);
    }
    std::sort(v.begin(), v.end());
    return v;
  }

  testing::TempTree tree_{"repo_"};
  const fs::path& root_ = tree_.path();
};

TEST_F(ModelRepositoryTest, BadModelsAreReportedAndGoodOnesStillLoad) {
  WriteOnnx("good/1/model.onnx", 1);
  Write("layers/config.pbtxt", "sepconv { seed: 5 layers { in_channels: 3 out_channels: 8 } }");
  TestGraph add(8);
  add.Conv(8, ConvAttrs().Group(8));
  add.Conv(8, ConvAttrs().Kernel(1));
  add.Node("Add", {add.current(), add.Init("one", {1}, {1.0f})});
  add.Finish();
  Write("unsupported_op/1/model.onnx", add.Serialize());
  const std::string good = SeededGraph(2).Serialize();
  Write("truncated/1/model.onnx", good.substr(0, good.size() / 2));
  Write("malformed/1/model.onnx", "\x08\x96\x01 definitely not onnx \xff\xff");
  fs::create_directories(root_ / "empty_version" / "1");
  WriteOnnx("unknown_field/1/model.onnx", 3);
  Write("unknown_field/config.pbtxt", "max_batch_size: 4\nmax_batch_sise: 8\n");
  fs::create_directories(root_ / "no_versions");

  ModelRepository repo = Repo();
  absl::StatusOr<RepositoryDiff> diff = repo.Poll();
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_TRUE(diff->changed.empty() && diff->removed.empty());

  const VersionLoad* ok = Find(diff->added, "good", 1);
  ASSERT_NE(ok, nullptr);
  ASSERT_TRUE(ok->status.ok()) << ok->status;
  EXPECT_EQ(ok->loaded->spec->OutChannels(), 4);
  const VersionLoad* layers = Find(diff->added, "layers", 1);  // implicit version 1
  ASSERT_NE(layers, nullptr);
  ASSERT_TRUE(layers->status.ok()) << layers->status;
  EXPECT_EQ(layers->loaded->spec->InChannels(), 3);

  const struct {
    const char* model;
    int64_t version;
    std::vector<std::string> why;
  } kFailures[] = {
      {"unsupported_op", 1, {"unsupported_op/1", "(op Add)", "unsupported operator"}},
      {"truncated", 1, {"truncated/1/model.onnx", "truncated"}},
      {"malformed", 1, {"malformed/1/model.onnx", "not a valid ONNX model"}},
      {"empty_version", 1, {"empty_version/1", "holds no model.onnx"}},
      {"unknown_field", 0, {"unknown_field/config.pbtxt:2:", "max_batch_sise"}},
      {"no_versions", 0, {"no_versions", "has no version folder"}},
  };
  for (const auto& f : kFailures) {
    SCOPED_TRACE(f.model);
    const VersionLoad* load = Find(diff->added, f.model, f.version);
    ASSERT_NE(load, nullptr);
    EXPECT_FALSE(load->status.ok());
    EXPECT_EQ(load->loaded, nullptr);
    for (const std::string& part : f.why) {
      EXPECT_THAT(std::string(load->status.message()), HasSubstr(part));
    }
  }
  EXPECT_EQ(diff->added.size(), 8u);
}

TEST_F(ModelRepositoryTest, VersionPolicies) {
  for (const char* m : {"latest_default", "latest2", "all", "specific"}) {
    for (int v : {1, 2, 3}) WriteOnnx(std::string(m) + "/" + std::to_string(v) + "/model.onnx", v);
  }
  fs::create_directories(root_ / "latest_default" / "010");  // leading zero: ignored
  fs::create_directories(root_ / "latest_default" / "extra");
  Write("latest2/config.pbtxt", "version_policy { latest { num_versions: 2 } }");
  Write("all/config.pbtxt", "version_policy { all { } }");
  Write("specific/config.pbtxt", "version_policy { specific { versions: [ 1, 3, 7 ] } }");
  ModelRepository repo = Repo();
  absl::StatusOr<RepositoryDiff> diff = repo.Poll();
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_EQ(Versions(diff->added, "latest_default"), (std::vector<int64_t>{3}));
  EXPECT_EQ(Versions(diff->added, "latest2"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Versions(diff->added, "all"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(Versions(diff->added, "specific"), (std::vector<int64_t>{1, 3, 7}));
  const VersionLoad* missing = Find(diff->added, "specific", 7);
  ASSERT_NE(missing, nullptr);
  EXPECT_THAT(std::string(missing->status.message()), HasSubstr("selects version 7"));
  EXPECT_TRUE(Find(diff->added, "specific", 3)->status.ok());
}

TEST_F(ModelRepositoryTest, TwoVersionsAnswerDifferentlyAndCorrectly) {
  WriteOnnx("m/1/model.onnx", 11);
  WriteOnnx("m/2/model.onnx", 22);
  Write("m/config.pbtxt", "version_policy { all { } }");
  ModelRepository repo = Repo();
  absl::StatusOr<RepositoryDiff> diff = repo.Poll();
  ASSERT_TRUE(diff.ok()) << diff.status();
  const Dims4 dims{2, 8, 9, 9};
  std::vector<float> x(dims.n * dims.c * dims.h * dims.w);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (float& v : x) v = dist(rng);
  std::vector<std::vector<float>> outputs;
  for (int64_t version : {1, 2}) {
    const VersionLoad* load = Find(diff->added, "m", version);
    ASSERT_NE(load, nullptr);
    ASSERT_TRUE(load->status.ok()) << load->status;
    absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::Create(load->loaded->spec);
    ASSERT_TRUE(executor.ok()) << executor.status();
    std::vector<float> out(dims.n * 4 * dims.h * dims.w);
    ASSERT_TRUE((*executor)->Run(dims, x.data(), out.data()).ok());
    Dims4 want_dims;
    const std::vector<float> want =
        SeededGraph(version == 1 ? 11 : 22).Evaluate(dims, x, &want_dims);
    ASSERT_EQ(want.size(), out.size());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], want[i], 1e-4) << i;
    outputs.push_back(out);
  }
  float max_diff = 0;
  for (size_t i = 0; i < outputs[0].size(); ++i) {
    max_diff = std::max(max_diff, std::abs(outputs[0][i] - outputs[1][i]));
  }
  EXPECT_GT(max_diff, 1e-2f);
}

TEST_F(ModelRepositoryTest, PollReportsNewChangedAndRemovedVersions) {
  WriteOnnx("m/1/model.onnx", 1);
  WriteOnnx("other/1/model.onnx", 1);
  ModelRepository repo = Repo();
  ASSERT_TRUE(repo.Poll().ok());

  absl::StatusOr<RepositoryDiff> diff = repo.Poll();  // nothing happened
  ASSERT_TRUE(diff.ok());
  EXPECT_TRUE(diff->empty());

  WriteOnnx("m/2/model.onnx", 2);  // latest 1: version 2 replaces 1
  diff = repo.Poll();
  ASSERT_TRUE(diff.ok());
  EXPECT_EQ(Versions(diff->added, "m"), (std::vector<int64_t>{2}));
  ASSERT_TRUE(diff->added[0].status.ok()) << diff->added[0].status;
  EXPECT_THAT(diff->removed, ::testing::ElementsAre(std::make_pair(std::string("m"), int64_t{1})));

  WriteOnnx("m/2/model.onnx", 3, /*out_channels=*/6);  // rewritten in place
  diff = repo.Poll();
  ASSERT_TRUE(diff.ok());
  ASSERT_EQ(diff->changed.size(), 1u);
  EXPECT_EQ(diff->changed[0].version, 2);
  ASSERT_TRUE(diff->changed[0].status.ok());
  EXPECT_EQ(diff->changed[0].loaded->spec->OutChannels(), 6);

  // A broken config is reported once and keeps the loaded version.
  Write("m/config.pbtxt", "bogus_field: 1\n");
  diff = repo.Poll();
  ASSERT_TRUE(diff.ok());
  ASSERT_EQ(diff->added.size(), 1u);
  EXPECT_EQ(diff->added[0].version, 0);
  EXPECT_THAT(std::string(diff->added[0].status.message()), HasSubstr("bogus_field"));
  EXPECT_TRUE(diff->removed.empty());
  EXPECT_TRUE(repo.Poll()->empty());

  // Fixed: the model-level failure goes, the version reloads under the config.
  Write("m/config.pbtxt", "max_batch_size: 2 dynamic_batching { }\n");
  diff = repo.Poll();
  ASSERT_TRUE(diff.ok());
  EXPECT_THAT(diff->removed, ::testing::ElementsAre(std::make_pair(std::string("m"), int64_t{0})));
  ASSERT_EQ(diff->changed.size(), 1u);
  EXPECT_EQ(diff->changed[0].scheduler.max_batch_size, 2);

  fs::remove_all(root_ / "other");
  diff = repo.Poll();
  ASSERT_TRUE(diff.ok());
  EXPECT_THAT(diff->removed,
              ::testing::ElementsAre(std::make_pair(std::string("other"), int64_t{1})));
}

TEST_F(ModelRepositoryTest, MissingRootIsNotFound) {
  RepositoryOptions options;
  options.root = (root_ / "nope").string();
  ModelRepository repo(options);
  absl::StatusOr<RepositoryDiff> diff = repo.Poll();
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(diff.status().message()), HasSubstr("nope"));
}

// A model folder that changes under the scan (between ROOT's listing and the
// folder's own) is a model-level failure: reported once, previous versions
// kept, the other models untouched; the next Poll no longer lists it and
// removes its versions.
class MidScanChangeTest : public ModelRepositoryTest,
                          public ::testing::WithParamInterface<std::string> {
 protected:
  // Replaces the folder at `path` as the parameter says.
  static void Break(const fs::path& path, const std::string& how) {
    fs::remove_all(path);
    if (how == "removed") return;
    if (how == "file") {
      std::ofstream(path) << "not a folder";
    } else if (how == "dangling_link") {
      fs::create_directory_symlink(path.parent_path() / "gone", path);
    } else if (how == "link_loop") {  // ELOOP: unreadable even for root
      fs::create_directory_symlink(path.filename(), path);
    }
  }
};

TEST_P(MidScanChangeTest, KeepsWhatWasLoadedAndReportsOnce) {
  WriteOnnx("a/1/model.onnx", 1);
  WriteOnnx("m/1/model.onnx", 2);
  WriteOnnx("z/1/model.onnx", 3);
  RepositoryOptions options = Repo().options();
  bool armed = false;
  options.before_model_scan = [&](const std::string& model) {
    if (armed && model == "m") {
      armed = false;
      Break(root_ / "m", GetParam());
    }
  };
  ModelRepository repo(options);
  absl::StatusOr<RepositoryDiff> diff = repo.Poll();
  ASSERT_TRUE(diff.ok()) << diff.status();
  ASSERT_EQ(diff->added.size(), 3u);

  armed = true;
  diff = repo.Poll();
  ASSERT_TRUE(diff.ok()) << diff.status();
  ASSERT_EQ(diff->added.size(), 1u);
  EXPECT_EQ(diff->added[0].model, "m");
  EXPECT_EQ(diff->added[0].version, 0);
  EXPECT_THAT(std::string(diff->added[0].status.message()), HasSubstr("cannot list"));
  EXPECT_TRUE(diff->changed.empty());
  EXPECT_TRUE(diff->removed.empty());  // m/1 keeps serving
  EXPECT_EQ(diff->selected.count("a"), 1u);
  EXPECT_EQ(diff->selected.count("z"), 1u);

  // Listed no more: its version and its failure go.
  diff = repo.Poll();
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_TRUE(diff->added.empty());
  EXPECT_THAT(diff->removed, ::testing::UnorderedElementsAre(std::make_pair("m", int64_t{0}),
                                                             std::make_pair("m", int64_t{1})));
}

INSTANTIATE_TEST_SUITE_P(Ways, MidScanChangeTest,
                         ::testing::Values("removed", "file", "dangling_link", "link_loop"));

TEST_F(ModelRepositoryTest, ExceptionDuringScanBecomesStatusAndStateIsKept) {
  WriteOnnx("m/1/model.onnx", 1);
  WriteOnnx("z/1/model.onnx", 2);
  RepositoryOptions options = Repo().options();
  bool armed = false;
  options.before_model_scan = [&](const std::string& model) {
    if (armed && model == "z") {
      armed = false;
      throw fs::filesystem_error("readdir", root_ / model,
                                 std::make_error_code(std::errc::io_error));
    }
  };
  ModelRepository repo(options);
  ASSERT_TRUE(repo.Poll().ok());

  WriteOnnx("m/2/model.onnx", 3);
  armed = true;
  absl::StatusOr<RepositoryDiff> diff;
  ASSERT_NO_THROW(diff = repo.Poll());
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(diff.status().message()), HasSubstr("readdir"));

  // The failed Poll changed nothing: the next one reports m/2 as new.
  diff = repo.Poll();
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_EQ(Versions(diff->added, "m"), (std::vector<int64_t>{2}));
  EXPECT_THAT(diff->removed, ::testing::ElementsAre(std::make_pair(std::string("m"), int64_t{1})));
}

TEST_F(ModelRepositoryTest, RootThatIsAFileIsNotFound) {
  Write("file", "x");
  RepositoryOptions options;
  options.root = (root_ / "file").string();
  ModelRepository repo(options);
  absl::StatusOr<RepositoryDiff> diff = repo.Poll();
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.status().code(), absl::StatusCode::kNotFound);
}

TEST(SchedulerOptionsFromConfigTest, FollowsTritonSemantics) {
  SchedulerOptions defaults;
  defaults.max_batch_size = 16;
  defaults.max_queue_size = 99;
  defaults.instances = 3;

  ModelConfig none;  // no dynamic_batching: no batching across requests
  none.set_max_batch_size(8);
  SchedulerOptions o = SchedulerOptionsFromConfig(none, defaults);
  EXPECT_EQ(o.max_batch_size, 0);
  EXPECT_EQ(o.instances, 3);
  EXPECT_EQ(o.max_queue_size, 99);

  ModelConfig batched;
  batched.set_max_batch_size(8);
  batched.mutable_dynamic_batching()->set_max_queue_delay_microseconds(250);
  batched.mutable_dynamic_batching()->add_preferred_batch_size(4);
  batched.mutable_dynamic_batching()->mutable_default_queue_policy()->set_max_queue_size(7);
  batched.add_instance_group()->set_count(2);
  batched.add_instance_group()->set_count(0);  // 0 counts as 1
  o = SchedulerOptionsFromConfig(batched, defaults);
  EXPECT_EQ(o.max_batch_size, 8);
  EXPECT_EQ(o.max_queue_delay, absl::Microseconds(250));
  EXPECT_EQ(o.preferred_batch_sizes, std::vector<int>{4});
  EXPECT_EQ(o.max_queue_size, 7);
  EXPECT_EQ(o.instances, 3);

  // Without config.pbtxt the server's defaults apply unchanged.
  defaults.max_queue_delay = absl::Microseconds(120);
  defaults.preferred_batch_sizes = {8};
  o = SchedulerOptionsFromConfig(DefaultModelConfig(defaults), defaults);
  EXPECT_EQ(o.max_batch_size, 16);
  EXPECT_EQ(o.max_queue_delay, absl::Microseconds(120));
  EXPECT_EQ(o.preferred_batch_sizes, std::vector<int>{8});
  EXPECT_EQ(o.max_queue_size, 99);
  EXPECT_EQ(o.instances, 3);
}

}  // namespace
}  // namespace sepconv
