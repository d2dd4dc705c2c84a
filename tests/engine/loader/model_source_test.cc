#include "engine/loader/model_source.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/loader/onnx_test_graph.h"

namespace sepconv {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ModelSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("model_source_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "1");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteOnnx(const fs::path& path) {
    testing_onnx::TestGraph g(8);
    g.Conv(8, testing_onnx::ConvAttrs().Group(8));
    g.Conv(4, testing_onnx::ConvAttrs().Kernel(1));
    g.Finish();
    std::ofstream(path, std::ios::binary) << g.Serialize();
  }

  fs::path dir_;
};

TEST_F(ModelSourceTest, LoadsOnnxAndCompletesTheConfig) {
  WriteOnnx(dir_ / "1" / "model.onnx");
  absl::StatusOr<LoadedModel> loaded = LoadModelVersion(ModelConfig(), "m", (dir_ / "1").string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->spec->InChannels(), 8);
  EXPECT_EQ(loaded->spec->OutChannels(), 4);
  EXPECT_EQ(loaded->config.name(), "m");
  EXPECT_EQ(loaded->config.input(0).name(), "input");
  EXPECT_THAT(loaded->source, HasSubstr("model.onnx"));
}

TEST_F(ModelSourceTest, HonoursDefaultModelFilename) {
  WriteOnnx(dir_ / "1" / "net.onnx");
  ModelConfig config;
  config.set_default_model_filename("net.onnx");
  EXPECT_TRUE(LoadModelVersion(config, "m", (dir_ / "1").string()).ok());
  EXPECT_FALSE(LoadModelVersion(ModelConfig(), "m", (dir_ / "1").string()).ok());
}

TEST_F(ModelSourceTest, EmptyVersionFolderIsNotFoundNamingFolderAndFile) {
  absl::StatusOr<LoadedModel> loaded = LoadModelVersion(ModelConfig(), "m", (dir_ / "1").string());
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr((dir_ / "1").string()));
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("holds no model.onnx"));
}

TEST_F(ModelSourceTest, TruncatedFileIsAClearError) {
  WriteOnnx(dir_ / "1" / "model.onnx");
  fs::resize_file(dir_ / "1" / "model.onnx", fs::file_size(dir_ / "1" / "model.onnx") / 2);
  absl::StatusOr<LoadedModel> loaded = LoadModelVersion(ModelConfig(), "m", (dir_ / "1").string());
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("truncated"));
}

TEST_F(ModelSourceTest, LayersFromConfigNeedNoFileAndAreSeeded) {
  absl::StatusOr<ModelConfig> config =
      ParseModelConfig("sepconv { seed: 3 layers { in_channels: 4 out_channels: 6 } }", "c");
  ASSERT_TRUE(config.ok());
  absl::StatusOr<LoadedModel> a = LoadModelVersion(*config, "m", (dir_ / "1").string());
  absl::StatusOr<LoadedModel> b = LoadModelVersion(*config, "m", (dir_ / "absent").string());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->spec->layers[0].weights.depthwise, b->spec->layers[0].weights.depthwise);
  config->mutable_sepconv()->set_seed(4);
  absl::StatusOr<LoadedModel> c = LoadModelVersion(*config, "m", (dir_ / "1").string());
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->spec->layers[0].weights.depthwise, c->spec->layers[0].weights.depthwise);
  EXPECT_THAT(a->config.output(0).dims(), ::testing::ElementsAre(-1, 6, -1, -1));

  WriteOnnx(dir_ / "1" / "model.onnx");
  absl::StatusOr<LoadedModel> both = LoadModelVersion(*config, "m", (dir_ / "1").string());
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("remove one of them"));
}

}  // namespace
}  // namespace sepconv
