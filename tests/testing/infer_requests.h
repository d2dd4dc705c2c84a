#ifndef SEPCONV_TESTS_TESTING_INFER_REQUESTS_H_
#define SEPCONV_TESTS_TESTING_INFER_REQUESTS_H_

// KServe v2 ModelInfer requests and responses for tests. Thread-safe.

#include <string>
#include <vector>

#include "engine/model_spec.h"
#include "grpc_service.pb.h"

namespace sepconv::testing {

// A request for the model's `input` with `data` in raw_input_contents
// (raw=true) or in contents.fp32_contents; id "test-request".
inference::ModelInferRequest MakeInferRequest(const std::string& model, const Dims4& dims,
                                              const std::vector<float>& data, bool raw);

// The floats of a response's only output, from whichever form it used.
std::vector<float> OutputFloats(const inference::ModelInferResponse& response);

// Max |a-b| / max(1, |b|) over the elements; infinity if sizes differ, NaN
// counts as worst.
double MaxRelativeError(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_INFER_REQUESTS_H_
