// libFuzzer target over the REST frontend's parsing path: bytes -> the
// Inference-Header-Content-Length value and the body -> ParseInferRequest ->
// (when it parses) the response builder and a JSON round trip of its
// numbers, (when not) the error body. An input
// starting with 'B' carries binary tensor data: the next line is the header
// length as the client sent it, the rest is the body; an input starting
// with 'R' is the body of a shared-memory register request
// (shared_memory_json.h), one with 'I' the body of a repository index
// request (extensions_json.h); any other input is a whole JSON infer body. Built with
// -fsanitize=fuzzer,address,undefined by run_fuzz.sh. A broken invariant aborts, so the fuzzer
// reports the input.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "rapidjson/document.h"
#include "server/http/extensions_json.h"
#include "server/http/http_status.h"
#include "server/http/infer_request_json.h"
#include "server/http/infer_response_json.h"
#include "server/http/shared_memory_json.h"
#include "tests/server/fuzz/require.h"

namespace sepconv {
namespace {

using testing::Require;

// What the parser accepted: binary views lie inside the body, one after
// another, and cover exactly what follows the JSON header.
void CheckParsed(const RestInferRequest& r, std::optional<size_t> header_length) {
  const char* next = r.body.data() + header_length.value_or(r.body.size());
  for (const InferInput& input : r.request.inputs) {
    if (input.raw.has_value()) {
      Require(header_length.has_value(), "binary data without a header length");
      Require(input.raw->data() == next, "binary views are consecutive");
      next += input.raw->size();
      Require(!input.fp32.has_value(), "an input has both binary and JSON data");
    }
  }
  Require(next == r.body.data() + r.body.size(), "binary views cover the rest of the body");

  // JSON numbers round-trip: the finite floats of each "data", written as an
  // answer writes them and read back as a request reads them, keep their bits.
  for (const InferInput& input : r.request.inputs) {
    if (!input.fp32.has_value()) continue;
    std::vector<float> finite;
    for (float f : *input.fp32) {
      if (std::isfinite(f) && finite.size() < 4096) finite.push_back(f);
    }
    if (finite.empty()) continue;
    InferResult echo;
    echo.output_dims = Dims4{1, 1, 1, static_cast<int64_t>(finite.size())};
    InferResponseBuilder printer("", /*binary=*/false);
    std::memcpy(printer.Allocate(echo), finite.data(), finite.size() * sizeof(float));
    const std::string printed = printer.Finish();
    const size_t data = printed.find("\"data\":");
    Require(data != std::string::npos, "a JSON answer has \"data\"");
    const std::string request = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"data\":" +
                                printed.substr(data + 7, printed.size() - (data + 7) - 3) + "}]}";
    auto reread = ParseInferRequest(request, std::nullopt, "m", "");
    Require(reread.ok(), "printed numbers parse");
    const auto& back = *(*reread)->request.inputs[0].fp32;
    Require(back.size() == finite.size() &&
                std::memcmp(back.data(), finite.data(), finite.size() * sizeof(float)) == 0,
            "printed numbers read back to the same bits");
  }

  // The response for a small output of the same request, both forms.
  InferResult result;
  result.model_name = r.request.model_name;
  result.model_version = "1";
  result.output_dims = Dims4{1, 1, 2, 3};
  InferResponseBuilder builder(r.request.id, r.binary_output);
  float* out = builder.Allocate(result);
  for (int i = 0; i < 6; ++i) out[i] = static_cast<float>(i) * 0.1f;
  const std::string body = builder.Finish();
  const size_t json_length = r.binary_output ? builder.header_length() : body.size();
  Require(json_length <= body.size(), "header length within the response");
  rapidjson::Document doc;
  doc.Parse(body.data(), json_length);
  Require(!doc.HasParseError() && doc.IsObject(), "the response header is a JSON object");

  // The same with the output in shared memory: no buffer, a JSON body.
  result.output_in_shared_memory = true;
  InferResponseBuilder shm(r.request.id, r.binary_output);
  Require(shm.Allocate(result) == nullptr, "no buffer for an output in shared memory");
  const std::string shm_body = shm.Finish();
  Require(shm.header_length() == 0, "a shared-memory answer is pure JSON");
  rapidjson::Document shm_doc;
  shm_doc.Parse(shm_body.data(), shm_body.size());
  Require(!shm_doc.HasParseError() && shm_doc.IsObject(), "the shared-memory answer is JSON");
}

void CheckRegisterBody(absl::string_view body) {
  absl::StatusOr<RegisterBody> parsed = ParseRegisterBody(body);
  if (!parsed.ok()) {
    Require(parsed.status().code() == absl::StatusCode::kInvalidArgument,
            "register bodies fail only with INVALID_ARGUMENT");
    return;
  }
  const std::string status = SharedMemoryStatusJson(
      {SharedMemoryRegionInfo{"r", parsed->key, parsed->offset, parsed->byte_size}});
  rapidjson::Document doc;
  doc.Parse(status.data(), status.size());
  Require(!doc.HasParseError() && doc.IsArray() && doc.Size() == 1, "status is a JSON array");
  Require(doc[0]["offset"].GetUint64() == parsed->offset, "offset round-trips");
  Require(doc[0]["byte_size"].GetUint64() == parsed->byte_size, "byte_size round-trips");
}

}  // namespace
}  // namespace sepconv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sepconv;
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  std::optional<size_t> header_length;
  if (!input.empty() && input[0] == 'R') {
    CheckRegisterBody(input.substr(1));
    return 0;
  }
  if (!input.empty() && input[0] == 'I') {
    absl::StatusOr<bool> ready = ParseIndexBody(input.substr(1));
    Require(ready.ok() || ready.status().code() == absl::StatusCode::kInvalidArgument,
            "index bodies fail only with INVALID_ARGUMENT");
    return 0;
  }
  if (!input.empty() && input[0] == 'B') {
    input.remove_prefix(1);
    const size_t eol = input.find('\n');
    const absl::string_view value = input.substr(0, eol);
    input.remove_prefix(eol == absl::string_view::npos ? input.size() : eol + 1);
    absl::StatusOr<size_t> length = ParseHeaderLength(value);
    if (!length.ok()) {
      Require(length.status().code() == absl::StatusCode::kInvalidArgument, "header length code");
      return 0;
    }
    header_length = *length;
  }
  auto parsed = ParseInferRequest(std::string(input), header_length, "m", "");
  if (parsed.ok()) {
    CheckParsed(**parsed, header_length);
    return 0;
  }
  Require(parsed.status().code() == absl::StatusCode::kInvalidArgument, "parse errors are 400s");
  Require(HttpStatusCode(parsed.status()) == 400, "INVALID_ARGUMENT maps to 400");
  const std::string error = ErrorJson(parsed.status());
  rapidjson::Document doc;
  doc.Parse(error.data(), error.size());
  Require(!doc.HasParseError() && doc.IsObject() && doc.HasMember("error"),
          "the error body is {\"error\": ...}");
  return 0;
}
