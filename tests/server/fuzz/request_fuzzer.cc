// libFuzzer target over the inference request path: raw bytes ->
// ModelInferRequest::ParseFromArray -> ParseModelInferRequest (the gRPC
// frontend) -> the core's ValidateInferRequest -> input view and response
// writer -> the engine's InferOutputShape and, for tiny valid shapes, an
// Executor run checked against the naive reference. Built with
// -fsanitize=fuzzer,address,undefined by run_fuzz.sh. Any invariant broken
// here aborts, so the fuzzer reports it with the input that caused it.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/executor.h"
#include "engine/model_spec.h"
#include "engine/random_model.h"
#include "engine/reference.h"
#include "grpc_service.pb.h"
#include "server/core/input_tensor.h"
#include "server/core/request_validation.h"
#include "server/grpc/proto_request.h"

namespace sepconv {
namespace {

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

struct Fixture {
  std::shared_ptr<const ModelSpec> model = std::make_shared<ModelSpec>(DefaultModel());
  std::unique_ptr<Executor> executor;

  Fixture() {
    ExecutorOptions options;
    options.threads = 1;
    options.max_cached_shapes = 8;
    auto created = Executor::Create(model, options);
    Require(created.ok(), "Executor::Create on the default model");
    executor = *std::move(created);
  }
};

// Inputs up to this many elements are also computed (and checked).
constexpr int64_t kMaxComputedElements = 32 * 6 * 6 * 2;

void FuzzOne(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();
  const ModelSpec& model = *fixture->model;

  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  absl::StatusOr<InferRequest> parsed = ParseModelInferRequest(request);
  if (!parsed.ok()) {
    Require(parsed.status().code() == absl::StatusCode::kInvalidArgument,
            "parsing fails only with INVALID_ARGUMENT");
    return;
  }
  absl::StatusOr<ValidatedInfer> validated = ValidateInferRequest(*parsed, model);
  if (!validated.ok()) {
    Require(validated.status().code() == absl::StatusCode::kInvalidArgument,
            "validation fails only with INVALID_ARGUMENT");
    Require(!validated.status().message().empty(), "validation errors carry a message");
    return;
  }
  const Dims4& in = validated->input_dims;
  absl::StatusOr<Dims4> out = InferOutputShape(model, in);
  Require(out.ok(), "a validated request has an output shape");
  Require(*out == validated->output_dims, "validation's output shape equals the engine's");
  const int64_t in_elements = in.n * in.c * in.h * in.w;
  const int64_t out_elements = out->n * out->c * out->h * out->w;

  InputTensor input = InputFromRequest(*parsed, *validated);
  Require(input.data() != nullptr, "a validated request has input data");
  // Every input float must be readable (ASan checks the bounds).
  float checksum = 0;
  for (int64_t i = 0; i < in_elements; ++i) checksum += input.data()[i] * 0.0f;
  (void)checksum;

  inference::ModelInferResponse response;
  absl::StatusOr<float*> output = WriteInferResponse(
      InferResult{"sepconv", "1", validated->output_dims, validated->raw}, request.id(), &response);
  Require(output.ok(), "a validated request's response can be prepared");
  // Every output float must be writable.
  for (int64_t i = 0; i < out_elements; ++i) (*output)[i] = 0.0f;

  if (in_elements > kMaxComputedElements) return;
  absl::StatusOr<FlopCount> flops = fixture->executor->Run(in, input.data(), *output);
  Require(flops.ok(), "the executor runs a validated tiny request");
  std::vector<float> copy(input.data(), input.data() + in_elements);
  for (float x : copy) {
    if (!std::isfinite(x) || std::fabs(x) > 1e4f) return;  // no meaningful comparison
  }
  absl::StatusOr<std::vector<float>> expected = ReferenceForward(model, in, copy);
  Require(expected.ok(), "the reference runs a validated tiny request");
  Require(static_cast<int64_t>(expected->size()) == out_elements, "reference output size");
  for (int64_t i = 0; i < out_elements; ++i) {
    const float e = (*expected)[i];
    Require(std::fabs((*output)[i] - e) <= 1e-3f * (1.0f + std::fabs(e)),
            "executor output matches the reference");
  }
}

}  // namespace
}  // namespace sepconv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sepconv::FuzzOne(data, size);
  return 0;
}
