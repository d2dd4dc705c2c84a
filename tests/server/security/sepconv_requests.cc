#include "tests/server/security/sepconv_requests.h"

#include <cmath>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "engine/executor.h"
#include "engine/random_model.h"
#include "tests/testing/infer_requests.h"
#include "tests/testing/tensors.h"

namespace sepconv::testing {

inference::ModelInferRequest MakeRequest(int64_t n, int64_t h, int64_t w, uint32_t seed) {
  const Dims4 dims{n, 32, h, w};
  inference::ModelInferRequest request =
      MakeInferRequest("sepconv", dims, RandomTensor(Elements(dims), seed), /*raw=*/true);
  request.set_id(absl::StrCat("seed-", seed));
  return request;
}

absl::StatusOr<std::vector<float>> ExpectedOutput(const inference::ModelInferRequest& request) {
  static absl::Mutex mu;
  static std::unique_ptr<Executor> executor;
  absl::MutexLock lock(&mu);
  if (executor == nullptr) {
    ExecutorOptions options;
    options.threads = 1;
    auto created = Executor::Create(std::make_shared<ModelSpec>(DefaultModel()), options);
    if (!created.ok()) return created.status();
    executor = *std::move(created);
  }
  const auto& shape = request.inputs(0).shape();
  const Dims4 dims{shape[0], shape[1], shape[2], shape[3]};
  absl::StatusOr<Dims4> out = InferOutputShape(executor->model(), dims);
  if (!out.ok()) return out.status();
  std::vector<float> output(out->n * out->c * out->h * out->w);
  std::vector<float> input(dims.n * dims.c * dims.h * dims.w);
  std::memcpy(input.data(), request.raw_input_contents(0).data(), input.size() * sizeof(float));
  absl::StatusOr<FlopCount> ran = executor->Run(dims, input.data(), output.data());
  if (!ran.ok()) return ran.status();
  return output;
}

absl::Status CheckResponse(const inference::ModelInferResponse& response,
                           const std::vector<float>& expected) {
  if (response.outputs_size() != 1 || response.raw_output_contents_size() != 1) {
    return absl::DataLossError("response does not carry one raw output");
  }
  const std::vector<float> got = OutputFloats(response);
  if (got.size() != expected.size()) {
    return absl::DataLossError(
        absl::StrCat("output has ", got.size(), " floats, expected ", expected.size()));
  }
  const double error = MaxRelativeError(got, expected);
  if (!(error <= 1e-4)) {
    return absl::DataLossError(absl::StrCat("output off by ", error, " (relative)"));
  }
  return absl::OkStatus();
}

absl::Status WaitPendingZero(const ServerProcess& server, absl::Duration timeout) {
  return server
      .WaitForMetric(
          "sepconv_pending_requests", {{"model", "sepconv"}, {"version", "1"}},
          [](double pending) { return pending == 0; }, timeout)
      .status();
}

}  // namespace sepconv::testing
