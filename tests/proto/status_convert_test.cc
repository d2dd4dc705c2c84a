#include "proto/status_convert.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace sepconv {
namespace {

// Every canonical code, paired by name (not by number: the conversion must
// hold even if it did not rely on the two enums sharing their values).
const std::vector<std::pair<absl::StatusCode, grpc::StatusCode>>& NonOkCodes() {
  static const auto* codes = new std::vector<std::pair<absl::StatusCode, grpc::StatusCode>>{
      {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
      {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN},
      {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
      {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
      {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
      {absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED},
      {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION},
      {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED},
      {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE},
      {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
      {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL},
      {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
      {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
      {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
  };
  return *codes;
}

TEST(StatusConvertTest, OkBothWays) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::OkStatus()).error_message(), "");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(StatusConvertTest, EveryCodeKeepsItsNameAndMessageToGrpc) {
  for (const auto& [absl_code, grpc_code] : NonOkCodes()) {
    const std::string message = "model 'm': " + absl::StatusCodeToString(absl_code);
    const grpc::Status converted = ToGrpcStatus(absl::Status(absl_code, message));
    EXPECT_EQ(converted.error_code(), grpc_code) << message;
    EXPECT_EQ(converted.error_message(), message);
  }
}

TEST(StatusConvertTest, EveryCodeKeepsItsNameAndMessageFromGrpc) {
  for (const auto& [absl_code, grpc_code] : NonOkCodes()) {
    const std::string message = "from the server: " + absl::StatusCodeToString(absl_code);
    const absl::Status converted = FromGrpcStatus(grpc::Status(grpc_code, message));
    EXPECT_EQ(converted.code(), absl_code) << message;
    EXPECT_EQ(converted.message(), message);
  }
}

TEST(StatusConvertTest, RoundTripIsTheIdentityOnCodeAndMessage) {
  for (const auto& [absl_code, grpc_code] : NonOkCodes()) {
    const absl::Status original(absl_code, "text with \"quotes\" and\nnewline");
    EXPECT_EQ(FromGrpcStatus(ToGrpcStatus(original)), original);
  }
}

TEST(StatusConvertTest, CodesOutsideTheCanonicalRangeBecomeUnknown) {
  const grpc::Status to_grpc = ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(42), "odd"));
  EXPECT_EQ(to_grpc.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(to_grpc.error_message(), "odd");

  // 31 is the largest value grpc::StatusCode (-1..16) can hold without
  // undefined behaviour (UBSan's enum check).
  for (grpc::StatusCode code : {grpc::StatusCode::DO_NOT_USE, static_cast<grpc::StatusCode>(17),
                                static_cast<grpc::StatusCode>(31)}) {
    const absl::Status from_grpc = FromGrpcStatus(grpc::Status(code, "made up"));
    EXPECT_EQ(from_grpc.code(), absl::StatusCode::kUnknown) << static_cast<int>(code);
    EXPECT_EQ(from_grpc.message(), "made up");
  }
}

TEST(StatusConvertTest, StreamErrorMessageCarriesTheCodeName) {
  EXPECT_EQ(ToStreamErrorMessage(absl::NotFoundError("model 'x' is not loaded")),
            "NOT_FOUND: model 'x' is not loaded");
  for (const auto& [absl_code, grpc_code] : NonOkCodes()) {
    const absl::Status original(absl_code, "shape [1,2]: too big");
    EXPECT_EQ(FromStreamErrorMessage(ToStreamErrorMessage(original)), original);
  }
}

TEST(StatusConvertTest, StreamErrorMessageWithoutAKnownCodeIsUnknown) {
  // Triton's form: the message alone.
  EXPECT_EQ(FromStreamErrorMessage("inference request for unknown model"),
            absl::UnknownError("inference request for unknown model"));
  EXPECT_EQ(FromStreamErrorMessage("NOT_A_CODE: text"), absl::UnknownError("NOT_A_CODE: text"));
  EXPECT_EQ(FromStreamErrorMessage("OK: text"), absl::UnknownError("OK: text"));
  EXPECT_EQ(FromStreamErrorMessage(""), absl::UnknownError(""));
  // Only the first ": " separates the code from the message.
  EXPECT_EQ(FromStreamErrorMessage("INTERNAL: a: b"), absl::InternalError("a: b"));
}

}  // namespace
}  // namespace sepconv
