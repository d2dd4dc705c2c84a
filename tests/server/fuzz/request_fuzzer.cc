// libFuzzer target over the inference request path: raw bytes ->
// ModelInferRequest::ParseFromArray -> ParseModelInferRequest (the gRPC
// frontend) -> the core's ValidateInferRequest -> input view and response
// writer -> the engine's InferOutputShape and, for tiny valid shapes, an
// Executor run checked against the naive reference. Shared-memory
// parameters go through the core's SharedMemoryRegistry over a real object
// whose every byte is known: a lease must be refused with INVALID_ARGUMENT
// or point at exactly the bytes its region and offset name. Built with
// -fsanitize=fuzzer,address,undefined by run_fuzz.sh. Any invariant broken
// here aborts, so the fuzzer reports it with the input that caused it.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/executor.h"
#include "engine/model_spec.h"
#include "engine/random_model.h"
#include "engine/reference.h"
#include "grpc_service.pb.h"
#include "server/core/input_tensor.h"
#include "server/core/request_validation.h"
#include "server/core/shared_memory.h"
#include "server/grpc/proto_request.h"
#include "tests/server/fuzz/require.h"

namespace sepconv {
namespace {

using testing::Require;

// The shared-memory object's size and its byte at `i`.
constexpr uint64_t kObjectBytes = 65536;
char Pattern(uint64_t i) { return static_cast<char>(i * 31 % 251); }

struct Fixture {
  std::shared_ptr<const ModelSpec> model = std::make_shared<ModelSpec>(DefaultModel());
  std::unique_ptr<Executor> executor;
  SharedMemoryRegistry regions;
  // The seeds' region names (make_corpus.cc) and where they start.
  std::vector<std::pair<std::string, uint64_t>> region_offsets = {
      {"in", 0}, {"out", 32768}, {"odd", 4097}};

  Fixture() {
    ExecutorOptions options;
    options.threads = 1;
    options.max_cached_shapes = 8;
    auto created = Executor::Create(model, options);
    Require(created.ok(), "Executor::Create on the default model");
    executor = *std::move(created);

    const std::string key = "/sepconv_fuzz_" + std::to_string(getpid());
    const int fd = shm_open(key.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    Require(fd >= 0 && ftruncate(fd, kObjectBytes) == 0, "create the shared-memory object");
    std::vector<char> bytes(kObjectBytes);
    for (uint64_t i = 0; i < kObjectBytes; ++i) bytes[i] = Pattern(i);
    Require(pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()),
            "fill the shared-memory object");
    close(fd);
    for (const auto& [name, offset] : region_offsets) {
      Require(regions.Register(name, key, offset, kObjectBytes - offset).ok(), "register");
    }
    shm_unlink(key.c_str());  // the mappings keep it
  }

  uint64_t RegionOffset(const std::string& name) const {
    for (const auto& [region, offset] : region_offsets) {
      if (region == name) return offset;
    }
    return 0;
  }
};

// A lease on `ref` is refused with a message, or holds exactly the bytes
// the region and offset name (every one of them readable).
void CheckLease(const Fixture& fixture, const SharedMemoryRef& ref, uint64_t bytes, bool at_least) {
  absl::StatusOr<SharedMemoryLease> lease = fixture.regions.Acquire(ref, bytes, at_least, "t");
  if (!lease.ok()) {
    Require(lease.status().code() == absl::StatusCode::kInvalidArgument,
            "a lease is refused only with INVALID_ARGUMENT");
    Require(!lease.status().message().empty(), "lease errors carry a message");
    return;
  }
  Require(lease->byte_size() == bytes, "the lease holds the tensor's bytes");
  const uint64_t start = fixture.RegionOffset(ref.region) + ref.offset;
  Require(start + bytes <= kObjectBytes, "the lease lies within the object");
  for (uint64_t i = 0; i < bytes; ++i) {
    Require(lease->data()[i] == Pattern(start + i), "the lease points at the named bytes");
  }
}

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
  if (validated->input_shared_memory || validated->output_shared_memory) {
    if (validated->input_shared_memory) {
      CheckLease(*fixture, *validated->input_shared_memory,
                 Elements(validated->input_dims) * sizeof(float), false);
    }
    if (validated->output_shared_memory) {
      CheckLease(*fixture, *validated->output_shared_memory,
                 Elements(validated->output_dims) * sizeof(float), true);
    }
    return;  // the engine's part is the same as for any other input
  }
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
