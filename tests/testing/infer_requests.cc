#include "tests/testing/infer_requests.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace sepconv::testing {

inference::ModelInferRequest MakeInferRequest(const std::string& model, const Dims4& dims,
                                              const std::vector<float>& data, bool raw) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  request.set_id("test-request");
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  for (int64_t d : {dims.n, dims.c, dims.h, dims.w}) input->add_shape(d);
  if (raw) {
    request.add_raw_input_contents()->assign(reinterpret_cast<const char*>(data.data()),
                                             data.size() * sizeof(float));
  } else {
    input->mutable_contents()->mutable_fp32_contents()->Add(data.begin(), data.end());
  }
  return request;
}

std::vector<float> OutputFloats(const inference::ModelInferResponse& response) {
  if (response.raw_output_contents_size() > 0) {
    const std::string& bytes = response.raw_output_contents(0);
    std::vector<float> values(bytes.size() / sizeof(float));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
    return values;
  }
  if (response.outputs_size() == 0) return {};
  const auto& typed = response.outputs(0).contents().fp32_contents();
  return std::vector<float>(typed.begin(), typed.end());
}

double MaxRelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double err =
        std::abs(double{a[i]} - double{b[i]}) / std::max(1.0, std::abs(double{b[i]}));
    if (!(err <= worst)) worst = err;  // NaN propagates as "worse"
  }
  return worst;
}

}  // namespace sepconv::testing
