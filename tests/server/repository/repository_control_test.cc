// Triton's repository extension over gRPC (stub from the same proto) with
// --model_control_mode=explicit as sepconv-server wires it: only the named
// models load at start-up; RepositoryIndex, RepositoryModelLoad and
// RepositoryModelUnload; ModelConfig of models from config.pbtxt and from
// ONNX alone; a broken model's load error; unload and reload while clients
// keep sending (none of their accepted requests is dropped); and Triton's
// UNAVAILABLE answer outside explicit mode. The same over REST (Triton's
// routes), each answer checked against gRPC's.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "rapidjson/document.h"
#include "server/http/http_server.h"
#include "server/models/repository_sync.h"
#include "server_test_util.h"
#include "tests/engine/loader/onnx_test_graph.h"
#include "tests/server/repository/seeded_graph.h"
#include "tests/testing/temp_tree.h"

namespace sepconv {
namespace {

namespace fs = std::filesystem;
using testing::ContextWithDeadline;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_onnx::TestGraph;
using Stub = inference::GRPCInferenceService::Stub;

constexpr int64_t kChannels = 32;

TestGraph SeededGraph(uint32_t seed) {
  return testing::SeededGraph(seed, {kChannels, 16, /*batch_norm=*/false, /*relu=*/true});
}

class RepositoryControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Write("m/1/model.onnx", SeededGraph(1).Serialize());  // ONNX alone
    Write("c/config.pbtxt",
          "max_batch_size: 2\n"
          "dynamic_batching { max_queue_delay_microseconds: 150 }\n"
          "sepconv { seed: 3 layers { in_channels: 32 out_channels: 8 } }\n");
    TestGraph pool(kChannels);
    pool.Node("MaxPool", {pool.current()});
    pool.Finish();
    Write("bad/1/model.onnx", pool.Serialize());
  }
  void TearDown() override {
    rest_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
    if (sync_) sync_->Stop();
    sync_.reset();
  }

  void Write(const std::string& relative, const std::string& bytes) {
    tree_.Write(relative, bytes);
  }

  // Starts the repository (explicit mode with `load`, else poll-less none
  // mode) and a server whose service controls it.
  void Start(bool explicit_mode, const std::vector<std::string>& load) {
    options_ = testing::TestServer::DefaultOptions();
    options_.scheduler.max_batch_size = 4;
    options_.scheduler.max_queue_delay = absl::Microseconds(100);
    options_.exit_timeout = absl::Seconds(10);
    absl::StatusOr<std::unique_ptr<RepositorySync>> sync =
        explicit_mode ? RepositorySync::StartExplicit(root_.string(), options_, metrics_.get(),
                                                      registry_, load)
                      : RepositorySync::Start(root_.string(), options_, metrics_.get(), registry_,
                                              absl::ZeroDuration());
    ASSERT_TRUE(sync.ok()) << sync.status();
    sync_ = *std::move(sync);
    ServerOptions server_options = options_;
    server_options.core.control = sync_;
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(server_options, registry_, metrics_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    HttpServerOptions http;
    http.address = "127.0.0.1";
    http.port = 0;
    http.threads = 4;
    absl::StatusOr<std::unique_ptr<HttpServer>> rest = HttpServer::Start(http, server_->core());
    ASSERT_TRUE(rest.ok()) << rest.status();
    rest_ = *std::move(rest);
  }

  std::unique_ptr<httplib::Client> Rest() const {
    auto client = std::make_unique<httplib::Client>("127.0.0.1", rest_->port());
    client->set_read_timeout(60, 0);
    return client;
  }
  // The REST index as Index's rows ("name/version:state").
  std::vector<std::string> RestIndex(bool ready_only) const {
    auto answer = Rest()->Post("/v2/repository/index", ready_only ? R"({"ready":true})" : "",
                               "application/json");
    EXPECT_EQ(answer->status, 200) << answer->body;
    rapidjson::Document doc;
    doc.Parse(answer->body.c_str());
    std::vector<std::string> rows;
    if (!doc.IsArray()) return {"not an array: " + answer->body};
    for (const auto& row : doc.GetArray()) {
      rows.push_back(absl::StrCat(row["name"].GetString(), "/",
                                  row.HasMember("version") ? row["version"].GetString() : "", ":",
                                  row["state"].GetString()));
    }
    return rows;
  }

  std::unique_ptr<Stub> NewStub() const {
    return inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  static grpc::Status Load(Stub& stub, const std::string& name) {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(name);
    inference::RepositoryModelLoadResponse response;
    auto context = ContextWithDeadline(60);
    return stub.RepositoryModelLoad(context.get(), request, &response);
  }
  static grpc::Status Unload(Stub& stub, const std::string& name) {
    inference::RepositoryModelUnloadRequest request;
    request.set_model_name(name);
    inference::RepositoryModelUnloadResponse response;
    auto context = ContextWithDeadline(60);
    return stub.RepositoryModelUnload(context.get(), request, &response);
  }
  // "name/version:state" rows, plus the reason of rows that have one.
  static std::vector<std::string> Index(Stub& stub, bool ready_only,
                                        std::vector<std::string>* reasons = nullptr) {
    inference::RepositoryIndexRequest request;
    request.set_ready(ready_only);
    inference::RepositoryIndexResponse response;
    auto context = ContextWithDeadline(10);
    grpc::Status status = stub.RepositoryIndex(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> rows;
    for (const auto& model : response.models()) {
      rows.push_back(absl::StrCat(model.name(), "/", model.version(), ":", model.state()));
      if (reasons != nullptr) reasons->push_back(model.reason());
    }
    return rows;
  }
  static grpc::Status Infer(Stub& stub, const std::string& model, const Dims4& dims,
                            const std::vector<float>& x, std::vector<float>* out) {
    inference::ModelInferRequest request = testing::MakeInferRequest(model, dims, x, true);
    inference::ModelInferResponse response;
    auto context = ContextWithDeadline(30);
    grpc::Status status = stub.ModelInfer(context.get(), request, &response);
    if (status.ok()) *out = testing::OutputFloats(response);
    return status;
  }

  testing::TempTree tree_{"repo_control_"};
  const fs::path& root_ = tree_.path();
  ServerOptions options_;
  std::unique_ptr<Metrics> metrics_ = Metrics::Create();
  std::shared_ptr<ModelRegistry> registry_ = std::make_shared<ModelRegistry>();
  std::shared_ptr<RepositorySync> sync_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<HttpServer> rest_;
};

TEST_F(RepositoryControlTest, ExplicitModeLoadsOnlyTheNamedModels) {
  Start(true, {"m"});
  auto stub = NewStub();
  std::vector<std::string> reasons;
  EXPECT_THAT(Index(*stub, false, &reasons),
              ElementsAre("bad/:UNAVAILABLE", "c/:UNAVAILABLE", "m/1:READY"));
  EXPECT_THAT(reasons, ElementsAre("unloaded", "unloaded", ""));
  EXPECT_THAT(Index(*stub, true), ElementsAre("m/1:READY"));
  EXPECT_FALSE(registry_->IsReady("c", ""));
}

TEST_F(RepositoryControlTest, LoadServesAndModelConfigShowsTheEffectiveConfig) {
  Start(true, {});
  auto stub = NewStub();
  EXPECT_THAT(Index(*stub, true), ElementsAre());
  grpc::Status status = Load(*stub, "c");
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(Load(*stub, "m").ok());
  EXPECT_THAT(Index(*stub, true), ElementsAre("c/1:READY", "m/1:READY"));

  const Dims4 dims{2, kChannels, 7, 6};
  const std::vector<float> x = testing::RandomTensor(testing::Elements(dims), 4);
  std::vector<float> out;
  status = Infer(*stub, "c", dims, x, &out);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(out.size(), static_cast<size_t>(2 * 8 * 7 * 6));
  status = Infer(*stub, "m", dims, x, &out);
  ASSERT_TRUE(status.ok()) << status.error_message();
  Dims4 want_dims;
  EXPECT_LE(testing::MaxRelativeError(out, SeededGraph(1).Evaluate(dims, x, &want_dims)), 1e-4);

  inference::ModelConfigRequest request;
  inference::ModelConfigResponse response;
  request.set_name("c");  // from config.pbtxt
  auto context = ContextWithDeadline(10);
  ASSERT_TRUE(stub->ModelConfig(context.get(), request, &response).ok());
  EXPECT_EQ(response.config().name(), "c");
  EXPECT_EQ(response.config().max_batch_size(), 2);
  EXPECT_EQ(response.config().dynamic_batching().max_queue_delay_microseconds(), 150u);
  EXPECT_EQ(response.config().dynamic_batching().default_queue_policy().max_queue_size(),
            static_cast<uint32_t>(options_.scheduler.max_queue_size));
  EXPECT_THAT(response.config().input(0).dims(), ElementsAre(32, -1, -1));
  EXPECT_THAT(response.config().output(0).dims(), ElementsAre(8, -1, -1));
  EXPECT_EQ(response.config().instance_group(0).count(), 1);
  EXPECT_TRUE(response.config().version_policy().has_latest());
  EXPECT_EQ(response.config().sepconv().layers_size(), 1);

  request.set_name("m");  // from the ONNX file alone: the server's batching
  context = ContextWithDeadline(10);
  ASSERT_TRUE(stub->ModelConfig(context.get(), request, &response).ok());
  EXPECT_EQ(response.config().name(), "m");
  EXPECT_EQ(response.config().max_batch_size(), 4);
  EXPECT_EQ(response.config().dynamic_batching().max_queue_delay_microseconds(), 100u);
  EXPECT_THAT(response.config().input(0).dims(), ElementsAre(32, -1, -1));
  EXPECT_THAT(response.config().output(0).dims(), ElementsAre(16, -1, -1));
  EXPECT_EQ(response.config().backend(), "sepconv");
}

TEST_F(RepositoryControlTest, BrokenModelLoadNamesTheFileAndTheNode) {
  Start(true, {});
  auto stub = NewStub();
  grpc::Status status = Load(*stub, "bad");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("model.onnx"));
  EXPECT_THAT(status.error_message(), HasSubstr("MaxPool"));
  // Loading it again (files unchanged) fails the same way.
  EXPECT_THAT(Load(*stub, "bad").error_message(), HasSubstr("MaxPool"));
  std::vector<std::string> reasons;
  EXPECT_THAT(Index(*stub, false, &reasons),
              ElementsAre("bad/1:UNAVAILABLE", "c/:UNAVAILABLE", "m/:UNAVAILABLE"));
  EXPECT_THAT(reasons[0], HasSubstr("MaxPool"));
}

TEST_F(RepositoryControlTest, UnknownModelsAreNotFound) {
  Start(true, {});
  auto stub = NewStub();
  EXPECT_EQ(Load(*stub, "nope").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Unload(*stub, "nope").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Load(*stub, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A known model that is not loaded unloads trivially.
  EXPECT_TRUE(Unload(*stub, "c").ok());
}

TEST_F(RepositoryControlTest, UnknownStartupModelFailsTheStart) {
  absl::StatusOr<std::unique_ptr<RepositorySync>> sync = RepositorySync::StartExplicit(
      root_.string(), testing::TestServer::DefaultOptions(), nullptr, registry_, {"nope"});
  EXPECT_EQ(sync.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RepositoryControlTest, OutsideExplicitModeLoadAndUnloadAnswerAsTritonDoes) {
  Start(false, {});
  auto stub = NewStub();
  for (grpc::Status status : {Load(*stub, "m"), Unload(*stub, "m")}) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(status.error_message(), kModelControlDisabled);
  }
  // Mode none loaded everything; the index shows it all.
  EXPECT_THAT(Index(*stub, false), ElementsAre("bad/1:UNAVAILABLE", "c/1:READY", "m/1:READY"));
}

// Clients keep sending to "m" from several threads while `action` runs;
// returns the outcomes.
struct Outcomes {
  std::atomic<int> ok{0}, not_found{0}, refused{0}, dropped{0}, other{0}, wrong{0};
};

TEST_F(RepositoryControlTest, UnloadAndReloadWhileRequestsRunDropNone) {
  Start(true, {"m"});
  const Dims4 dims{2, kChannels, 24, 24};
  const std::vector<float> x = testing::RandomTensor(testing::Elements(dims), 6);
  Dims4 want_dims;
  const std::vector<float> want1 = SeededGraph(1).Evaluate(dims, x, &want_dims);
  const std::vector<float> want2 = SeededGraph(2).Evaluate(dims, x, &want_dims);
  Outcomes outcomes;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      auto stub = NewStub();
      for (int i = 0; i < 2000 && !stop; ++i) {
        std::vector<float> out;
        grpc::Status status = Infer(*stub, "m", dims, x, &out);
        if (status.ok()) {
          ++outcomes.ok;
          if (testing::MaxRelativeError(out, want1) > 1e-4 &&
              testing::MaxRelativeError(out, want2) > 1e-4) {
            ++outcomes.wrong;
          }
        } else if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
          ++outcomes.not_found;
        } else if (absl::StrContains(status.error_message(), "accepts no new requests")) {
          ++outcomes.refused;  // raced the unload between lookup and queue: never accepted
        } else if (absl::StrContains(status.error_message(), "before this queued request")) {
          ++outcomes.dropped;
        } else {
          ++outcomes.other;
          ADD_FAILURE() << status.error_message();
        }
      }
    });
  }
  auto stub = NewStub();
  auto wait_for_ok = [&](int count) {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (outcomes.ok < count && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  };
  wait_for_ok(20);
  // Reload with new weights while requests run: every request is answered.
  Write("m/1/model.onnx", SeededGraph(2).Serialize());
  grpc::Status status = Load(*stub, "m");
  EXPECT_TRUE(status.ok()) << status.error_message();
  const int after_reload = outcomes.ok;
  wait_for_ok(after_reload + 20);
  EXPECT_EQ(outcomes.not_found + outcomes.refused + outcomes.dropped + outcomes.other, 0);
  std::vector<float> out;
  ASSERT_TRUE(Infer(*stub, "m", dims, x, &out).ok());
  EXPECT_LE(testing::MaxRelativeError(out, want2), 1e-4);

  // Unload while requests run: queued ones finish, later ones get NOT_FOUND.
  status = Unload(*stub, "m");
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(registry_->IsReady("m", ""));
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (outcomes.not_found < 20 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  stop = true;
  for (std::thread& client : clients) client.join();
  EXPECT_GE(outcomes.not_found, 20);
  EXPECT_EQ(outcomes.dropped, 0);
  EXPECT_EQ(outcomes.other, 0);
  EXPECT_EQ(outcomes.wrong, 0);
  EXPECT_THAT(Index(*stub, false),
              ElementsAre("bad/:UNAVAILABLE", "c/:UNAVAILABLE", "m/:UNAVAILABLE"));
}

}  // namespace
}  // namespace sepconv

namespace sepconv {
namespace {

TEST_F(RepositoryControlTest, RestRepositoryRoutesAnswerAsGrpc) {
  Start(true, {"m"});
  auto stub = NewStub();
  auto rest = Rest();
  EXPECT_EQ(RestIndex(false), Index(*stub, false));
  EXPECT_EQ(RestIndex(true), Index(*stub, true));
  auto unloaded = rest->Post("/v2/repository/index", "", "application/json");
  EXPECT_THAT(unloaded->body,
              HasSubstr(R"({"name":"c","state":"UNAVAILABLE","reason":"unloaded"})"));

  // Load, then the model serves and its config equals gRPC's.
  auto load = rest->Post("/v2/repository/models/c/load", "", "application/json");
  ASSERT_EQ(load->status, 200) << load->body;
  EXPECT_EQ(RestIndex(true), Index(*stub, true));
  EXPECT_THAT(Index(*stub, true), ElementsAre("c/1:READY", "m/1:READY"));
  auto config = rest->Get("/v2/models/c/config");
  ASSERT_EQ(config->status, 200) << config->body;
  EXPECT_THAT(config->body, HasSubstr(R"("max_batch_size":2)"));
  sepconv::ModelConfig from_rest;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(config->body, &from_rest).ok());
  inference::ModelConfigRequest request;
  request.set_name("c");
  inference::ModelConfigResponse response;
  auto context = ContextWithDeadline(10);
  ASSERT_TRUE(stub->ModelConfig(context.get(), request, &response).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(from_rest, response.config()))
      << config->body << "\nvs\n"
      << response.config().DebugString();
  EXPECT_EQ(rest->Get("/v2/models/c/versions/1/config")->body, config->body);

  // Errors with gRPC's messages and Triton's codes.
  auto broken = rest->Post("/v2/repository/models/bad/load", "", "application/json");
  EXPECT_EQ(broken->status, 400);
  const grpc::Status grpc_broken = Load(*stub, "bad");
  EXPECT_THAT(broken->body, HasSubstr(grpc_broken.error_message().substr(0, 40)));
  EXPECT_EQ(rest->Post("/v2/repository/models/nope/load", "", "application/json")->status, 404);
  auto with_parameters = rest->Post("/v2/repository/models/c/load",
                                    R"({"parameters":{"config":"{}"}})", "application/json");
  EXPECT_EQ(with_parameters->status, 400);
  EXPECT_THAT(with_parameters->body, HasSubstr("load parameters ('config') are not supported"));
  for (const char* bad : {"{", "[]", R"({"parameters":7})"}) {
    EXPECT_EQ(rest->Post("/v2/repository/models/c/load", bad, "application/json")->status, 400)
        << bad;
  }
  for (const char* bad : {"{", "[]", R"({"ready":1})"}) {
    EXPECT_EQ(rest->Post("/v2/repository/index", bad, "application/json")->status, 400) << bad;
  }
  EXPECT_EQ(rest->Get("/v2/repository/index")->status, 405);
  EXPECT_EQ(rest->Get("/v2/repository/models/c/load")->status, 405);

  // Unload: gone from the index, its requests NOT_FOUND, its config 404.
  auto unload = rest->Post("/v2/repository/models/c/unload", "", "application/json");
  ASSERT_EQ(unload->status, 200) << unload->body;
  EXPECT_THAT(Index(*stub, true), ElementsAre("m/1:READY"));
  EXPECT_EQ(rest->Get("/v2/models/c/config")->status, 404);
  EXPECT_EQ(rest->Post("/v2/repository/models/nope/unload", "", "application/json")->status, 404);
}

TEST_F(RepositoryControlTest, RestOutsideExplicitModeAnswersAsTritonDoes) {
  Start(false, {});
  auto rest = Rest();
  for (const char* path : {"/v2/repository/models/m/load", "/v2/repository/models/m/unload"}) {
    auto answer = rest->Post(path, "", "application/json");
    EXPECT_EQ(answer->status, 503) << path;
    EXPECT_THAT(answer->body, HasSubstr(kModelControlDisabled)) << path;
  }
  EXPECT_EQ(RestIndex(false), Index(*NewStub(), false));
}

}  // namespace
}  // namespace sepconv
