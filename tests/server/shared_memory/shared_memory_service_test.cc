// Triton's system shared-memory extension through both frontends of a real
// in-process server (gRPC and REST on one core, 127.0.0.1): register,
// status and unregister with Triton's messages and routes; inference with
// the input and/or output in the client's region, bit-identical to the raw
// path; every malformed use refused with its code; tokens; limits; the
// extension off by default; a truncated object failing its request while
// the server serves on; nothing left mapped after unregister or shutdown.

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rest_test_util.h"
#include "server_test_util.h"
#include "shm_object.h"

namespace sepconv::testing {
namespace {

using ::testing::HasSubstr;

constexpr Dims4 kDims{1, 32, 8, 8};                  // the default model's input
constexpr size_t kInputBytes = 1 * 32 * 8 * 8 * 4;   // 8 KiB
constexpr size_t kOutputBytes = 1 * 64 * 8 * 8 * 4;  // 16 KiB

ServerOptions WithSharedMemory(SharedMemoryOptions shm = {}) {
  ServerOptions options = TestServer::DefaultOptions();
  options.core.shared_memory = std::make_shared<SharedMemoryRegistry>(shm);
  return options;
}

void SetShm(google::protobuf::Map<std::string, inference::InferParameter>* parameters,
            const std::string& region, int64_t offset, int64_t byte_size) {
  (*parameters)[kShmRegionParameter].set_string_param(region);
  (*parameters)[kShmOffsetParameter].set_int64_param(offset);
  (*parameters)[kShmByteSizeParameter].set_int64_param(byte_size);
}

// A request for kDims whose input is in `in` (no data in the message) and,
// when `out` is not empty, whose output goes to `out`.
inference::ModelInferRequest ShmRequest(const std::string& in, int64_t in_offset,
                                        const std::string& out, int64_t out_offset,
                                        int64_t out_bytes = kOutputBytes) {
  inference::ModelInferRequest request = MakeInferRequest("sepconv", kDims, {}, /*raw=*/false);
  SetShm(request.mutable_inputs(0)->mutable_parameters(), in, in_offset, kInputBytes);
  if (!out.empty()) {
    auto* output = request.add_outputs();
    output->set_name("output");
    SetShm(output->mutable_parameters(), out, out_offset, out_bytes);
  }
  return request;
}

struct GrpcAnswer {
  grpc::Status status;
  inference::ModelInferResponse response;
};

GrpcAnswer Infer(TestServer& server, const inference::ModelInferRequest& request,
                 const std::string& token = "") {
  GrpcAnswer answer;
  auto context = ContextWithDeadline();
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  answer.status = server.NewStub()->ModelInfer(context.get(), request, &answer.response);
  return answer;
}

grpc::Status Register(TestServer& server, const std::string& name, const std::string& key,
                      uint64_t offset, uint64_t byte_size, const std::string& token = "") {
  inference::SystemSharedMemoryRegisterRequest request;
  request.set_name(name);
  request.set_key(key);
  request.set_offset(offset);
  request.set_byte_size(byte_size);
  inference::SystemSharedMemoryRegisterResponse response;
  auto context = ContextWithDeadline();
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return server.NewStub()->SystemSharedMemoryRegister(context.get(), request, &response);
}

grpc::Status Unregister(TestServer& server, const std::string& name,
                        const std::string& token = "") {
  inference::SystemSharedMemoryUnregisterRequest request;
  request.set_name(name);
  inference::SystemSharedMemoryUnregisterResponse response;
  auto context = ContextWithDeadline();
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return server.NewStub()->SystemSharedMemoryUnregister(context.get(), request, &response);
}

grpc::Status Status(TestServer& server, const std::string& name,
                    inference::SystemSharedMemoryStatusResponse* response,
                    const std::string& token = "") {
  inference::SystemSharedMemoryStatusRequest request;
  request.set_name(name);
  auto context = ContextWithDeadline();
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return server.NewStub()->SystemSharedMemoryStatus(context.get(), request, response);
}

std::vector<float> RawAnswer(TestServer& server, const std::vector<float>& input) {
  GrpcAnswer raw = Infer(server, MakeInferRequest("sepconv", kDims, input, /*raw=*/true));
  EXPECT_TRUE(raw.status.ok()) << raw.status.error_message();
  return OutputFloats(raw.response);
}

TEST(SharedMemoryServiceTest, GrpcInferenceThroughRegionsMatchesTheRawPath) {
  TestServer server(WithSharedMemory());
  ShmObject object(65536);
  const std::vector<float> input = RandomTensor(Elements(kDims), 11);
  object.Write(4096, input);
  ASSERT_TRUE(Register(server, "in", object.key(), 4096, kInputBytes).ok());
  ASSERT_TRUE(Register(server, "out", object.key(), 32768, 32768).ok());
  const std::vector<float> expected = RawAnswer(server, input);

  // Input and output in shared memory: the answer carries the shape only.
  GrpcAnswer both = Infer(server, ShmRequest("in", 0, "out", 64, 32768 - 64));
  ASSERT_TRUE(both.status.ok()) << both.status.error_message();
  ASSERT_EQ(both.response.outputs_size(), 1);
  EXPECT_THAT(both.response.outputs(0).shape(), ::testing::ElementsAre(1, 64, 8, 8));
  EXPECT_EQ(both.response.raw_output_contents_size(), 0);
  EXPECT_EQ(both.response.outputs(0).contents().fp32_contents_size(), 0);
  EXPECT_TRUE(SameBits(object.Read(32768 + 64, expected.size()), expected));

  // Input in shared memory, output in the answer (raw bytes).
  GrpcAnswer in_only = Infer(server, ShmRequest("in", 0, "", 0));
  ASSERT_TRUE(in_only.status.ok()) << in_only.status.error_message();
  EXPECT_TRUE(SameBits(OutputFloats(in_only.response), expected));

  // Input in the message (typed), output in shared memory.
  inference::ModelInferRequest out_only = MakeInferRequest("sepconv", kDims, input, false);
  auto* output = out_only.add_outputs();
  output->set_name("output");
  SetShm(output->mutable_parameters(), "out", 0, kOutputBytes);
  std::memset(object.data() + 32768, 0, kOutputBytes);
  GrpcAnswer typed = Infer(server, out_only);
  ASSERT_TRUE(typed.status.ok()) << typed.status.error_message();
  EXPECT_TRUE(SameBits(object.Read(32768, expected.size()), expected));

  // Offset optional (0); a uint64_param is read as well.
  inference::ModelInferRequest no_offset = ShmRequest("in", 0, "", 0);
  auto& parameters = *no_offset.mutable_inputs(0)->mutable_parameters();
  parameters.erase(kShmOffsetParameter);
  parameters[kShmByteSizeParameter].set_uint64_param(kInputBytes);
  EXPECT_TRUE(Infer(server, no_offset).status.ok());
}

TEST(SharedMemoryServiceTest, GrpcRefusesEveryMalformedUse) {
  TestServer server(WithSharedMemory());
  ShmObject object(65536);
  ShmObject other(65536);
  ASSERT_TRUE(Register(server, "in", object.key(), 0, 16384).ok());
  ASSERT_TRUE(Register(server, "out", object.key(), 16384, 32768).ok());
  ASSERT_TRUE(Register(server, "alias", object.key(), 0, 65536).ok());  // overlaps both
  ASSERT_TRUE(Register(server, "other", other.key(), 0, 65536).ok());

  struct Case {
    std::string name;
    inference::ModelInferRequest request;
    std::string needle;
  };
  std::vector<Case> cases;
  const auto add = [&](std::string name, inference::ModelInferRequest request, std::string needle) {
    cases.push_back({std::move(name), std::move(request), std::move(needle)});
  };
  add("unknown region", ShmRequest("nope", 0, "", 0), "'nope' is not registered");
  add("past the region", ShmRequest("in", 16384 - kInputBytes + 4, "", 0), "goes past the end");
  add("offset overflows", ShmRequest("in", std::numeric_limits<int64_t>::max(), "", 0),
      "goes past the end");
  add("negative offset", ShmRequest("in", -4, "", 0), "non-negative");
  add("output too small", ShmRequest("in", 0, "out", 0, kOutputBytes - 4), "at least");
  add("output past region", ShmRequest("in", 0, "out", 32768 - 8, 16), "goes past the end");
  add("output misaligned", ShmRequest("in", 0, "out", 2), "4-byte aligned");
  add("output overlaps input", ShmRequest("in", 0, "alias", 4096), "overlap");
  {
    inference::ModelInferRequest r = ShmRequest("in", 0, "", 0);
    (*r.mutable_inputs(0)->mutable_parameters())[kShmByteSizeParameter].set_int64_param(4096);
    add("input byte size", std::move(r), "needs 2048 FP32 elements");
  }
  {
    inference::ModelInferRequest r = ShmRequest("in", 0, "", 0);
    r.mutable_inputs(0)->mutable_parameters()->erase(kShmByteSizeParameter);
    add("region without byte size", std::move(r), "go together");
  }
  {
    inference::ModelInferRequest r = ShmRequest("in", 0, "", 0);
    (*r.mutable_inputs(0)->mutable_parameters())[kShmRegionParameter].set_int64_param(1);
    add("region not a string", std::move(r), "must be a string_param");
  }
  {
    inference::ModelInferRequest r = ShmRequest("in", 0, "", 0);
    (*r.mutable_inputs(0)->mutable_parameters())[kShmOffsetParameter].set_string_param("0");
    add("offset not an integer", std::move(r), "must be an int64_param");
  }
  {
    inference::ModelInferRequest r = ShmRequest("in", 0, "", 0);
    r.add_raw_input_contents()->assign(kInputBytes, '\0');
    add("data and region", std::move(r), "both in shared memory and in raw_input_contents[0]");
  }
  for (const Case& c : cases) {
    GrpcAnswer answer = Infer(server, c.request);
    EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(answer.status.error_message(), HasSubstr(c.needle)) << c.name;
  }
  // Regions of other objects do not overlap; the server still serves.
  EXPECT_TRUE(Infer(server, ShmRequest("in", 0, "other", 0)).status.ok());
}

TEST(SharedMemoryServiceTest, GrpcControlCallsLimitsAndMappings) {
  SharedMemoryOptions limits;
  limits.max_regions = 2;
  limits.max_bytes = 65536;
  std::string key;
  {
    TestServer server(WithSharedMemory(limits));
    ShmObject object(65536);
    key = object.key();
    ASSERT_TRUE(Register(server, "a", object.key(), 0, 4096).ok());
    EXPECT_EQ(Register(server, "a", object.key(), 0, 4096).error_code(),
              grpc::StatusCode::ALREADY_EXISTS);
    EXPECT_EQ(Register(server, "b", object.key(), 0, 65536).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(Register(server, "b", "../b", 0, 4).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(Register(server, "b", "/sepconv_no_such_object", 0, 4).error_code(),
              grpc::StatusCode::NOT_FOUND);
    ASSERT_TRUE(Register(server, "b", object.key(), 8, 4096).ok());
    EXPECT_EQ(Register(server, "c", object.key(), 0, 4).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);

    inference::SystemSharedMemoryStatusResponse status;
    ASSERT_TRUE(Status(server, "", &status).ok());
    ASSERT_EQ(status.regions_size(), 2);
    EXPECT_EQ(status.regions().at("b").key(), object.key());
    EXPECT_EQ(status.regions().at("b").offset(), 8u);
    EXPECT_EQ(status.regions().at("b").byte_size(), 4096u);
    EXPECT_EQ(Status(server, "zzz", &status).error_code(), grpc::StatusCode::NOT_FOUND);

    EXPECT_EQ(MappingsOf(object.key()), 3);  // the test's and the server's two
    ASSERT_TRUE(Unregister(server, "a").ok());
    EXPECT_EQ(MappingsOf(object.key()), 2);
    ASSERT_TRUE(Register(server, "c", object.key(), 0, 4).ok());
    EXPECT_EQ(MappingsOf(object.key()), 3);
    ASSERT_TRUE(Unregister(server, "").ok());  // every region
    EXPECT_EQ(MappingsOf(object.key()), 1);
    ASSERT_TRUE(Register(server, "d", object.key(), 0, 4).ok());  // left for shutdown
    EXPECT_EQ(MappingsOf(object.key()), 2);
  }
  EXPECT_EQ(MappingsOf(key), 0);  // the server unmapped it at shutdown
}

TEST(SharedMemoryServiceTest, OffByDefault) {
  TestServer server;
  ShmObject object(65536);
  EXPECT_EQ(Register(server, "a", object.key(), 0, 4096).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  inference::SystemSharedMemoryStatusResponse status;
  EXPECT_EQ(Status(server, "", &status).error_code(), grpc::StatusCode::UNAVAILABLE);
  GrpcAnswer answer = Infer(server, ShmRequest("a", 0, "", 0));
  EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(answer.status.error_message(), HasSubstr("--allow_shared_memory"));
  inference::ServerMetadataResponse metadata;
  auto context = ContextWithDeadline();
  ASSERT_TRUE(server.NewStub()
                  ->ServerMetadata(context.get(), inference::ServerMetadataRequest(), &metadata)
                  .ok());
  EXPECT_THAT(metadata.extensions(), ::testing::Not(::testing::Contains("system_shared_memory")));

  TestServer on(WithSharedMemory());
  auto on_context = ContextWithDeadline();
  ASSERT_TRUE(on.NewStub()
                  ->ServerMetadata(on_context.get(), inference::ServerMetadataRequest(), &metadata)
                  .ok());
  EXPECT_THAT(metadata.extensions(), ::testing::Contains("system_shared_memory"));
}

TEST(SharedMemoryServiceTest, TokensGuardControlAndInference) {
  absl::StatusOr<ServerOptions> options = WithTokens(WithSharedMemory(), {"s3cret"});
  ASSERT_TRUE(options.ok()) << options.status();
  RestServer s(*options);
  TestServer& server = s.grpc;
  ShmObject object(65536);
  EXPECT_EQ(Register(server, "in", object.key(), 0, 16384).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Register(server, "in", object.key(), 0, 16384, "wrong").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(Register(server, "in", object.key(), 0, 16384, "s3cret").ok());
  inference::SystemSharedMemoryStatusResponse status;
  EXPECT_EQ(Status(server, "", &status).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Status(server, "", &status, "s3cret").ok());
  EXPECT_EQ(Infer(server, ShmRequest("in", 0, "", 0)).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Infer(server, ShmRequest("in", 0, "", 0), "s3cret").status.ok());
  EXPECT_EQ(Unregister(server, "in").error_code(), grpc::StatusCode::UNAUTHENTICATED);

  auto c = s.Client();
  const httplib::Headers token = {{"Authorization", "Bearer s3cret"}};
  EXPECT_EQ(c->Get("/v2/systemsharedmemory/status")->status, 401);
  EXPECT_EQ(c->Get("/v2/systemsharedmemory/status", token)->status, 200);
  const std::string body = R"({"key":")" + object.key() + R"(","offset":0,"byte_size":4})";
  EXPECT_EQ(c->Post("/v2/systemsharedmemory/region/r/register", body, "application/json")->status,
            401);
  EXPECT_EQ(
      c->Post("/v2/systemsharedmemory/region/r/register", token, body, "application/json")->status,
      200);
  EXPECT_EQ(c->Post("/v2/systemsharedmemory/unregister", "", "application/json")->status, 401);
  EXPECT_EQ(c->Post("/v2/systemsharedmemory/unregister", token, "", "application/json")->status,
            200);
  EXPECT_TRUE(Status(server, "", &status, "s3cret").ok());
  EXPECT_EQ(status.regions_size(), 0);
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 200);  // probes stay open
}

TEST(SharedMemoryServiceTest, TruncatedObjectFailsItsRequestAndTheServerServesOn) {
  TestServer server(WithSharedMemory());
  ShmObject object(65536);
  object.Write(0, RandomTensor(Elements(kDims), 3));
  ASSERT_TRUE(Register(server, "in", object.key(), 0, 16384).ok());
  ASSERT_TRUE(Register(server, "out", object.key(), 16384, 32768).ok());
  ASSERT_TRUE(Infer(server, ShmRequest("in", 0, "out", 0)).status.ok());
  object.Truncate(4096);
  GrpcAnswer answer = Infer(server, ShmRequest("in", 0, "out", 0));
  EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(answer.status.error_message(), HasSubstr("truncated"));
  EXPECT_FALSE(RawAnswer(server, RandomTensor(Elements(kDims), 4)).empty());
  EXPECT_TRUE(Unregister(server, "").ok());
  EXPECT_EQ(MappingsOf(object.key()), 1);
}

// The REST routes: the same registry, Triton's bodies and status codes.
TEST(SharedMemoryServiceTest, RestRoutesAndInference) {
  RestServer s(WithSharedMemory());
  auto c = s.Client();
  ShmObject object(65536);
  const std::vector<float> input = RandomTensor(Elements(kDims), 21);
  object.Write(0, input);
  const auto post = [&](const std::string& path, const std::string& body) {
    return c->Post(path, body, "application/json");
  };
  const std::string key = object.key();
  EXPECT_EQ(post("/v2/systemsharedmemory/region/in/register",
                 R"({"key":")" + key + R"(","offset":0,"byte_size":16384})")
                ->status,
            200);
  EXPECT_EQ(post("/v2/systemsharedmemory/region/out/register",
                 R"({"key":")" + key + R"(","offset":16384,"byte_size":32768})")
                ->status,
            200);
  auto all = c->Get("/v2/systemsharedmemory/status");
  ASSERT_EQ(all->status, 200);
  rapidjson::Document doc;
  doc.Parse(all->body.c_str());
  ASSERT_TRUE(doc.IsArray()) << all->body;
  ASSERT_EQ(doc.Size(), 2u);
  EXPECT_STREQ(doc[1]["name"].GetString(), "out");
  EXPECT_EQ(doc[1]["key"].GetString(), key);
  EXPECT_EQ(doc[1]["offset"].GetUint64(), 16384u);
  EXPECT_EQ(doc[1]["byte_size"].GetUint64(), 32768u);
  auto one = c->Get("/v2/systemsharedmemory/region/in/status");
  ASSERT_EQ(one->status, 200);
  EXPECT_THAT(one->body, HasSubstr(R"("name":"in")"));
  EXPECT_EQ(c->Get("/v2/systemsharedmemory/region/zzz/status")->status, 404);

  // Register errors: each 400, as Triton answers (429 past a limit).
  for (const std::string& bad :
       {std::string("not json"), std::string("[]"), std::string(R"({"offset":0,"byte_size":4})"),
        std::string(R"({"key":7,"byte_size":4})"), R"({"key":")" + key + R"(","byte_size":-4})",
        R"({"key":")" + key + R"(","offset":"0","byte_size":4})", R"({"key":")" + key + R"("})",
        std::string(R"({"key":"../x","byte_size":4})"),
        R"({"key":")" + key + R"(","offset":65536,"byte_size":1})"}) {
    auto answer = post("/v2/systemsharedmemory/region/bad/register", bad);
    EXPECT_EQ(answer->status, 400) << bad << " -> " << answer->body;
    EXPECT_THAT(answer->body, HasSubstr("\"error\"")) << bad;
  }
  EXPECT_EQ(
      post("/v2/systemsharedmemory/region/in/register", R"({"key":")" + key + R"(","byte_size":4})")
          ->status,
      400);  // the name is taken
  EXPECT_EQ(c->Get("/v2/systemsharedmemory/region/in/register")->status, 405);
  EXPECT_EQ(post("/v2/systemsharedmemory/status", "")->status, 405);

  // Inference: JSON request naming the regions; the answer has no data.
  const std::string infer =
      R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,32,8,8],)"
      R"("parameters":{"shared_memory_region":"in","shared_memory_byte_size":8192}}],)"
      R"("outputs":[{"name":"output","parameters":{"shared_memory_region":"out",)"
      R"("shared_memory_offset":0,"shared_memory_byte_size":16384}}]})";
  auto answer = post("/v2/models/sepconv/infer", infer);
  ASSERT_EQ(answer->status, 200) << answer->body;
  EXPECT_THAT(answer->body, HasSubstr(R"("shape":[1,64,8,8]})"));
  EXPECT_THAT(answer->body, ::testing::Not(HasSubstr("\"data\"")));
  const std::vector<float> expected = s.Grpc(kDims, input, /*raw=*/true);
  EXPECT_TRUE(SameBits(object.Read(16384, expected.size()), expected));
  // Input from the region, output in the answer as JSON.
  auto json_out = post("/v2/models/sepconv/infer",
                       R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,32,8,8],)"
                       R"("parameters":{"shared_memory_region":"in",)"
                       R"("shared_memory_byte_size":8192}}]})");
  ASSERT_EQ(json_out->status, 200) << json_out->body;
  auto floats = RestOutputFloats(*json_out);
  ASSERT_TRUE(floats.ok()) << floats.status();
  EXPECT_TRUE(SameBits(*floats, expected));
  // Malformed parameters: 400 with the field named.
  auto bad_type = post("/v2/models/sepconv/infer",
                       R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,32,8,8],)"
                       R"("parameters":{"shared_memory_region":"in",)"
                       R"("shared_memory_byte_size":"8192"}}]})");
  EXPECT_EQ(bad_type->status, 400);
  EXPECT_THAT(bad_type->body, HasSubstr("shared_memory_byte_size"));
  auto with_data = post("/v2/models/sepconv/infer",
                        R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,1,1,1],)"
                        R"("data":[1],"parameters":{"shared_memory_region":"in",)"
                        R"("shared_memory_byte_size":4}}]})");
  EXPECT_EQ(with_data->status, 400);

  EXPECT_EQ(post("/v2/systemsharedmemory/region/in/unregister", "")->status, 200);
  EXPECT_EQ(MappingsOf(key), 2);
  EXPECT_EQ(post("/v2/systemsharedmemory/unregister", "")->status, 200);
  EXPECT_EQ(MappingsOf(key), 1);
  auto gone = c->Get("/v2/systemsharedmemory/status");
  EXPECT_EQ(gone->body, "[]");
}

TEST(SharedMemoryServiceTest, RestOffByDefault) {
  RestServer s;
  auto c = s.Client();
  EXPECT_EQ(c->Get("/v2/systemsharedmemory/status")->status, 503);
  EXPECT_EQ(c->Post("/v2/systemsharedmemory/region/r/register", R"({"key":"/x","byte_size":4})",
                    "application/json")
                ->status,
            503);
  EXPECT_THAT(c->Get("/v2")->body, ::testing::Not(HasSubstr("system_shared_memory")));
}

}  // namespace
}  // namespace sepconv::testing
