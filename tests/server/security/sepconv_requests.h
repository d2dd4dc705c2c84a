#ifndef SEPCONV_TESTS_SERVER_SECURITY_SEPCONV_REQUESTS_H_
#define SEPCONV_TESTS_SERVER_SECURITY_SEPCONV_REQUESTS_H_

// Requests for the built-in model `sepconv` (32 -> 64 channels) of a
// ServerProcess (tests/testing/server_process.h), and their expected answers
// from the engine. Not thread-safe except where noted.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/model_spec.h"
#include "grpc_service.grpc.pb.h"
#include "tests/testing/server_process.h"

namespace sepconv::testing {

// A raw-form request for model `sepconv` with deterministic values from
// `seed`; shape [n, 32, h, w].
inference::ModelInferRequest MakeRequest(int64_t n, int64_t h, int64_t w, uint32_t seed);

// The engine's answer to `request` (DefaultModel on the oneDNN executor).
// Thread-safe.
absl::StatusOr<std::vector<float>> ExpectedOutput(const inference::ModelInferRequest& request);

// OK when `response` carries `expected` in one raw output (MaxRelativeError
// at most 1e-4).
absl::Status CheckResponse(const inference::ModelInferResponse& response,
                           const std::vector<float>& expected);

// Polls `sepconv_pending_requests` of model sepconv until it is 0; an error
// with the last value after `timeout`.
absl::Status WaitPendingZero(const ServerProcess& server,
                             absl::Duration timeout = absl::Seconds(20));

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_SERVER_SECURITY_SEPCONV_REQUESTS_H_
