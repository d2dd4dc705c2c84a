// Parity with PyTorch end to end: tests/models/export_models.py (the CTest
// fixture torch_models) exports seeded PyTorch models as ONNX into a model
// repository plus inputs and PyTorch's outputs as .npy; this test serves that
// repository exactly as `sepconv-server --model_repository` does, sends every
// input through the C++ client library over 127.0.0.1 and compares with
// PyTorch. It also checks that a poll picks up a new version.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/npy.h"
#include "server/grpc/server.h"
#include "server/models/repository_sync.h"
#include "tests/engine/loader/torch_cases.h"

namespace sepconv {
namespace {

namespace fs = std::filesystem;

constexpr double kRelativeTolerance = 1e-4;

std::string ModelsDir() {
  const char* dir = std::getenv("SEPCONV_TORCH_MODELS");
  return dir != nullptr ? dir : "";
}

// max |got - want| / max |want|, and the same per element with |want|
// floored at 1e-2 of the tensor's scale.
double RelativeError(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size() || want.empty()) return INFINITY;
  double scale = 0;
  for (float w : want) scale = std::max(scale, std::abs(double{w}));
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double floor = std::max(std::abs(double{want[i]}), 1e-2 * scale);
    const double err = std::abs(double{got[i]} - double{want[i]}) / floor;
    if (!(err <= worst)) worst = err;
  }
  return worst;
}

class TorchParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ModelsDir();
    ASSERT_FALSE(dir_.empty()) << "SEPCONV_TORCH_MODELS is not set (run through ctest)";
    ASSERT_TRUE(fs::exists(dir_ + "/cases/manifest.tsv")) << dir_;
  }

  void Serve(const std::string& repository) {
    options_.address = "127.0.0.1";
    options_.grpc_port = 0;
    options_.metrics_port = 0;
    options_.threads = 1;
    options_.drain_grace = absl::ZeroDuration();
    registry_ = std::make_shared<ModelRegistry>();
    auto sync =
        RepositorySync::Start(repository, options_, nullptr, registry_, absl::ZeroDuration());
    ASSERT_TRUE(sync.ok()) << sync.status();
    sync_ = *std::move(sync);
    auto server = Server::Start(options_, registry_, nullptr);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto client = client::Client::Create(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                         client::ClientOptions{});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  void TearDown() override {
    if (sync_) sync_->Stop();
    if (server_) server_->Shutdown(absl::Now() + absl::Seconds(10));
  }

  std::string dir_;
  ServerOptions options_;
  std::shared_ptr<ModelRegistry> registry_;
  std::unique_ptr<RepositorySync> sync_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<client::Client> client_;
};

TEST_F(TorchParityTest, EveryExportedCaseMatchesPyTorchRawAndTyped) {
  Serve(dir_ + "/repository");
  absl::StatusOr<std::vector<testing::TorchCase>> cases = testing::ReadTorchCases(dir_);
  ASSERT_TRUE(cases.ok()) << cases.status();
  ASSERT_GE(cases->size(), 5u);
  int index = 0;
  for (const testing::TorchCase& c : *cases) {
    SCOPED_TRACE(c.line);
    absl::StatusOr<client::Tensor> input = client::ReadNpy(c.input_npy);
    absl::StatusOr<client::Tensor> want = client::ReadNpy(c.output_npy);
    ASSERT_TRUE(input.ok()) << input.status();
    ASSERT_TRUE(want.ok()) << want.status();
    client::InferOptions infer;
    infer.typed = (index++ % 2) == 1;
    absl::StatusOr<client::Tensor> got = client_->Infer(c.model, c.version, *input, infer);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->shape, want->shape);
    EXPECT_LT(RelativeError(got->data, want->data), kRelativeTolerance);
  }
}

TEST_F(TorchParityTest, PollServesANewVersionAndRetiresTheOld) {
  // A private copy of one model without config.pbtxt (policy: latest 1).
  const fs::path root = fs::temp_directory_path() / absl::StrCat("parity_poll_", getpid());
  fs::remove_all(root);
  fs::create_directories(root / "mobilenet_fused");
  fs::copy(dir_ + "/repository/mobilenet_fused/1", root / "mobilenet_fused" / "1");
  Serve(root.string());
  ASSERT_EQ(client_->ModelReady("mobilenet_fused", "1").value_or(false), true);
  EXPECT_EQ(client_->ModelReady("mobilenet_fused", "2").value_or(true), false);

  fs::copy(root / "mobilenet_fused" / "1", root / "mobilenet_fused" / "2");
  ASSERT_TRUE(sync_->PollOnce().ok());
  EXPECT_EQ(client_->ModelReady("mobilenet_fused", "2").value_or(false), true);
  EXPECT_EQ(client_->ModelReady("mobilenet_fused", "1").value_or(true), false);

  // The new version answers like PyTorch.
  absl::StatusOr<std::vector<testing::TorchCase>> cases = testing::ReadTorchCases(dir_);
  ASSERT_TRUE(cases.ok()) << cases.status();
  for (const testing::TorchCase& c : *cases) {
    if (c.model != "mobilenet_fused") continue;
    auto input = client::ReadNpy(c.input_npy);
    auto want = client::ReadNpy(c.output_npy);
    ASSERT_TRUE(input.ok() && want.ok());
    auto got = client_->Infer("mobilenet_fused", "", *input, client::InferOptions{});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_LT(RelativeError(got->data, want->data), kRelativeTolerance);
    break;
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace sepconv
