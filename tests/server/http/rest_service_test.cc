// The REST frontend over a real in-process server on 127.0.0.1: the gRPC
// server's InferenceCore shared with an HttpServer, as main wires them.
// REST answers equal gRPC answers bit for bit (JSON and binary), malformed
// requests get their precise status and leave the server serving, REST and
// gRPC under load at once, bearer tokens and TLS over REST.

#include <zlib.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "rapidjson/document.h"
#include "rest_test_util.h"
#include "server/http/http_server.h"
#include "server_test_util.h"
#include "tests/server/security/test_pki.h"

namespace sepconv::testing {
namespace {

TEST(RestServiceTest, HealthAndMetadata) {
  RestServer s;
  auto c = s.Client();
  EXPECT_EQ(c->Get("/v2/health/live")->status, 200);
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 200);
  EXPECT_EQ(c->Get("/v2/models/sepconv/ready")->status, 200);
  EXPECT_EQ(c->Get("/v2/models/sepconv/versions/1/ready")->status, 200);
  EXPECT_EQ(c->Get("/v2/models/nope/ready")->status, 400);
  auto server = c->Get("/v2");
  ASSERT_EQ(server->status, 200);
  rapidjson::Document doc;
  doc.Parse(server->body.c_str());
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("name") && doc.HasMember("extensions") &&
              doc["extensions"].IsArray())
      << server->body;
  // Triton's names for what is served, the same list as gRPC's.
  std::vector<std::string> extensions;
  for (const auto& e : doc["extensions"].GetArray()) extensions.push_back(e.GetString());
  inference::ServerMetadataResponse grpc_metadata;
  auto context = ContextWithDeadline();
  ASSERT_TRUE(
      s.grpc.NewStub()
          ->ServerMetadata(context.get(), inference::ServerMetadataRequest(), &grpc_metadata)
          .ok());
  EXPECT_THAT(extensions, ::testing::ElementsAreArray(grpc_metadata.extensions()));
  EXPECT_THAT(extensions,
              ::testing::UnorderedElementsAre("binary_tensor_data", "model_configuration",
                                              "model_repository", "statistics"))
      << server->body;
  auto model = c->Get("/v2/models/sepconv");
  ASSERT_EQ(model->status, 200) << model->body;
  doc.Parse(model->body.c_str());
  ASSERT_TRUE(doc.IsObject()) << model->body;
  EXPECT_STREQ(doc["name"].GetString(), "sepconv");
  EXPECT_STREQ(doc["inputs"][0]["name"].GetString(), "input");
  EXPECT_STREQ(doc["outputs"][0]["datatype"].GetString(), "FP32");
  auto missing = c->Get("/v2/models/nope");
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("\"error\""), std::string::npos);
}

// The body of a compressed answer, inflated (gzip or zlib-wrapped deflate).
std::string Inflate(const std::string& compressed) {
  z_stream stream{};
  EXPECT_EQ(inflateInit2(&stream, 15 + 32), Z_OK);  // +32: gzip or zlib, detected
  std::string out(1 << 20, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  int result = Z_OK;
  while (result == Z_OK) {
    if (stream.total_out == out.size()) out.resize(out.size() * 2);
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + stream.total_out);
    stream.avail_out = static_cast<uInt>(out.size() - stream.total_out);
    result = inflate(&stream, Z_NO_FLUSH);
  }
  EXPECT_EQ(result, Z_STREAM_END);
  out.resize(stream.total_out);
  inflateEnd(&stream);
  return out;
}

// A client that accepts gzip or deflate gets every answer compressed that
// way (JSON and binary tensors) and, inflated, the same bytes as without.
TEST(RestServiceTest, AnswersCompressedAsTheClientAccepts) {
  RestServer s;
  auto c = s.Client();
  c->set_decompress(false);  // the test inflates, to see what was sent
  const Dims4 dims{1, 32, 6, 5};
  const std::vector<float> input = RandomTensor(Elements(dims), 31);
  for (bool binary : {false, true}) {
    const RestBody body = MakeRestBody(dims, input, binary);
    auto plain = PostInfer(*c, "sepconv", body);
    ASSERT_TRUE(plain) << httplib::to_string(plain.error());
    ASSERT_EQ(plain->status, 200);
    EXPECT_FALSE(plain->has_header("Content-Encoding"));
    for (const char* accept : {"gzip", "deflate", "deflate;q=1, gzip;q=0"}) {
      auto packed = PostInfer(*c, "sepconv", body, {{"Accept-Encoding", accept}});
      ASSERT_TRUE(packed) << accept << ": " << httplib::to_string(packed.error());
      ASSERT_EQ(packed->status, 200) << accept;
      const std::string encoding = packed->get_header_value("Content-Encoding");
      EXPECT_EQ(encoding, std::string(accept).substr(0, encoding.size())) << accept;
      EXPECT_LT(packed->body.size(), plain->body.size()) << accept;
      EXPECT_EQ(Inflate(packed->body), plain->body) << accept << (binary ? " binary" : " json");
      EXPECT_EQ(packed->get_header_value("Inference-Header-Content-Length"),
                plain->get_header_value("Inference-Header-Content-Length"));
    }
  }
  // Errors and metadata too; an encoding refused with q=0 or unknown: none.
  auto error = c->Get("/v2/models/nope", {{"Accept-Encoding", "deflate"}});
  ASSERT_TRUE(error) << httplib::to_string(error.error());
  EXPECT_EQ(error->status, 404);
  EXPECT_THAT(Inflate(error->body), ::testing::HasSubstr("\"error\""));
  for (const char* accept : {"gzip;q=0", "identity", "zstd"}) {
    auto answer = c->Get("/v2/models/sepconv", {{"Accept-Encoding", accept}});
    ASSERT_TRUE(answer) << accept << ": " << httplib::to_string(answer.error());
    EXPECT_FALSE(answer->has_header("Content-Encoding")) << accept;
  }
}

// Whatever the JSON header's length (the server pads it so that the tensor
// bytes after it are aligned), and with the request gzip-compressed, the
// binary answer is gRPC's.
TEST(RestServiceTest, BinaryInputAtEveryAlignmentEqualsGrpc) {
  RestServer s;
  auto c = s.Client();
  const Dims4 dims{1, 32, 6, 6};
  const std::vector<float> input = RandomTensor(Elements(dims), 41);
  const std::vector<float> grpc = s.Grpc(dims, input, /*raw=*/true);
  ASSERT_FALSE(grpc.empty());
  for (size_t extra = 0; extra < 8; ++extra) {
    c->set_compress(extra >= 4);  // httplib's client gzips the request body
    RestBody body = MakeRestBody(dims, input, /*binary=*/true);
    body.content.insert(body.header_length, extra % 4, ' ');  // JSON allows trailing blanks
    body.header_length += extra % 4;
    auto answer = PostInfer(*c, "sepconv", body);
    ASSERT_TRUE(answer) << httplib::to_string(answer.error());
    ASSERT_EQ(answer->status, 200) << extra << ": " << answer->body;
    absl::StatusOr<std::vector<float>> rest = RestOutputFloats(*answer);
    ASSERT_TRUE(rest.ok()) << rest.status();
    EXPECT_TRUE(SameBits(*rest, grpc)) << "header length % 4 = " << body.header_length % 4;
  }
}

TEST(RestServiceTest, RestEqualsGrpcBitForBit) {
  RestServer s;
  auto c = s.Client();
  for (const Dims4& dims : {Dims4{1, 32, 8, 8}, Dims4{2, 32, 5, 7}}) {
    const std::vector<float> input = RandomTensor(Elements(dims), 7 + dims.n);
    const std::vector<float> grpc_raw = s.Grpc(dims, input, /*raw=*/true);
    const std::vector<float> grpc_typed = s.Grpc(dims, input, /*raw=*/false);
    ASSERT_FALSE(grpc_raw.empty());
    EXPECT_TRUE(SameBits(grpc_raw, grpc_typed));
    for (bool binary : {false, true}) {
      auto answer = PostInfer(*c, "sepconv", MakeRestBody(dims, input, binary, "id-7"));
      ASSERT_TRUE(answer) << httplib::to_string(answer.error());
      absl::StatusOr<std::vector<float>> rest = RestOutputFloats(*answer);
      ASSERT_TRUE(rest.ok()) << rest.status();
      EXPECT_TRUE(SameBits(*rest, grpc_raw)) << (binary ? "binary" : "json");
      // The header names the model, the version, the id and the shape.
      const size_t header =
          binary ? std::stoul(answer->get_header_value("Inference-Header-Content-Length"))
                 : answer->body.size();
      rapidjson::Document doc;
      doc.Parse(answer->body.data(), header);
      ASSERT_TRUE(doc.IsObject());
      EXPECT_STREQ(doc["id"].GetString(), "id-7");
      EXPECT_STREQ(doc["model_name"].GetString(), "sepconv");
      EXPECT_EQ(doc["outputs"][0]["shape"][0].GetInt64(), dims.n);
    }
  }
}

struct BadRequest {
  const char* what;
  std::string method;
  std::string path;
  std::string body;
  httplib::Headers headers;
  int status;
};

TEST(RestServiceTest, MalformedRequestsGetTheirStatusAndTheServerKeepsServing) {
  RestServer s;
  auto c = s.Client();
  const Dims4 dims{1, 32, 4, 4};
  const std::vector<float> input = RandomTensor(Elements(dims), 3);
  const RestBody json = MakeRestBody(dims, input, false);
  const RestBody binary = MakeRestBody(dims, input, true);
  const std::string infer = "/v2/models/sepconv/infer";
  std::string mismatch = json.content;
  mismatch.replace(mismatch.find("[1,32,4,4]"), 10, "[1,32,4,5]");
  std::string int32 = json.content;
  int32.replace(int32.find("FP32"), 4, "INT32");
  const std::vector<BadRequest> cases = {
      {"bad json", "POST", infer, "{\"inputs\":[", {}, 400},
      {"wrong type", "POST", infer, R"({"inputs":[{"name":"input","shape":"1"}]})", {}, 400},
      {"data/shape mismatch", "POST", infer, mismatch, {}, 400},
      {"wrong datatype", "POST", infer, int32, {}, 400},
      {"header longer than body",
       "POST",
       infer,
       binary.content,
       {{"Inference-Header-Content-Length", std::to_string(binary.content.size() + 1)}},
       400},
      {"header length not a number",
       "POST",
       infer,
       binary.content,
       {{"Inference-Header-Content-Length", "12x"}},
       400},
      {"binary size beyond body",
       "POST",
       infer,
       binary.content.substr(0, binary.content.size() - 4),
       {{"Inference-Header-Content-Length", std::to_string(binary.header_length)}},
       400},
      {"oversized body", "POST", infer, std::string(5 << 20, ' '), {}, 413},
      {"unknown model", "POST", "/v2/models/nope/infer", json.content, {}, 404},
      {"unknown route", "GET", "/v2/nothing", "", {}, 404},
      {"unknown infer route", "POST", "/v2/models/sepconv/infer/more", json.content, {}, 404},
      {"wrong method on infer", "GET", infer, "", {}, 405},
      {"wrong method on health", "POST", "/v2/health/live", "{}", {}, 405},
      // Triton's extensions: malformed, oversized and wrong-method bodies.
      {"index body not JSON", "POST", "/v2/repository/index", "{", {}, 400},
      {"index ready not a boolean", "POST", "/v2/repository/index", R"({"ready":1})", {}, 400},
      {"index body oversized", "POST", "/v2/repository/index", std::string(5 << 20, ' '), {}, 413},
      {"load body oversized",
       "POST",
       "/v2/repository/models/sepconv/load",
       std::string(5 << 20, ' '),
       {},
       413},
      {"unload body oversized",
       "POST",
       "/v2/repository/models/sepconv/unload",
       std::string(5 << 20, ' '),
       {},
       413},
      {"register body oversized",
       "POST",
       "/v2/systemsharedmemory/region/r/register",
       std::string(5 << 20, ' '),
       {},
       413},
      {"wrong method on config", "POST", "/v2/models/sepconv/config", "{}", {}, 405},
      {"wrong method on stats", "POST", "/v2/models/sepconv/stats", "{}", {}, 405},
      {"wrong method on index", "GET", "/v2/repository/index", "", {}, 405},
      {"wrong method on load", "GET", "/v2/repository/models/sepconv/load", "", {}, 405},
      {"config of an unknown model", "GET", "/v2/models/nope/config", "", {}, 404},
      {"stats of an unknown version", "GET", "/v2/models/sepconv/versions/9/stats", "", {}, 404},
  };
  for (const BadRequest& bad : cases) {
    httplib::Result answer =
        bad.method == "GET" ? c->Get(bad.path.c_str(), bad.headers)
                            : c->Post(bad.path.c_str(), bad.headers, bad.body, "application/json");
    ASSERT_TRUE(answer) << bad.what << ": " << httplib::to_string(answer.error());
    EXPECT_EQ(answer->status, bad.status) << bad.what << ": " << answer->body;
    rapidjson::Document doc;
    doc.Parse(answer->body.c_str());
    EXPECT_TRUE(doc.IsObject() && doc.HasMember("error") && doc["error"].IsString())
        << bad.what << ": " << answer->body;
    // Still serving, on a fresh connection too.
    auto good = PostInfer(*s.Client(), "sepconv", json);
    ASSERT_TRUE(good) << bad.what;
    EXPECT_EQ(good->status, 200) << bad.what << ": " << good->body;
  }
}

TEST(RestServiceTest, RestAndGrpcAtOnceUnderLoadAllAnswersCorrect) {
  RestServer s;
  const Dims4 dims{1, 32, 8, 8};
  constexpr int kInputs = 4;
  std::vector<std::vector<float>> inputs, expected;
  for (int i = 0; i < kInputs; ++i) {
    inputs.push_back(RandomTensor(Elements(dims), 100 + i));
    expected.push_back(s.Grpc(dims, inputs.back(), true));
    ASSERT_FALSE(expected.back().empty());
  }
  constexpr int kPerClient = 25;  // bounded: a few seconds on 2 shared cores
  std::atomic<int> wrong{0}, done{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      auto c = s.Client();
      auto stub = s.grpc.NewStub();
      for (int i = 0; i < kPerClient; ++i) {
        const int k = (t + i) % kInputs;
        std::vector<float> got;
        if (t % 2 == 0) {  // REST, JSON and binary alternating
          auto answer = PostInfer(*c, "sepconv", MakeRestBody(dims, inputs[k], i % 2 == 0));
          if (answer) {
            absl::StatusOr<std::vector<float>> floats = RestOutputFloats(*answer);
            if (floats.ok()) got = *std::move(floats);
          }
        } else {
          inference::ModelInferResponse response;
          auto context = ContextWithDeadline();
          if (stub->ModelInfer(context.get(), MakeInferRequest("sepconv", dims, inputs[k], true),
                               &response)
                  .ok()) {
            got = OutputFloats(response);
          }
        }
        if (!SameBits(got, expected[k])) wrong.fetch_add(1);
        done.fetch_add(1);
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(done.load(), 8 * kPerClient);
  EXPECT_EQ(wrong.load(), 0);
}

TEST(RestServiceTest, BearerTokens) {
  absl::StatusOr<ServerOptions> options = WithTokens(TestServer::DefaultOptions(), {"s3cret"});
  ASSERT_TRUE(options.ok()) << options.status();
  RestServer s(*options);
  auto c = s.Client();
  const Dims4 dims{1, 32, 4, 4};
  const RestBody body = MakeRestBody(dims, RandomTensor(Elements(dims), 1), false);
  EXPECT_EQ(PostInfer(*c, "sepconv", body)->status, 401);
  EXPECT_EQ(PostInfer(*c, "sepconv", body, {{"Authorization", "Bearer wrong"}})->status, 401);
  EXPECT_EQ(PostInfer(*c, "sepconv", body, {{"Authorization", "Bearer s3cret"}})->status, 200);
  // Malformed and unauthenticated: the caller learns only that it is not let in.
  EXPECT_EQ(c->Post("/v2/models/sepconv/infer", "{", "application/json")->status, 401);
  EXPECT_EQ(c->Get("/v2")->status, 401);
  EXPECT_EQ(c->Get("/v2/models/sepconv")->status, 401);
  EXPECT_EQ(c->Get("/v2", {{"Authorization", "Bearer s3cret"}})->status, 200);
  EXPECT_EQ(c->Get("/v2/health/live")->status, 200);  // probes stay open
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 200);
  // Triton's extensions need the token too.
  const httplib::Headers token = {{"Authorization", "Bearer s3cret"}};
  for (const char* path :
       {"/v2/models/sepconv/config", "/v2/models/stats", "/v2/models/sepconv/versions/1/stats"}) {
    EXPECT_EQ(c->Get(path)->status, 401) << path;
    EXPECT_EQ(c->Get(path, token)->status, 200) << path;
  }
  EXPECT_EQ(c->Post("/v2/repository/index", "", "application/json")->status, 401);
  EXPECT_EQ(c->Post("/v2/repository/index", token, "", "application/json")->status, 200);
  EXPECT_EQ(c->Post("/v2/repository/models/sepconv/load", "", "application/json")->status, 401);
  EXPECT_EQ(c->Post("/v2/repository/models/sepconv/load", token, "", "application/json")->status,
            503);  // no repository: Triton's answer outside explicit mode
}

// Triton's configuration and statistics extensions over REST equal gRPC's
// answers for the same moment.
TEST(RestServiceTest, ConfigAndStatisticsEqualGrpc) {
  RestServer s;
  auto c = s.Client();
  const Dims4 dims{2, 32, 5, 4};
  for (uint64_t seed = 0; seed < 3; ++seed) {
    ASSERT_FALSE(s.Grpc(dims, RandomTensor(Elements(dims), seed), true).empty());
  }
  const Dims4 wrong{1, 16, 2, 2};  // 16 channels: refused by validation, counted as a failure
  auto bad = PostInfer(*c, "sepconv", MakeRestBody(wrong, RandomTensor(Elements(wrong), 9), false));
  EXPECT_EQ(bad->status, 400);
  // A body that does not parse is counted as a failure too, as over gRPC.
  EXPECT_EQ(c->Post("/v2/models/sepconv/infer", "{", "application/json")->status, 400);

  auto config = c->Get("/v2/models/sepconv/config");
  ASSERT_EQ(config->status, 200) << config->body;
  sepconv::ModelConfig from_rest;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(config->body, &from_rest).ok())
      << config->body;
  inference::ModelConfigRequest config_request;
  config_request.set_name("sepconv");
  inference::ModelConfigResponse config_response;
  auto context = ContextWithDeadline();
  ASSERT_TRUE(s.grpc.NewStub()->ModelConfig(context.get(), config_request, &config_response).ok());
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(from_rest, config_response.config()))
      << config->body;
  EXPECT_THAT(config->body, ::testing::HasSubstr(R"("max_batch_size":)"));  // proto field names
  EXPECT_EQ(c->Get("/v2/models/nope/config")->status, 404);
  EXPECT_EQ(c->Get("/v2/models/sepconv/versions/9/config")->status, 404);

  for (const std::string& path :
       {std::string("/v2/models/stats"), std::string("/v2/models/sepconv/stats"),
        std::string("/v2/models/sepconv/versions/1/stats")}) {
    auto stats = c->Get(path);
    ASSERT_EQ(stats->status, 200) << path << ": " << stats->body;
    inference::ModelStatisticsResponse from_rest_stats;
    google::protobuf::util::JsonParseOptions lenient;
    ASSERT_TRUE(
        google::protobuf::util::JsonStringToMessage(stats->body, &from_rest_stats, lenient).ok())
        << stats->body;
    inference::ModelStatisticsRequest request;
    if (path != "/v2/models/stats") request.set_name("sepconv");
    inference::ModelStatisticsResponse from_grpc;
    auto stats_context = ContextWithDeadline();
    ASSERT_TRUE(s.grpc.NewStub()->ModelStatistics(stats_context.get(), request, &from_grpc).ok());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(from_rest_stats, from_grpc))
        << path << ": " << stats->body << "\nvs\n"
        << from_grpc.DebugString();
    const inference::ModelStatistics* sepconv = nullptr;
    for (const auto& model : from_grpc.model_stats()) {
      if (model.name() == "sepconv") sepconv = &model;
    }
    ASSERT_NE(sepconv, nullptr) << path;
    EXPECT_EQ(sepconv->inference_count(), 6u);  // 3 requests of 2 samples
    EXPECT_EQ(sepconv->inference_stats().fail().count(), 2u);
  }
  EXPECT_EQ(c->Get("/v2/models/nope/stats")->status, 404);
  EXPECT_EQ(c->Post("/v2/models/stats", "", "application/json")->status, 405);
  EXPECT_EQ(c->Post("/v2/models/sepconv/config", "", "application/json")->status, 405);
}

TEST(RestServiceTest, TlsAndMutualTls) {
  absl::StatusOr<std::unique_ptr<TestPki>> pki = TestPki::Create();
  ASSERT_TRUE(pki.ok()) << pki.status();
  HttpServerOptions http = RestServer::Options();
  http.tls = {(*pki)->Path("server.crt"), (*pki)->Path("server.key"), (*pki)->Path("ca.crt")};
  RestServer s(TestServer::DefaultOptions(), http);
  const Dims4 dims{1, 32, 4, 4};
  const RestBody body = MakeRestBody(dims, RandomTensor(Elements(dims), 2), true);

  httplib::SSLClient good("127.0.0.1", s.rest->port(), (*pki)->Path("client.crt"),
                          (*pki)->Path("client.key"));
  good.set_ca_cert_path((*pki)->Path("ca.crt").c_str());
  good.enable_server_certificate_verification(true);
  auto answer = good.Post("/v2/models/sepconv/infer",
                          {{"Inference-Header-Content-Length", std::to_string(body.header_length)}},
                          body.content, "application/octet-stream");
  ASSERT_TRUE(answer) << httplib::to_string(answer.error());
  EXPECT_EQ(answer->status, 200);

  // No client certificate, or one another CA signed: no answer at all.
  httplib::SSLClient anonymous("127.0.0.1", s.rest->port());
  anonymous.set_ca_cert_path((*pki)->Path("ca.crt").c_str());
  EXPECT_FALSE(anonymous.Get("/v2/health/live"));
  httplib::SSLClient stranger("127.0.0.1", s.rest->port(), (*pki)->Path("other_client.crt"),
                              (*pki)->Path("other_client.key"));
  stranger.set_ca_cert_path((*pki)->Path("ca.crt").c_str());
  EXPECT_FALSE(stranger.Get("/v2/health/live"));
  // Plain HTTP to the TLS port: no answer either.
  httplib::Client plain("127.0.0.1", s.rest->port());
  plain.set_read_timeout(5, 0);
  auto refused = plain.Get("/v2/health/live");
  EXPECT_TRUE(!refused || refused->status != 200);
}

TEST(RestServiceTest, BadTlsFilesAreAClearError) {
  HttpServerOptions http = RestServer::Options();
  http.tls.cert_file = "/nonexistent/server.crt";
  http.tls.key_file = "/nonexistent/server.key";
  TestServer grpc;
  auto started = HttpServer::Start(http, grpc.server().core());
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.status().message().find("/nonexistent/server.crt"), std::string::npos)
      << started.status();
}

TEST(RestServiceTest, ShutdownRefusesWith503ThenStops) {
  RestServer s;
  auto c = s.Client();
  const Dims4 dims{1, 32, 4, 4};
  const RestBody body = MakeRestBody(dims, RandomTensor(Elements(dims), 4), false);
  ASSERT_EQ(PostInfer(*c, "sepconv", body)->status, 200);
  s.grpc.server().core()->StartShutdown();
  s.grpc.server().core()->ReleaseRefusals();
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 400);
  EXPECT_EQ(c->Get("/v2/health/live")->status, 200);
  EXPECT_EQ(PostInfer(*c, "sepconv", body)->status, 503);
  s.rest->Shutdown();
  EXPECT_FALSE(s.Client()->Get("/v2/health/live"));
}

}  // namespace
}  // namespace sepconv::testing
