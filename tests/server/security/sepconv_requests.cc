#include "tests/server/security/sepconv_requests.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "engine/executor.h"
#include "engine/random_model.h"

namespace sepconv::testing {

inference::ModelInferRequest MakeRequest(int64_t n, int64_t h, int64_t w, uint32_t seed) {
  inference::ModelInferRequest request;
  request.set_model_name("sepconv");
  request.set_id(absl::StrCat("seed-", seed));
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  for (int64_t d : {n, int64_t{32}, h, w}) input->add_shape(d);
  std::vector<float> values(n * 32 * h * w);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : values) v = dist(rng);
  request.add_raw_input_contents(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
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
  const std::string& raw = response.raw_output_contents(0);
  if (raw.size() != expected.size() * sizeof(float)) {
    return absl::DataLossError(absl::StrCat("output has ", raw.size(), " bytes, expected ",
                                            expected.size() * sizeof(float)));
  }
  std::vector<float> got(expected.size());
  std::memcpy(got.data(), raw.data(), raw.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(got[i] - expected[i]) <= 1e-4f * (1.0f + std::fabs(expected[i])))) {
      return absl::DataLossError(
          absl::StrCat("output[", i, "] = ", got[i], ", expected ", expected[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status WaitPendingZero(const ServerProcess& server, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  double last = -1;
  while (absl::Now() < give_up) {
    absl::StatusOr<double> pending =
        server.Metric("sepconv_pending_requests", {{"model", "sepconv"}, {"version", "1"}});
    if (pending.ok()) {
      last = *pending;
      if (last == 0) return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat("sepconv_pending_requests still ", last));
}

}  // namespace sepconv::testing
