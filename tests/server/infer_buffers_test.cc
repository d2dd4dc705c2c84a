// ModelInfer's pooled buffers and its zero-copy answer (server/grpc/infer_buffers.h).
#include "server/grpc/infer_buffers.h"

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sepconv {
namespace {

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

// `bytes` as a byte buffer of slices of at most `piece` bytes, as gRPC hands
// a message over.
grpc::ByteBuffer InPieces(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    slices.emplace_back(bytes.data() + at, std::min(piece, bytes.size() - at));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

inference::ModelInferResponse Header() {
  inference::ModelInferResponse header;
  header.set_model_name("sepconv");
  header.set_model_version("1");
  header.set_id("request-7");
  auto* output = header.add_outputs();
  output->set_name("output");
  output->set_datatype("FP32");
  for (int64_t dim : {1, 2, 3, 4}) output->add_shape(dim);
  return header;
}

TEST(InferBuffersTest, AnswerBytesEqualTheMessageSerializedWithItsOutput) {
  auto pool = std::make_shared<InferBufferPool>(4, size_t{1} << 30);
  // 1-, 2- and 3-byte length prefixes, and a tensor not a multiple of 64 bytes.
  for (size_t bytes : {size_t{96}, size_t{4000}, size_t{300004}}) {
    OutputBuffer output = pool->TakeOutput(bytes);
    ASSERT_GE(output.capacity, bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(output.data.get()) % 64, 0u);
    for (size_t i = 0; i < bytes; ++i) output.data[i] = static_cast<char>(i * 7 + 3);

    inference::ModelInferResponse whole = Header();
    whole.add_raw_output_contents()->assign(output.data.get(), bytes);
    const grpc::ByteBuffer sent = EncodeInferResponse(Header(), std::move(output), bytes, pool);
    EXPECT_EQ(Flatten(sent), whole.SerializeAsString()) << bytes << " bytes";

    inference::ModelInferResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(Flatten(sent)));
    ASSERT_EQ(parsed.raw_output_contents_size(), 1);
    EXPECT_EQ(parsed.raw_output_contents(0), whole.raw_output_contents(0));
  }
}

TEST(InferBuffersTest, AnswerWithoutOutputIsTheHeaderAlone) {
  auto pool = std::make_shared<InferBufferPool>(4, size_t{1} << 30);
  inference::ModelInferResponse header = Header();
  header.mutable_outputs(0)->mutable_contents()->add_fp32_contents(1.5f);
  EXPECT_EQ(Flatten(EncodeInferResponse(header, OutputBuffer(), 0, pool)),
            header.SerializeAsString());
  EXPECT_EQ(pool->IdleOutputs(), 0);
}

TEST(InferBuffersTest, SentBufferReturnsToThePoolWhenGrpcReleasesIt) {
  auto pool = std::make_shared<InferBufferPool>(4, size_t{1} << 30);
  OutputBuffer output = pool->TakeOutput(1 << 16);
  const char* lent = output.data.get();
  {
    grpc::ByteBuffer sent = EncodeInferResponse(Header(), std::move(output), 1 << 16, pool);
    EXPECT_EQ(pool->IdleOutputs(), 0);  // still gRPC's
  }
  EXPECT_EQ(pool->IdleOutputs(), 1);
  EXPECT_EQ(pool->TakeOutput(1 << 16).data.get(), lent);  // the same memory, reused
}

TEST(InferBuffersTest, ParsesARequestInPiecesIntoTheSameMemoryNextTime) {
  auto pool = std::make_shared<InferBufferPool>(4, size_t{1} << 30);
  inference::ModelInferRequest sent;
  sent.set_model_name("sepconv");
  sent.set_id("a");
  sent.add_inputs()->set_name("input");
  sent.add_raw_input_contents()->assign(100000, 'x');
  const std::string bytes = sent.SerializeAsString();

  std::unique_ptr<inference::ModelInferRequest> request = pool->TakeRequest();
  ASSERT_TRUE(ParseModelInferBytes(InPieces(bytes, 8192), request.get()).ok());
  EXPECT_EQ(request->SerializeAsString(), bytes);
  const char* memory = request->raw_input_contents(0).data();
  pool->GiveRequest(std::move(request));

  sent.set_id("b");
  sent.mutable_raw_input_contents(0)->assign(100000, 'y');
  request = pool->TakeRequest();
  ASSERT_TRUE(ParseModelInferBytes(InPieces(sent.SerializeAsString(), 4096), request.get()).ok());
  EXPECT_EQ(request->id(), "b");
  EXPECT_EQ(request->raw_input_contents(0), std::string(100000, 'y'));
  EXPECT_EQ(request->raw_input_contents(0).data(), memory);
}

TEST(InferBuffersTest, RefusesBytesThatAreNotARequest) {
  auto request = std::make_unique<inference::ModelInferRequest>();
  const absl::Status status =
      ParseModelInferBytes(InPieces("\xff\xff\xff\xff garbage", 4), request.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST(InferBuffersTest, WarmKeepsRequestsAndOutputsOfTheSizeMapped) {
  auto pool = std::make_shared<InferBufferPool>(4, size_t{1} << 30);
  pool->Warm(50000, 70000, 2);
  EXPECT_EQ(pool->IdleRequests(), 2);
  EXPECT_EQ(pool->IdleOutputs(), 2);
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<inference::ModelInferRequest> request = pool->TakeRequest();
    ASSERT_EQ(request->raw_input_contents_size(), 1);
    EXPECT_GE(request->raw_input_contents(0).capacity(), 50000u);
    EXPECT_GE(pool->TakeOutput(70000).capacity, 70000u);
  }
  pool->Warm(50000, 70000, 2);  // again: no more than asked
  EXPECT_EQ(pool->IdleRequests(), 2);
  EXPECT_EQ(pool->IdleOutputs(), 2);
}

TEST(InferBuffersTest, KeepsAtMostItsIdleCountAndBytesTheNewestFirst) {
  auto pool = std::make_shared<InferBufferPool>(2, 10000);
  std::vector<OutputBuffer> taken;
  for (size_t bytes : {size_t{1024}, size_t{2048}, size_t{3072}}) {
    taken.push_back(pool->TakeOutput(bytes));
  }
  for (OutputBuffer& buffer : taken) pool->GiveOutput(std::move(buffer));
  EXPECT_EQ(pool->IdleOutputs(), 2);                  // the first, idle longest, was freed
  EXPECT_EQ(pool->TakeOutput(1000).capacity, 2048u);  // the smallest that fits
  EXPECT_EQ(pool->TakeOutput(1000).capacity, 3072u);
  EXPECT_EQ(pool->IdleOutputs(), 0);

  OutputBuffer older = pool->TakeOutput(8192), newer = pool->TakeOutput(4096);
  pool->GiveOutput(std::move(older));
  pool->GiveOutput(std::move(newer));  // 8192 + 4096 > 10000: the 8192 is freed
  EXPECT_EQ(pool->IdleOutputs(), 1);
  EXPECT_EQ(pool->TakeOutput(1).capacity, 4096u);
  pool->GiveOutput(pool->TakeOutput(4096));
  pool->GiveOutput(pool->TakeOutput(20000));  // more than the pool holds: freed at once
  EXPECT_EQ(pool->IdleOutputs(), 1);
  EXPECT_EQ(pool->TakeOutput(1).capacity, 4096u);

  for (size_t bytes : {size_t{6000}, size_t{7000}}) {
    auto request = std::make_unique<inference::ModelInferRequest>();
    request->add_raw_input_contents()->resize(bytes);
    pool->GiveRequest(std::move(request));
  }
  EXPECT_EQ(pool->IdleRequests(), 1);  // both would pass 10000 bytes: the newer stays
  EXPECT_GE(pool->TakeRequest()->raw_input_contents(0).capacity(), 7000u);
  EXPECT_EQ(pool->IdleRequests(), 0);
}

// Small answers' buffers, idle in every place, do not keep a large
// answer's buffer out: it is the one the next large answer reuses.
TEST(InferBuffersTest, ALargeAnswersBufferStaysWhenSmallOnesFillThePool) {
  auto pool = std::make_shared<InferBufferPool>(4, size_t{64} << 20);
  std::vector<OutputBuffer> small;
  for (int i = 0; i < 4; ++i) small.push_back(pool->TakeOutput(size_t{3} << 20));
  for (OutputBuffer& buffer : small) pool->GiveOutput(std::move(buffer));
  ASSERT_EQ(pool->IdleOutputs(), 4);
  pool->GiveOutput(pool->TakeOutput(size_t{51} << 20));
  // The oldest small one made room: three small ones and the large one.
  EXPECT_EQ(pool->IdleOutputs(), 4);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(pool->TakeOutput(1).capacity, size_t{3} << 20);
  EXPECT_EQ(pool->TakeOutput(1).capacity, size_t{51} << 20);
}

}  // namespace
}  // namespace sepconv
