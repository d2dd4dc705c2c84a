// ParseInferResponseHeader and ParseStreamResponseHeader
// (client/internal/infer_message.h): an answer read without copying its raw
// values gives ReadOutput the same shape and size as the whole message, keeps
// every other field, and refuses bytes that are not such a message.
#include "client/internal/infer_message.h"

#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"

namespace sepconv::client::internal {
namespace {

inference::ModelInferResponse Answer(int64_t values) {
  inference::ModelInferResponse response;
  response.set_model_name("sepconv");
  response.set_model_version("3");
  response.set_id("req-7");
  (*response.mutable_parameters())["sequence"].set_int64_param(9);
  auto* output = response.add_outputs();
  output->set_name("output");
  output->set_datatype("FP32");
  output->add_shape(1);
  output->add_shape(values);
  response.add_raw_output_contents(std::string(values * sizeof(float), '\x5a'));
  return response;
}

// The header of `bytes`, read in pieces of `chunk` bytes as gRPC's slices
// come, and the raw size it reported.
struct Parsed {
  absl::Status status;
  inference::ModelInferResponse header;
  std::optional<int64_t> raw_bytes;
};
Parsed ParseInChunks(const std::string& bytes, int chunk) {
  google::protobuf::io::ArrayInputStream in(bytes.data(), static_cast<int>(bytes.size()), chunk);
  Parsed parsed;
  parsed.status = ParseInferResponseHeader(in, &parsed.header, &parsed.raw_bytes);
  return parsed;
}

TEST(ParseInferResponseHeaderTest, SkipsTheRawValuesAndKeepsEverythingElse) {
  for (int64_t values : {0, 1, 40, 70000}) {
    for (int chunk : {1, 7, 4096, 1 << 20}) {
      SCOPED_TRACE(testing::Message() << values << " values, chunks of " << chunk);
      const inference::ModelInferResponse whole = Answer(values);
      Parsed parsed = ParseInChunks(whole.SerializeAsString(), chunk);
      ASSERT_TRUE(parsed.status.ok()) << parsed.status;
      EXPECT_EQ(parsed.header.raw_output_contents_size(), 0);
      ASSERT_TRUE(parsed.raw_bytes.has_value());
      EXPECT_EQ(*parsed.raw_bytes, values * static_cast<int64_t>(sizeof(float)));
      inference::ModelInferResponse expected = whole;
      expected.clear_raw_output_contents();
      EXPECT_EQ(parsed.header.SerializeAsString(), expected.SerializeAsString());

      std::vector<int64_t> shape, whole_shape;
      int64_t bytes = -1, whole_bytes = -2;
      ASSERT_TRUE(ReadOutput(whole, std::nullopt, &whole_shape, &whole_bytes, nullptr).ok());
      ASSERT_TRUE(
          ReadOutput(parsed.header, std::nullopt, &shape, &bytes, nullptr, parsed.raw_bytes).ok());
      EXPECT_EQ(shape, whole_shape);
      EXPECT_EQ(bytes, whole_bytes);
    }
  }
}

TEST(ParseInferResponseHeaderTest, AWrongRawSizeIsStillDataLoss) {
  inference::ModelInferResponse whole = Answer(10);
  whole.mutable_raw_output_contents(0)->resize(39);
  Parsed parsed = ParseInChunks(whole.SerializeAsString(), 16);
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  const absl::Status status =
      ReadOutput(parsed.header, std::nullopt, &shape, &bytes, nullptr, parsed.raw_bytes);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
}

TEST(ParseInferResponseHeaderTest, NoRawValuesIsNoRawSize) {
  inference::ModelInferResponse whole = Answer(4);
  whole.clear_raw_output_contents();
  Parsed parsed = ParseInChunks(whole.SerializeAsString(), 16);
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  EXPECT_FALSE(parsed.raw_bytes.has_value());
}

TEST(ParseInferResponseHeaderTest, BytesThatAreNotTheMessageAreDataLoss) {
  const std::string whole = Answer(100).SerializeAsString();
  for (const std::string& bad :
       {whole.substr(0, whole.size() - 1),  // a raw value cut short
        std::string("\x0a\x10short"),       // a name longer than what follows
        std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11)}) {  // no valid tag
    Parsed parsed = ParseInChunks(bad, 8);
    EXPECT_EQ(parsed.status.code(), absl::StatusCode::kDataLoss);
  }
}

TEST(ParseInferResponseHeaderTest, ValuesCannotBeAskedOfAHeader) {
  Parsed parsed = ParseInChunks(Answer(4).SerializeAsString(), 64);
  ASSERT_TRUE(parsed.status.ok());
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  std::vector<float> values;
  EXPECT_FALSE(
      ReadOutput(parsed.header, std::nullopt, &shape, &bytes, &values, parsed.raw_bytes).ok());
}

TEST(ParseStreamResponseHeaderTest, AnAnswerGivesItsHeaderAndRawSize) {
  for (int chunk : {1, 5, 4096}) {
    SCOPED_TRACE(chunk);
    inference::ModelStreamInferResponse streamed;
    *streamed.mutable_infer_response() = Answer(300);
    const std::string bytes = streamed.SerializeAsString();
    google::protobuf::io::ArrayInputStream in(bytes.data(), static_cast<int>(bytes.size()), chunk);
    std::string error = "stale";
    inference::ModelInferResponse header;
    std::optional<int64_t> raw_bytes;
    ASSERT_TRUE(ParseStreamResponseHeader(in, &error, &header, &raw_bytes).ok());
    EXPECT_EQ(error, "");
    ASSERT_TRUE(raw_bytes.has_value());
    EXPECT_EQ(*raw_bytes, 1200);
    inference::ModelInferResponse expected = streamed.infer_response();
    expected.clear_raw_output_contents();
    EXPECT_EQ(header.SerializeAsString(), expected.SerializeAsString());
  }
}

TEST(ParseStreamResponseHeaderTest, ARefusalGivesItsErrorMessage) {
  inference::ModelStreamInferResponse streamed;
  streamed.set_error_message("INVALID_ARGUMENT: no such input");
  streamed.mutable_infer_response()->set_id("r1");
  const std::string bytes = streamed.SerializeAsString();
  google::protobuf::io::ArrayInputStream in(bytes.data(), static_cast<int>(bytes.size()), 3);
  std::string error;
  inference::ModelInferResponse header;
  std::optional<int64_t> raw_bytes;
  ASSERT_TRUE(ParseStreamResponseHeader(in, &error, &header, &raw_bytes).ok());
  EXPECT_EQ(error, "INVALID_ARGUMENT: no such input");
  EXPECT_EQ(header.id(), "r1");
  EXPECT_FALSE(raw_bytes.has_value());
}

TEST(ParseStreamResponseHeaderTest, ACutAnswerIsDataLoss) {
  inference::ModelStreamInferResponse streamed;
  *streamed.mutable_infer_response() = Answer(30);
  const std::string bytes = streamed.SerializeAsString();
  for (size_t cut : {bytes.size() - 1, bytes.size() - 120, size_t{3}}) {
    SCOPED_TRACE(cut);
    google::protobuf::io::ArrayInputStream in(bytes.data(), static_cast<int>(cut), 16);
    std::string error;
    inference::ModelInferResponse header;
    std::optional<int64_t> raw_bytes;
    EXPECT_EQ(ParseStreamResponseHeader(in, &error, &header, &raw_bytes).code(),
              absl::StatusCode::kDataLoss);
  }
}

}  // namespace
}  // namespace sepconv::client::internal
