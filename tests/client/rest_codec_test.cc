// DecodeInferResponse (client/internal/rest_codec.h) with and without the
// binary values: skipping them gives ReadOutput the same shape and size as
// copying them, and a body that does not hold together is still DATA_LOSS.
#include "client/internal/rest_codec.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/internal/infer_message.h"
#include "gtest/gtest.h"

namespace sepconv::client::internal {
namespace {

// A binary REST answer of one 1xN FP32 output; its JSON header's length.
std::string BinaryAnswer(int64_t values, size_t* header_length, int64_t declared_bytes = -1) {
  const int64_t bytes = declared_bytes >= 0 ? declared_bytes : values * 4;
  const std::string header =
      absl::StrCat(R"({"model_name":"sepconv","model_version":"1","outputs":[{"name":"output",)",
                   R"("datatype":"FP32","shape":[1,)", values,
                   R"(],"parameters":{"binary_data_size":)", bytes, "}}]}");
  *header_length = header.size();
  return header + std::string(static_cast<size_t>(values) * 4, '\x3c');
}

TEST(RestCodecTest, SkippingTheValuesGivesTheSameShapeAndSize) {
  for (int64_t values : {1, 7, 100352}) {
    size_t header_length = 0;
    const std::string body = BinaryAnswer(values, &header_length);
    absl::StatusOr<inference::ModelInferResponse> whole = DecodeInferResponse(body, header_length);
    ASSERT_TRUE(whole.ok()) << whole.status();
    ASSERT_EQ(whole->raw_output_contents_size(), 1);
    std::optional<int64_t> skipped;
    absl::StatusOr<inference::ModelInferResponse> header =
        DecodeInferResponse(body, header_length, &skipped);
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_EQ(header->raw_output_contents_size(), 0);
    EXPECT_EQ(skipped, values * 4);

    std::vector<int64_t> want_shape, got_shape;
    int64_t want_bytes = 0, got_bytes = 0;
    ASSERT_TRUE(ReadOutput(*whole, std::nullopt, &want_shape, &want_bytes, nullptr).ok());
    ASSERT_TRUE(ReadOutput(*header, std::nullopt, &got_shape, &got_bytes, nullptr, skipped).ok());
    EXPECT_EQ(got_shape, want_shape);
    EXPECT_EQ(got_bytes, want_bytes);
    EXPECT_EQ(got_bytes, values * 4);
  }
}

TEST(RestCodecTest, SkippedValuesOfTheWrongSizeAreStillRefused) {
  size_t header_length = 0;
  // Declares 8 bytes for a 1x4 output: ReadOutput refuses the size.
  const std::string short_body = BinaryAnswer(4, &header_length, 8);
  std::optional<int64_t> skipped;
  absl::StatusOr<inference::ModelInferResponse> header =
      DecodeInferResponse(short_body.substr(0, header_length + 8), header_length, &skipped);
  ASSERT_TRUE(header.ok()) << header.status();
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  EXPECT_EQ(ReadOutput(*header, std::nullopt, &shape, &bytes, nullptr, skipped).code(),
            absl::StatusCode::kDataLoss);
  // More bytes declared than the body has.
  const std::string body = BinaryAnswer(4, &header_length, 64);
  EXPECT_EQ(DecodeInferResponse(body, header_length, &skipped).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace sepconv::client::internal
