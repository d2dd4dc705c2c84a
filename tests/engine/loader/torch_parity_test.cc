// Parity with PyTorch: every case that tests/models/export_models.py wrote
// (the seed module in two versions, a 4-block MobileNet-style stack with
// BatchNorm kept, folded by torch, and in opset 9) is loaded from the
// repository folder exactly as the server loads it, run on the oneDNN
// Executor, and compared with torch's output within 1e-4 relative.

#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/executor.h"
#include "engine/loader/model_config.h"
#include "engine/loader/model_source.h"
#include "gtest/gtest.h"
#include "tests/engine/loader/npy_reader.h"
#include "tests/engine/loader/torch_cases.h"

namespace sepconv {
namespace {

std::string ModelsDir() {
  const char* dir = std::getenv("SEPCONV_TORCH_MODELS");
  return dir == nullptr ? "" : dir;
}

absl::StatusOr<LoadedModel> LoadFromRepository(const std::string& model,
                                               const std::string& version) {
  const std::string model_dir = absl::StrCat(ModelsDir(), "/repository/", model);
  ModelConfig config;
  absl::StatusOr<ModelConfig> parsed = ReadModelConfigFile(model_dir + "/config.pbtxt");
  if (parsed.ok()) {
    config = *parsed;
  } else if (parsed.status().code() != absl::StatusCode::kNotFound) {
    return parsed.status();
  }
  if (absl::Status s = ValidateModelConfig(config, model); !s.ok()) return s;
  return LoadModelVersion(config, model, absl::StrCat(model_dir, "/", version));
}

TEST(TorchParityTest, EveryExportedCaseMatchesTorch) {
  ASSERT_FALSE(ModelsDir().empty()) << "SEPCONV_TORCH_MODELS is not set (run through ctest)";
  absl::StatusOr<std::vector<testing::TorchCase>> manifest = testing::ReadTorchCases(ModelsDir());
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Executor>> executors;
  int cases = 0;
  for (const testing::TorchCase& c : *manifest) {
    SCOPED_TRACE(c.line);
    auto key = std::make_pair(c.model, c.version);
    if (!executors.count(key)) {
      absl::StatusOr<LoadedModel> loaded = LoadFromRepository(c.model, c.version);
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::Create(loaded->spec);
      ASSERT_TRUE(executor.ok()) << executor.status();
      executors[key] = *std::move(executor);
    }
    absl::StatusOr<testing_npy::NpyArray> x = testing_npy::ReadNpy(c.input_npy);
    absl::StatusOr<testing_npy::NpyArray> y = testing_npy::ReadNpy(c.output_npy);
    ASSERT_TRUE(x.ok()) << x.status();
    ASSERT_TRUE(y.ok()) << y.status();
    ASSERT_EQ(x->shape.size(), 4u);
    const Dims4 dims{x->shape[0], x->shape[1], x->shape[2], x->shape[3]};
    std::vector<float> out(y->data.size(), std::nanf(""));
    absl::StatusOr<FlopCount> flops = executors[key]->Run(dims, x->data.data(), out.data());
    ASSERT_TRUE(flops.ok()) << flops.status();
    double max_ref = 0, max_err = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      max_ref = std::max(max_ref, std::abs(double{y->data[i]}));
      max_err = std::max(max_err, std::abs(double{out[i]} - y->data[i]));  // NaN fails below
      if (std::isnan(out[i])) max_err = INFINITY;
    }
    ASSERT_GT(max_ref, 0.0);
    EXPECT_LE(max_err / max_ref, 1e-4) << "max abs error " << max_err << " of " << max_ref;
    ++cases;
  }
  EXPECT_GE(cases, 15);
  // Two versions side by side answer differently: version 2 on version 1's
  // input does not give version 1's torch output.
  auto v1 = executors.find({"separableconv", "1"});
  auto v2 = executors.find({"separableconv", "2"});
  ASSERT_TRUE(v1 != executors.end() && v2 != executors.end());
  absl::StatusOr<testing_npy::NpyArray> x =
      testing_npy::ReadNpy(ModelsDir() + "/cases/separableconv/1/n1_h16_w16.input.npy");
  absl::StatusOr<testing_npy::NpyArray> y =
      testing_npy::ReadNpy(ModelsDir() + "/cases/separableconv/1/n1_h16_w16.output.npy");
  ASSERT_TRUE(x.ok() && y.ok());
  std::vector<float> out(y->data.size());
  ASSERT_TRUE(v2->second->Run({1, 32, 16, 16}, x->data.data(), out.data()).ok());
  double max_diff = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(double{out[i]} - y->data[i]));
  }
  EXPECT_GT(max_diff, 1e-2);
}

}  // namespace
}  // namespace sepconv
