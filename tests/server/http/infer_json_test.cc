// Unit tests of the REST frontend's wire code: the infer request parser (JSON
// and Triton's binary tensor data), the response builder and the one
// absl::Status -> HTTP mapping.

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "server/http/http_status.h"
#include "server/http/infer_request_json.h"
#include "server/http/infer_response_json.h"

namespace sepconv {
namespace {

std::string Bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

TEST(ParseInferRequestTest, JsonDataNestedOrFlatBecomesFloats) {
  for (const char* data : {"[1, -2.5, 3e-3, 4]", "[[1, -2.5], [3e-3, 4]]"}) {
    const std::string body = std::string(R"({"id":"r1","parameters":{"timeout":2500},)") +
                             R"("inputs":[{"name":"input","datatype":"FP32","shape":[1,1,2,2],)" +
                             R"("data":)" + data + "}]}";
    auto parsed = ParseInferRequest(body, std::nullopt, "m", "3");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    const InferRequest& r = (*parsed)->request;
    EXPECT_EQ(r.model_name, "m");
    EXPECT_EQ(r.model_version, "3");
    EXPECT_EQ(r.id, "r1");
    ASSERT_TRUE(r.timeout_us.has_value());
    EXPECT_EQ(*r.timeout_us, 2500);
    ASSERT_EQ(r.inputs.size(), 1u);
    EXPECT_EQ(r.inputs[0].name, "input");
    EXPECT_EQ(r.inputs[0].datatype, "FP32");
    EXPECT_EQ(r.inputs[0].shape, (std::vector<int64_t>{1, 1, 2, 2}));
    EXPECT_FALSE(r.inputs[0].raw.has_value());
    ASSERT_TRUE(r.inputs[0].fp32.has_value());
    EXPECT_EQ(std::vector<float>(r.inputs[0].fp32->begin(), r.inputs[0].fp32->end()),
              (std::vector<float>{1.0f, -2.5f, 3e-3f, 4.0f}));
    EXPECT_FALSE((*parsed)->binary_output);
  }
}

TEST(ParseInferRequestTest, ShortestDecimalReadsBackTheSameFloat) {
  const std::vector<float> values = {0.1f, 1.0f / 3.0f, 1e-38f, 3.4028235e38f, -7.006e-45f};
  std::string data;
  for (float f : values) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), f);
    data += (data.empty() ? "" : ",") + std::string(buf, end);
  }
  const std::string body =
      R"({"inputs":[{"name":"input","datatype":"FP32","shape":[5],"data":[)" + data + "]}]}";
  auto parsed = ParseInferRequest(body, std::nullopt, "m", "");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const auto& fp32 = *(*parsed)->request.inputs[0].fp32;
  ASSERT_EQ(fp32.size(), values.size());
  EXPECT_EQ(std::memcmp(fp32.data(), values.data(), values.size() * sizeof(float)), 0);
}

TEST(ParseInferRequestTest, BinaryDataIsAViewIntoTheBody) {
  const std::string header =
      R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,1,1,3],)"
      R"("parameters":{"binary_data_size":12}}],"outputs":[{"name":"output",)"
      R"("parameters":{"binary_data":true}}]})";
  const std::vector<float> values = {1.5f, -2.0f, 0.25f};
  auto parsed = ParseInferRequest(header + Bytes(values), header.size(), "m", "");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const RestInferRequest& r = **parsed;
  ASSERT_TRUE(r.request.inputs[0].raw.has_value());
  EXPECT_EQ(*r.request.inputs[0].raw, Bytes(values));
  EXPECT_EQ(r.request.inputs[0].raw->data(), r.body.data() + header.size());
  EXPECT_FALSE(r.request.inputs[0].fp32.has_value());
  ASSERT_EQ(r.request.requested_outputs.size(), 1u);
  EXPECT_EQ(r.request.requested_outputs[0].name, "output");
  EXPECT_FALSE(r.request.requested_outputs[0].shared_memory.given());
  EXPECT_TRUE(r.binary_output);
}

TEST(ParseInferRequestTest, BinaryOutputParameterAndPerOutputOverride) {
  const std::string base = R"({"parameters":{"binary_data_output":true},"inputs":[])";
  auto all = ParseInferRequest(base + "}", std::nullopt, "m", "");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE((*all)->binary_output);
  auto off = ParseInferRequest(
      base + R"(,"outputs":[{"name":"output","parameters":{"binary_data":false}}]})", std::nullopt,
      "m", "");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE((*off)->binary_output);
}

TEST(ParseInferRequestTest, ThousandsOfFloatsReadBackExactlyWhateverTheLayout) {
  // Shortest decimals, 17 significant digits, blanks and nesting: every number reads back as the
  // float it was printed from.
  std::vector<float> values(30000);
  uint32_t state = 7;
  for (float& v : values) {
    state = state * 1664525u + 1013904223u;
    std::memcpy(&v, &state, 4);
    if (!std::isfinite(v)) v = static_cast<float>(state % 1000) * 0.37f;
  }
  std::string flat, nested = "[", padded;
  char buf[64];
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string shortest(buf, std::to_chars(buf, buf + sizeof(buf), values[i]).ptr);
    flat += (i ? "," : "") + shortest;
    nested += (i % 100 == 0 ? (i ? "],[" : "[") : ",") +
              std::string(buf, std::to_chars(buf, buf + sizeof(buf), values[i]).ptr);
    padded +=
        (i ? " ,\n\t" : " ") + std::string(buf, std::to_chars(buf, buf + sizeof(buf), values[i],
                                                              std::chars_format::scientific, 16)
                                                    .ptr);
  }
  nested += "]]";
  for (const std::string& data : {"[" + flat + "]", nested, "[" + padded + " ]"}) {
    const std::string body =
        R"({"inputs":[{"data":)" + data + R"(,"name":"input","datatype":"FP32","shape":[30000]}]})";
    auto parsed = ParseInferRequest(body, std::nullopt, "m", "");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    const auto& fp32 = *(*parsed)->request.inputs[0].fp32;
    ASSERT_EQ(fp32.size(), values.size());
    EXPECT_EQ(std::memcmp(fp32.data(), values.data(), values.size() * sizeof(float)), 0);
  }
}

TEST(ParseInferRequestTest, FieldsInAnyOrderAndEscapedStrings) {
  // "outputs" before the request's "parameters", "data" before "shape", an
  // escaped name: the answer is as for the usual order.
  const std::string body = R"({"outputs":[{"name":"out\u0070ut"}],"inputs":[{"data":[[1],[2]],)"
                           R"("shape":[2,1],"name":"in\u0070ut","datatype":"FP32"}],)"
                           R"("parameters":{"binary_data_output":true},"id":"a\"b"})";
  auto parsed = ParseInferRequest(body, std::nullopt, "m", "");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const RestInferRequest& r = **parsed;
  EXPECT_EQ(r.request.id, "a\"b");
  EXPECT_EQ(r.request.inputs[0].name, "input");
  EXPECT_EQ(r.request.requested_outputs[0].name, "output");
  EXPECT_EQ(std::vector<float>(r.request.inputs[0].fp32->begin(), r.request.inputs[0].fp32->end()),
            (std::vector<float>{1.0f, 2.0f}));
  EXPECT_TRUE(r.binary_output);  // the last output has no "binary_data" of its own
}

TEST(ParseInferRequestTest, NumbersOutsideJsonGrammarAreRefused) {
  for (const char* bad :
       {"01",  "-01", "1.",    "1.e5", ".5",  "+1", "-",  "1e", "1e+",    "inf",  "-inf",
        "nan", "NaN", "1.5.3", "0x10", "1 2", "1,", "[1", "1]", "[[1],2", "1,,2", "Infinity"}) {
    const std::string body =
        std::string(R"({"inputs":[{"name":"input","shape":[1],"data":[)") + bad + "]}]}";
    auto parsed = ParseInferRequest(body, std::nullopt, "m", "");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  for (const char* good : {"0", "-0", "0.5", "-0.0e-0", "1E5", "1e+5", "12.50"}) {
    const std::string body =
        std::string(R"({"inputs":[{"name":"input","shape":[1],"data":[)") + good + "]}]}";
    EXPECT_TRUE(ParseInferRequest(body, std::nullopt, "m", "").ok()) << good;
  }
}

struct BadCase {
  const char* what;
  std::string body;
  std::optional<size_t> header_length;
  const char* message_part;
};

TEST(ParseInferRequestTest, MalformedRequestsAreInvalidArgumentNamingTheField) {
  const std::string in = R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,1,1,2],)";
  const std::string beyond = in + R"("parameters":{"binary_data_size":16}}]})";
  const std::string unclaimed = in + R"("parameters":{"binary_data_size":4}}]})";
  const std::vector<BadCase> cases = {
      {"bad json", R"({"inputs":[)", std::nullopt, "malformed JSON"},
      {"not an object", "[1,2]", std::nullopt, "must be a JSON object"},
      {"no inputs", "{}", std::nullopt, "\"inputs\" is missing"},
      {"inputs not array", R"({"inputs":{}})", std::nullopt, "\"inputs\" must be an array"},
      {"name not string", R"({"inputs":[{"name":3,"shape":[1]}]})", std::nullopt,
       "\"name\" must be a string"},
      {"no shape", R"({"inputs":[{"name":"input"}]})", std::nullopt, "\"shape\" is missing"},
      {"shape of strings", R"({"inputs":[{"name":"input","shape":["1"]}]})", std::nullopt,
       "\"shape\" must hold integers"},
      {"data not numbers", in + R"("data":[1,"2"]}]})", std::nullopt, "\"data\" must hold numbers"},
      {"data not array", in + R"("data":7}]})", std::nullopt, "\"data\" must be an array"},
      {"too deep", in + R"("data":[[[[[[[[[[1]]]]]]]]]]}]})", std::nullopt, "nested deeper"},
      {"timeout string", R"({"parameters":{"timeout":"5"},"inputs":[]})", std::nullopt,
       "\"timeout\""},
      {"binary_data_output not bool", R"({"parameters":{"binary_data_output":1},"inputs":[]})",
       std::nullopt, "\"binary_data_output\" must be a boolean"},
      {"header longer than body", "{}", 100, "longer than the 2-byte body"},
      {"binary size beyond body", beyond + "12345678", beyond.size(), "exceeds the 8 bytes"},
      {"unclaimed binary bytes", unclaimed + "12345678", unclaimed.size(),
       "4 bytes of binary data"},
      {"binary size without header", in + R"("parameters":{"binary_data_size":8}}]})", std::nullopt,
       "without an Inference-Header-Content-Length"},
      {"data and binary", in + R"("data":[1,2],"parameters":{"binary_data_size":8}}]})",
       std::nullopt, "both"},
      {"nul in body", std::string("{\"inputs\":[]}\0x", 15), std::nullopt, "NUL"},
      {"trailing content", R"({"inputs":[]} {})", std::nullopt, "malformed JSON"},
      {"unclosed string", R"({"inputs":[{"name":"in]})", std::nullopt, "malformed JSON"},
      {"empty body", "", std::nullopt, "malformed JSON"},
      {"binary_data_size negative", in + R"("parameters":{"binary_data_size":-4}}]})", std::nullopt,
       "non-negative integer"},
      {"shm offset not integer",
       in + R"("parameters":{"shared_memory_region":"r","shared_memory_offset":1.5}}]})",
       std::nullopt, "\"shared_memory_offset\" must be an integer"},
  };
  for (const BadCase& c : cases) {
    auto parsed = ParseInferRequest(c.body, c.header_length, "m", "");
    ASSERT_FALSE(parsed.ok()) << c.what;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(parsed.status().message().find(c.message_part), absl::string_view::npos)
        << c.what << ": " << parsed.status();
  }
}

TEST(ParseHeaderLengthTest, DecimalOnly) {
  EXPECT_EQ(*ParseHeaderLength("123"), 123u);
  for (const char* bad : {"", "-1", "12a", " 1", "0x10", "99999999999999999999999"}) {
    EXPECT_FALSE(ParseHeaderLength(bad).ok()) << bad;
  }
}

InferResult Result() {
  InferResult result;
  result.model_name = "m";
  result.model_version = "2";
  result.output_dims = Dims4{1, 1, 1, 3};
  return result;
}

TEST(InferResponseBuilderTest, JsonCarriesTheExactFloats) {
  InferResponseBuilder builder("abc", /*binary=*/false);
  float* out = builder.Allocate(Result());
  const std::vector<float> values = {0.1f, -1.0f / 3.0f, 6e-39f};
  std::memcpy(out, values.data(), sizeof(float) * 3);
  const std::string body = builder.Finish();
  EXPECT_EQ(builder.header_length(), 0u);
  EXPECT_STREQ(builder.content_type(), "application/json");
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  ASSERT_FALSE(doc.HasParseError()) << body;
  EXPECT_STREQ(doc["model_name"].GetString(), "m");
  EXPECT_STREQ(doc["model_version"].GetString(), "2");
  EXPECT_STREQ(doc["id"].GetString(), "abc");
  const auto& output = doc["outputs"][0];
  EXPECT_STREQ(output["name"].GetString(), "output");
  EXPECT_STREQ(output["datatype"].GetString(), "FP32");
  ASSERT_EQ(output["shape"].Size(), 4u);
  EXPECT_EQ(output["shape"][3].GetInt64(), 3);
  // Re-parse the numbers as written, with from_chars (exact for floats).
  const size_t at = body.find("\"data\":[") + 8;
  const std::string numbers = body.substr(at, body.find(']', at) - at);
  std::vector<float> read;
  for (const char* p = numbers.data(); p < numbers.data() + numbers.size();) {
    float f;
    auto [end, ec] = std::from_chars(p, numbers.data() + numbers.size(), f);
    ASSERT_EQ(ec, std::errc()) << numbers;
    read.push_back(f);
    p = end + 1;
  }
  ASSERT_EQ(read.size(), 3u);
  EXPECT_EQ(std::memcmp(read.data(), values.data(), sizeof(float) * 3), 0) << numbers;
}

TEST(InferResponseBuilderTest, BinaryPutsAlignedFloatsAfterThePaddedHeader) {
  InferResponseBuilder builder("", /*binary=*/true);
  float* out = builder.Allocate(Result());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(out) % alignof(float), 0u);
  const std::vector<float> values = {1.0f, 2.0f, -3.5f};
  std::memcpy(out, values.data(), sizeof(float) * 3);
  const size_t header_length = builder.header_length();
  const std::string body = builder.Finish();
  EXPECT_STREQ(builder.content_type(), "application/octet-stream");
  ASSERT_EQ(body.size(), header_length + 12);
  EXPECT_EQ(header_length % 4, 0u);
  EXPECT_EQ(body.substr(header_length), Bytes(values));
  rapidjson::Document doc;
  doc.Parse(body.data(), header_length);
  ASSERT_FALSE(doc.HasParseError()) << body.substr(0, header_length);
  EXPECT_FALSE(doc.HasMember("id"));
  const auto& output = doc["outputs"][0];
  EXPECT_FALSE(output.HasMember("data"));
  EXPECT_EQ(output["parameters"]["binary_data_size"].GetUint64(), 12u);
}

TEST(HttpStatusTest, TritonsCodesAndOursForTheRest) {
  EXPECT_EQ(HttpStatusCode(absl::OkStatus()), 200);
  EXPECT_EQ(HttpStatusCode(absl::InvalidArgumentError("")), 400);
  EXPECT_EQ(HttpStatusCode(absl::FailedPreconditionError("")), 400);
  EXPECT_EQ(HttpStatusCode(absl::CancelledError("")), 400);
  EXPECT_EQ(HttpStatusCode(absl::UnauthenticatedError("")), 401);
  EXPECT_EQ(HttpStatusCode(absl::PermissionDeniedError("")), 403);
  EXPECT_EQ(HttpStatusCode(absl::NotFoundError("")), 404);
  EXPECT_EQ(HttpStatusCode(absl::ResourceExhaustedError("")), 429);
  EXPECT_EQ(HttpStatusCode(absl::InternalError("")), 500);
  EXPECT_EQ(HttpStatusCode(absl::UnimplementedError("")), 501);
  EXPECT_EQ(HttpStatusCode(absl::UnavailableError("")), 503);
  EXPECT_EQ(HttpStatusCode(absl::DeadlineExceededError("")), 504);
}

TEST(HttpStatusTest, ErrorJsonEscapesTheMessage) {
  EXPECT_EQ(ErrorJson(absl::NotFoundError("model \"x\"\n")), R"({"error":"model \"x\"\n"})");
}

}  // namespace
}  // namespace sepconv
