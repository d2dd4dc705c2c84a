// PyTorch parity through the server: the repository that
// tests/models/export_models.py wrote (fixture `torch_models`) is served by
// an in-process server over 127.0.0.1 exactly as `sepconv-server
// --model_repository` serves it, and every saved case (several batch and
// spatial sizes per model and version) is sent over gRPC, raw and typed;
// the answers must match torch's within 1e-4 relative.

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/models/repository_sync.h"
#include "server_test_util.h"
#include "tests/engine/loader/npy_reader.h"
#include "tests/engine/loader/torch_cases.h"

namespace sepconv {
namespace {

TEST(RepositoryTorchTest, ServerAnswersMatchTorchForEveryExportedCase) {
  const char* dir = std::getenv("SEPCONV_TORCH_MODELS");
  ASSERT_NE(dir, nullptr) << "SEPCONV_TORCH_MODELS is not set (run through ctest)";
  const std::string models = dir;
  testing::TestServer server;
  ServerOptions options = testing::TestServer::DefaultOptions();
  std::shared_ptr<ModelRegistry> registry(std::shared_ptr<void>(), &server.registry());
  absl::StatusOr<std::unique_ptr<RepositorySync>> sync = RepositorySync::Start(
      models + "/repository", options, &server.metrics(), registry, absl::ZeroDuration());
  ASSERT_TRUE(sync.ok()) << sync.status();
  ASSERT_TRUE((*sync)->PollOnce().ok());  // every exported model loads

  auto stub = server.NewStub();
  absl::StatusOr<std::vector<testing::TorchCase>> manifest = testing::ReadTorchCases(models);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  int cases = 0;
  for (const testing::TorchCase& c : *manifest) {
    absl::StatusOr<testing_npy::NpyArray> x = testing_npy::ReadNpy(c.input_npy);
    absl::StatusOr<testing_npy::NpyArray> y = testing_npy::ReadNpy(c.output_npy);
    ASSERT_TRUE(x.ok() && y.ok()) << c.line;
    const Dims4 dims{x->shape[0], x->shape[1], x->shape[2], x->shape[3]};
    for (bool raw : {true, false}) {
      SCOPED_TRACE(c.line + (raw ? " raw" : " typed"));
      inference::ModelInferRequest request = testing::MakeInferRequest(c.model, dims, x->data, raw);
      request.set_model_version(c.version);
      inference::ModelInferResponse response;
      auto context = testing::ContextWithDeadline(60);
      grpc::Status status = stub->ModelInfer(context.get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(response.model_version(), c.version);
      ASSERT_EQ(response.outputs_size(), 1);
      ASSERT_EQ(response.outputs(0).shape_size(), static_cast<int>(y->shape.size()));
      for (size_t i = 0; i < y->shape.size(); ++i) {
        EXPECT_EQ(response.outputs(0).shape(i), y->shape[i]);
      }
      const std::vector<float> out = testing::OutputFloats(response);
      ASSERT_EQ(out.size(), y->data.size());
      double max_ref = 0, max_err = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        max_ref = std::max(max_ref, std::abs(double{y->data[i]}));
        max_err = std::max(max_err, std::abs(double{out[i]} - y->data[i]));
      }
      EXPECT_LE(max_err / max_ref, 1e-4) << "max abs error " << max_err << " of " << max_ref;
    }
    ++cases;
  }
  EXPECT_GE(cases, 15);
  (*sync)->Stop();
}

}  // namespace
}  // namespace sepconv
