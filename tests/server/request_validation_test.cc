// Unit tests of the core's request validation as the gRPC frontend feeds it
// (server/grpc/proto_request parses, server/core/request_validation checks):
// one test per malformed request (exact code, message naming the field), and
// the zero-copy conversions in both directions (server/core/input_tensor,
// the gRPC response writer).

#include "server/core/request_validation.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "engine/random_model.h"
#include "server/core/input_tensor.h"
#include "server/grpc/proto_request.h"
#include "server_test_util.h"

namespace sepconv {
namespace {

using testing::MakeInferRequest;
using testing::MalformedCase;
using testing::RandomTensor;

const ModelSpec& SpecFor(const std::string& model) {
  static const auto* specs = new std::map<std::string, ModelSpec>{
      {"sepconv", DefaultModel()}, {testing::kValidPaddingModel, testing::ValidPaddingModel()}};
  return specs->at(model);
}

// What the gRPC frontend does: parse (gRPC-only checks), then validate.
absl::StatusOr<ValidatedInfer> ValidateInferRequest(const inference::ModelInferRequest& request,
                                                    const ModelSpec& model) {
  absl::StatusOr<InferRequest> parsed = ParseModelInferRequest(request);
  if (!parsed.ok()) return parsed.status();
  return ValidateInferRequest(*parsed, model);
}

// A request as the gRPC frontend hands it on: validated against the
// default model, and its input (borrowed from the request, which must
// outlive it).
struct Accepted {
  ValidatedInfer validated;
  InputTensor input;
};

// Parses, validates and takes the input, as the gRPC frontend does.
absl::StatusOr<Accepted> Accept(const inference::ModelInferRequest& request) {
  absl::StatusOr<InferRequest> parsed = ParseModelInferRequest(request);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<ValidatedInfer> validated = ValidateInferRequest(*parsed, DefaultModel());
  if (!validated.ok()) return validated.status();
  InputTensor input = InputFromRequest(*parsed, *validated);
  return Accepted{*std::move(validated), std::move(input)};
}

InferResult ResultFor(const ValidatedInfer& v) {
  return InferResult{"sepconv", "1", v.output_dims, v.raw};
}

inference::ModelInferRequest GoodRequest(const std::string& model, bool raw = true) {
  const Dims4 dims{1, 32, 8, 8};
  return MakeInferRequest(model, dims, RandomTensor(testing::Elements(dims), 1), raw);
}

class MalformedRequestTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedRequestTest, RejectedWithCodeAndFieldInMessage) {
  const MalformedCase& c = GetParam();
  inference::ModelInferRequest request = GoodRequest(c.model);
  c.mutate(&request);
  absl::StatusOr<ValidatedInfer> result = ValidateInferRequest(request, SpecFor(c.model));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), c.code) << result.status();
  EXPECT_NE(result.status().message().find(c.needle), absl::string_view::npos)
      << "message: " << result.status().message() << "\nexpected to contain: " << c.needle;
  // The same model still accepts a good request.
  EXPECT_TRUE(ValidateInferRequest(GoodRequest(c.model), SpecFor(c.model)).ok());
}

std::vector<MalformedCase> ValidationCases() {
  std::vector<MalformedCase> cases;
  for (MalformedCase& c : testing::MalformedCases()) {
    if (c.validation) cases.push_back(std::move(c));
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllCases, MalformedRequestTest, ::testing::ValuesIn(ValidationCases()),
                         [](const auto& info) { return info.param.name; });

TEST(RequestValidationTest, AcceptsRawAndTypedAndComputesOutputShape) {
  for (bool raw : {true, false}) {
    const Dims4 dims{3, 32, 9, 7};
    auto request = MakeInferRequest("sepconv", dims, RandomTensor(testing::Elements(dims), 2), raw);
    absl::StatusOr<ValidatedInfer> v = ValidateInferRequest(request, DefaultModel());
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->raw, raw);
    EXPECT_EQ(v->input_dims, dims);
    EXPECT_EQ(v->output_dims, (Dims4{3, 64, 9, 7}));
    EXPECT_FALSE(v->timeout.has_value());
  }
}

TEST(RequestValidationTest, ParsesTimeoutParameterInMicroseconds) {
  auto request = GoodRequest("sepconv");
  (*request.mutable_parameters())["timeout"].set_int64_param(2500);
  absl::StatusOr<ValidatedInfer> v = ValidateInferRequest(request, DefaultModel());
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE(v->timeout.has_value());
  EXPECT_EQ(*v->timeout, absl::Microseconds(2500));

  (*request.mutable_parameters())["timeout"].set_string_param("soon");
  v = ValidateInferRequest(request, DefaultModel());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(v.status().message().find("'timeout'"), absl::string_view::npos);
}

TEST(RequestValidationTest, GrpcOnlyChecksAreTheParsers) {
  auto request = GoodRequest("sepconv");
  request.add_raw_input_contents("extra");
  absl::StatusOr<InferRequest> parsed = ParseModelInferRequest(request);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("raw_input_contents has 2 entries"),
            absl::string_view::npos)
      << parsed.status();
  request = GoodRequest("sepconv");
  (*request.mutable_parameters())["timeout"].set_bool_param(true);
  parsed = ParseModelInferRequest(request);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("int64_param"), absl::string_view::npos);
}

TEST(RequestValidationTest, CoreValidationNamesFieldsAsTheFrontendDoes) {
  const std::vector<float> data = RandomTensor(32 * 8 * 8, 6);
  InferRequest request;
  InferInput& input = request.inputs.emplace_back();
  input.name = "input";
  input.datatype = "FP32";
  input.shape = {1, 32, 8, 8};
  input.raw = absl::string_view(reinterpret_cast<const char*>(data.data()), 100);
  input.raw_field = "the binary data";
  absl::StatusOr<ValidatedInfer> v = ValidateInferRequest(request, DefaultModel());
  EXPECT_NE(v.status().message().find("the binary data has 100 bytes"), absl::string_view::npos)
      << v.status();
  input.raw.reset();
  input.fp32 = absl::MakeConstSpan(data);
  v = ValidateInferRequest(request, DefaultModel());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_FALSE(v->raw);
  request.timeout_us = -1;
  EXPECT_EQ(ValidateInferRequest(request, DefaultModel()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, RequestedOutputNamedOutputIsAccepted) {
  auto request = GoodRequest("sepconv");
  request.add_outputs()->set_name("output");
  EXPECT_TRUE(ValidateInferRequest(request, DefaultModel()).ok());
}

TEST(RequestValidationTest, TheSameOutputRequestedTwiceIsRefused) {
  auto request = GoodRequest("sepconv");
  request.add_outputs()->set_name("output");
  request.add_outputs()->set_name("output");
  const auto validated = ValidateInferRequest(request, DefaultModel());
  ASSERT_FALSE(validated.ok());
  EXPECT_EQ(validated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(validated.status().message().find("output 'output' is requested more than once"),
            absl::string_view::npos)
      << validated.status();
}

TEST(TensorConversionTest, RawInputIsBorrowedAndRawOutputWrittenInPlace) {
  const Dims4 dims{2, 32, 4, 5};
  const std::vector<float> data = RandomTensor(testing::Elements(dims), 3);
  auto request = MakeInferRequest("sepconv", dims, data, /*raw=*/true);
  absl::StatusOr<Accepted> accepted = Accept(request);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  auto& [v, input] = *accepted;
  EXPECT_FALSE(input.copied());
  EXPECT_EQ(static_cast<const void*>(input.data()),
            static_cast<const void*>(request.raw_input_contents(0).data()));

  inference::ModelInferResponse response;
  absl::StatusOr<float*> out = WriteInferResponse(ResultFor(v), request.id(), &response);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_EQ(static_cast<void*>(*out),
            static_cast<void*>(response.mutable_raw_output_contents(0)->data()));
  EXPECT_EQ(response.raw_output_contents(0).size(), 2u * 64 * 4 * 5 * sizeof(float));
  EXPECT_EQ(response.model_name(), "sepconv");
  EXPECT_EQ(response.model_version(), "1");
  EXPECT_EQ(response.id(), "test-request");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "output");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_EQ(
      std::vector<int64_t>(response.outputs(0).shape().begin(), response.outputs(0).shape().end()),
      (std::vector<int64_t>{2, 64, 4, 5}));
  EXPECT_EQ(response.outputs(0).contents().fp32_contents_size(), 0);
}

TEST(TensorConversionTest, TypedInputIsBorrowedAndTypedOutputWrittenInPlace) {
  const Dims4 dims{1, 32, 3, 3};
  auto request =
      MakeInferRequest("sepconv", dims, RandomTensor(testing::Elements(dims), 4), /*raw=*/false);
  absl::StatusOr<Accepted> accepted = Accept(request);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  auto& [v, input] = *accepted;
  EXPECT_FALSE(input.copied());
  EXPECT_EQ(input.data(), request.inputs(0).contents().fp32_contents().data());

  inference::ModelInferResponse response;
  absl::StatusOr<float*> out = WriteInferResponse(ResultFor(v), request.id(), &response);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(response.raw_output_contents_size(), 0);
  ASSERT_EQ(response.outputs(0).contents().fp32_contents_size(), 64 * 3 * 3);
  EXPECT_EQ(*out, response.mutable_outputs(0)->mutable_contents()->mutable_fp32_contents()->data());
}

TEST(TensorConversionTest, MisalignedRawBytesAreCopiedExactly) {
  const std::vector<float> data = RandomTensor(64, 5);
  std::string buffer(data.size() * sizeof(float) + 1, '\0');
  std::memcpy(&buffer[1], data.data(), data.size() * sizeof(float));
  const absl::string_view misaligned(buffer.data() + 1, data.size() * sizeof(float));
  InputTensor input = InputFromRawBytes(misaligned);
  EXPECT_TRUE(input.copied());
  EXPECT_EQ(std::memcmp(input.data(), data.data(), data.size() * sizeof(float)), 0);
  // Moving keeps the data where it is (the job's pointer must not dangle).
  const float* before = input.data();
  InputTensor moved = std::move(input);
  EXPECT_EQ(moved.data(), before);
}

}  // namespace
}  // namespace sepconv
