// The REST client (ClientOptions::protocol = kHttp) against the real
// sepconv-server binary with both frontends on (a child process on free
// 127.0.0.1 ports): every call answers as the gRPC client's does at the same
// moment (metadata, config text, statistics, index, shared-memory status,
// inference bit for bit with binary tensor data and with JSON), errors come
// back with the gRPC path's codes, InferAsync ends every call exactly once
// (also when the client is destroyed with calls in flight), and
// `sepconv-client --protocol=http` prints what the gRPC protocol prints and
// refuses gRPC-only flags. A second server, in explicit model-control mode
// with a bearer token, for load / unload and authentication.

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/npy.h"
#include "client/shared_memory.h"
#include "client/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/client_test_util.h"
#include "tests/testing/free_port.h"
#include "tests/testing/shared_server.h"

namespace sepconv::client {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ProcessResult;

constexpr int64_t kFloat = sizeof(float);

// The REST port of the suite's server (chosen before it starts).
int http_port = 0;

std::string HttpAddress() { return absl::StrCat("127.0.0.1:", http_port); }

absl::StatusOr<std::unique_ptr<Client>> RestClient(ClientOptions options = {}) {
  options.protocol = Protocol::kHttp;
  return Client::Create(HttpAddress(), options);
}

// Waits (bounded) for REST to answer: the server opens its HTTP port just
// after the gRPC one its launcher waited for.
void WaitForRest(Client& client) {
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (!client.ServerLive().ok() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(client.ServerLive().ok());
}

using testing::ExpectIdentical;

class RestClientTest : public testing::SharedServerTest<RestClientTest> {
 public:
  static std::vector<std::string> ServerFlags() {
    absl::StatusOr<int> port = testing::FreePort();
    EXPECT_TRUE(port.ok()) << port.status();
    http_port = port.value_or(0);
    return {absl::StrCat("--http_port=", http_port), "--allow_shared_memory"};
  }

 protected:
  void SetUp() override {
    SharedServerTest::SetUp();
    if (HasFatalFailure()) return;
    absl::StatusOr<std::unique_ptr<Client>> grpc = Client::Create(server_->target(), {});
    ASSERT_TRUE(grpc.ok()) << grpc.status();
    grpc_ = *std::move(grpc);
    absl::StatusOr<std::unique_ptr<Client>> http = RestClient();
    ASSERT_TRUE(http.ok()) << http.status();
    http_ = *std::move(http);
    ClientOptions json_options;
    json_options.http_json = true;
    absl::StatusOr<std::unique_ptr<Client>> json = RestClient(json_options);
    ASSERT_TRUE(json.ok()) << json.status();
    json_ = *std::move(json);
    WaitForRest(*http_);
  }

  ProcessResult Cli(std::vector<std::string> args, bool http = true) {
    args.insert(args.begin(), testing::RequiredEnv("SEPCONV_CLIENT_BIN"));
    if (http) {
      args.push_back("--protocol=http");
      args.push_back(absl::StrCat("--server=", HttpAddress()));
    } else {
      args.push_back(absl::StrCat("--server=", server_->target()));
    }
    return testing::RunProcess(args, absl::Seconds(120));
  }

  std::string Temp(const std::string& name) {
    return absl::StrCat(::testing::TempDir(), "/rest_client_test_", getpid(), "_", name);
  }

  std::unique_ptr<Client> grpc_, http_, json_;
};

TEST_F(RestClientTest, ControlCallsAnswerAsGrpc) {
  EXPECT_TRUE(*http_->ServerLive());
  EXPECT_TRUE(*http_->ServerReady());
  EXPECT_TRUE(*http_->ModelReady("sepconv", ""));
  EXPECT_TRUE(*http_->ModelReady("sepconv", "1"));
  EXPECT_EQ(*http_->ModelReady("no_such_model", ""), *grpc_->ModelReady("no_such_model", ""));

  absl::StatusOr<ServerInfo> server = http_->ServerMetadata();
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<ServerInfo> grpc_server = grpc_->ServerMetadata();
  EXPECT_EQ(server->name, grpc_server->name);
  EXPECT_EQ(server->version, grpc_server->version);
  EXPECT_EQ(server->extensions, grpc_server->extensions);

  absl::StatusOr<ModelInfo> model = http_->ModelMetadata("sepconv", "");
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<ModelInfo> grpc_model = grpc_->ModelMetadata("sepconv", "");
  EXPECT_EQ(model->name, grpc_model->name);
  EXPECT_EQ(model->versions, grpc_model->versions);
  EXPECT_EQ(model->platform, grpc_model->platform);
  ASSERT_EQ(model->inputs.size(), 1u);
  ASSERT_EQ(model->outputs.size(), 1u);
  EXPECT_EQ(model->inputs[0].shape, grpc_model->inputs[0].shape);
  EXPECT_EQ(model->outputs[0].name, grpc_model->outputs[0].name);

  absl::StatusOr<std::string> config = http_->ModelConfigText("sepconv", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(*config, HasSubstr("max_batch_size: 8"));
  EXPECT_EQ(*config, *grpc_->ModelConfigText("sepconv", ""));
  EXPECT_EQ(*http_->ModelConfigText("sepconv", "1"), *grpc_->ModelConfigText("sepconv", "1"));

  for (bool ready_only : {false, true}) {
    absl::StatusOr<std::vector<IndexEntry>> index = http_->RepositoryIndex(ready_only);
    ASSERT_TRUE(index.ok()) << index.status();
    absl::StatusOr<std::vector<IndexEntry>> want = grpc_->RepositoryIndex(ready_only);
    ASSERT_EQ(index->size(), want->size());
    for (size_t i = 0; i < want->size(); ++i) {
      EXPECT_EQ((*index)[i].name, (*want)[i].name);
      EXPECT_EQ((*index)[i].version, (*want)[i].version);
      EXPECT_EQ((*index)[i].state, (*want)[i].state);
      EXPECT_EQ((*index)[i].reason, (*want)[i].reason);
    }
  }
}

TEST_F(RestClientTest, HealthMapsToReadiness) {
  EXPECT_EQ(*http_->Health(""), "SERVING");
  EXPECT_EQ(*http_->Health("sepconv"), "SERVING");
  EXPECT_EQ(http_->Health("no_such_model").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(grpc_->Health("no_such_model").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RestClientTest, StatisticsAnswerAsGrpc) {
  ASSERT_TRUE(http_->Infer("sepconv", "", *RandomTensor({1, 32, 6, 6}, 1), {}).ok());
  for (const std::string& model : {std::string(), std::string("sepconv")}) {
    absl::StatusOr<std::vector<ModelStats>> stats = http_->ModelStatistics(model, "");
    ASSERT_TRUE(stats.ok()) << stats.status();
    absl::StatusOr<std::vector<ModelStats>> want = grpc_->ModelStatistics(model, "");
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_EQ(stats->size(), want->size());
    ASSERT_FALSE(stats->empty());
    for (size_t i = 0; i < want->size(); ++i) {
      const ModelStats& a = (*stats)[i];
      const ModelStats& b = (*want)[i];
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.version, b.version);
      EXPECT_EQ(a.last_inference_ms, b.last_inference_ms);
      EXPECT_GE(a.inference_count, 1u);
      EXPECT_EQ(a.inference_count, b.inference_count);
      EXPECT_EQ(a.execution_count, b.execution_count);
      for (auto [x, y] : {std::pair{a.success, b.success},
                          {a.fail, b.fail},
                          {a.queue, b.queue},
                          {a.compute_infer, b.compute_infer}}) {
        EXPECT_EQ(x.count, y.count);
        EXPECT_EQ(x.ns, y.ns);
      }
    }
  }
  EXPECT_EQ(http_->ModelStatistics("no_such_model", "").status().code(),
            grpc_->ModelStatistics("no_such_model", "").status().code());
}

TEST_F(RestClientTest, InferIsBitIdenticalToGrpcBinaryAndJson) {
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{1, 32, 8, 8}, {3, 32, 7, 13}}) {
    const Tensor input = *RandomTensor(shape, 42);
    absl::StatusOr<Tensor> want = grpc_->Infer("sepconv", "", input, {});
    ASSERT_TRUE(want.ok()) << want.status();
    InferOptions options;
    options.request_id = "rest-1";
    absl::StatusOr<Tensor> binary = http_->Infer("sepconv", "", input, options);
    ASSERT_TRUE(binary.ok()) << binary.status();
    ExpectIdentical(*binary, *want);
    absl::StatusOr<Tensor> json = json_->Infer("sepconv", "1", input, options);
    ASSERT_TRUE(json.ok()) << json.status();
    ExpectIdentical(*json, *want);
  }
  // Values whose shortest decimals are long, tiny and negative zero.
  Tensor edge = *RandomTensor({1, 32, 2, 2}, 3);
  const float specials[] = {-0.0f, 1e-38f, 3.4028235e38f / 1e30f, 0.1f, 1.0f / 3, -2.5e-7f};
  for (size_t i = 0; i < std::size(specials); ++i) edge.data[i] = specials[i];
  ExpectIdentical(*json_->Infer("sepconv", "", edge, {}), *grpc_->Infer("sepconv", "", edge, {}));
}

TEST_F(RestClientTest, SharedMemoryInferIsBitIdenticalToGrpc) {
  const Tensor input = *RandomTensor({2, 32, 5, 6}, 9);
  const int64_t in_bytes = static_cast<int64_t>(input.data.size()) * kFloat;
  const int64_t out_bytes = 2 * 64 * 5 * 6 * kFloat;
  const std::string in_name = absl::StrCat("rest_client_test_", getpid(), "_in");
  const std::string out_name = absl::StrCat("rest_client_test_", getpid(), "_out");
  absl::StatusOr<SharedMemoryRegion> in = SharedMemoryRegion::Create("/" + in_name, in_bytes);
  absl::StatusOr<SharedMemoryRegion> out = SharedMemoryRegion::Create("/" + out_name, out_bytes);
  ASSERT_TRUE(in.ok() && out.ok());
  std::memcpy(in->data(), input.data.data(), in_bytes);
  ASSERT_TRUE(http_->RegisterSystemSharedMemory(in_name, in->key(), 0, in_bytes).ok());
  ASSERT_TRUE(http_->RegisterSystemSharedMemory(out_name, out->key(), 0, out_bytes).ok());

  absl::StatusOr<std::vector<SharedMemoryStatus>> status = http_->SystemSharedMemoryStatus("");
  ASSERT_TRUE(status.ok()) << status.status();
  absl::StatusOr<std::vector<SharedMemoryStatus>> grpc_status = grpc_->SystemSharedMemoryStatus("");
  ASSERT_EQ(status->size(), grpc_status->size());
  for (size_t i = 0; i < status->size(); ++i) {
    EXPECT_EQ((*status)[i].name, (*grpc_status)[i].name);
    EXPECT_EQ((*status)[i].key, (*grpc_status)[i].key);
    EXPECT_EQ((*status)[i].byte_size, (*grpc_status)[i].byte_size);
  }
  EXPECT_EQ(http_->SystemSharedMemoryStatus(in_name)->size(), 1u);

  InferOptions options;
  options.input_shared_memory = SharedMemoryPlacement{in_name, 0, in_bytes};
  options.output_shared_memory = SharedMemoryPlacement{out_name, 0, out_bytes};
  options.output_view = absl::MakeConstSpan(out->data(), out_bytes);
  const Tensor shape_only{input.shape, {}};
  const Tensor want = *grpc_->Infer("sepconv", "", input, {});
  for (Client* client : {http_.get(), json_.get()}) {
    std::memset(out->data(), 0, out_bytes);
    absl::StatusOr<Tensor> got = client->Infer("sepconv", "", shape_only, options);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectIdentical(*got, want);
  }
  // Prepared for the load generator: the answer has the shape, no values.
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> prepared =
      http_->Prepare("sepconv", "", shape_only, options);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  absl::Notification done;
  AsyncInferResult result;
  http_->InferAsync(*prepared, absl::ZeroDuration(), [&](AsyncInferResult r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.output_shape, want.shape);
  EXPECT_EQ(result.output_bytes, out_bytes);

  EXPECT_TRUE(http_->UnregisterSystemSharedMemory(in_name).ok());
  EXPECT_TRUE(http_->UnregisterSystemSharedMemory("").ok());
  EXPECT_TRUE(http_->SystemSharedMemoryStatus("")->empty());
  EXPECT_EQ(http_->SystemSharedMemoryStatus(in_name).status().code(),
            grpc_->SystemSharedMemoryStatus(in_name).status().code());
}

TEST_F(RestClientTest, ErrorsComeBackWithTheGrpcCodes) {
  const Tensor input = *RandomTensor({1, 32, 4, 4}, 1);
  const Tensor wrong = *RandomTensor({1, 16, 4, 4}, 1);
  struct Case {
    const char* what;
    std::function<absl::Status(Client&)> call;
    absl::StatusCode code;
  };
  const std::vector<Case> cases = {
      {"unknown model", [&](Client& c) { return c.Infer("no_such", "", input, {}).status(); },
       absl::StatusCode::kNotFound},
      {"unknown version", [&](Client& c) { return c.Infer("sepconv", "7", input, {}).status(); },
       absl::StatusCode::kNotFound},
      {"wrong channels", [&](Client& c) { return c.Infer("sepconv", "", wrong, {}).status(); },
       absl::StatusCode::kInvalidArgument},
      {"metadata", [](Client& c) { return c.ModelMetadata("no_such", "").status(); },
       absl::StatusCode::kNotFound},
      {"config", [](Client& c) { return c.ModelConfigText("no_such", "").status(); },
       absl::StatusCode::kNotFound},
      {"load", [](Client& c) { return c.LoadModel("sepconv", absl::ZeroDuration()); },
       absl::StatusCode::kUnavailable},
      {"unregister unknown", [](Client& c) { return c.UnregisterSystemSharedMemory("nope"); },
       absl::StatusCode::kOk},  // as Triton: nothing to do
  };
  for (const Case& c : cases) {
    const absl::Status rest = c.call(*http_);
    const absl::Status grpc = c.call(*grpc_);
    EXPECT_EQ(rest.code(), c.code) << c.what << ": " << rest;
    EXPECT_EQ(rest.code(), grpc.code()) << c.what << ": " << rest << " vs " << grpc;
    EXPECT_EQ(rest.message(), grpc.message()) << c.what;
  }
  EXPECT_EQ(http_->OpenStream().status().code(), absl::StatusCode::kUnimplemented);
  InferOptions typed;
  typed.typed = true;
  EXPECT_EQ(http_->Infer("sepconv", "", input, typed).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RestClientTest, UnusableTargetsAndUnreachableServers) {
  ClientOptions options;
  options.protocol = Protocol::kHttp;
  for (const char* target : {"dns:///localhost:8000", "ipv4:127.0.0.1:1,127.0.0.1:2", "localhost",
                             "localhost:http", "localhost:0", "::1:80"}) {
    EXPECT_EQ(Client::Create(target, options).status().code(), absl::StatusCode::kInvalidArgument)
        << target;
  }
  ClientOptions json;
  json.http_json = true;
  EXPECT_EQ(Client::Create("127.0.0.1:1", json).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Nothing listens: UNAVAILABLE (after max_attempts tries).
  absl::StatusOr<int> port = testing::FreePort();
  ASSERT_TRUE(port.ok());
  absl::StatusOr<std::unique_ptr<Client>> refused =
      Client::Create(absl::StrCat("127.0.0.1:", *port), options);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ((*refused)->ServerLive().status().code(), absl::StatusCode::kUnavailable);

  // A server that never answers: DEADLINE_EXCEEDED at the deadline.
  absl::StatusOr<std::unique_ptr<testing::LoopbackListener>> silent =
      testing::LoopbackListener::Open();
  ASSERT_TRUE(silent.ok());
  options.default_deadline = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<Client>> stuck =
      Client::Create(absl::StrCat("127.0.0.1:", (*silent)->port()), options);
  ASSERT_TRUE(stuck.ok());
  EXPECT_EQ((*stuck)->ServerMetadata().status().code(), absl::StatusCode::kDeadlineExceeded);
}

// Each `done` of `n` calls counted; true when every one ran exactly once.
class DoneCounter {
 public:
  explicit DoneCounter(int n) : counts_(n) {}
  std::function<void(AsyncInferResult)> Done(int i) {
    return [this, i](AsyncInferResult result) {
      counts_[i].fetch_add(1);
      absl::MutexLock lock(&mu_);
      ++finished_;
      if (result.status.ok()) {
        ++ok_;
      } else {
        codes_.push_back(result.status.code());
      }
    };
  }
  void WaitAll() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &DoneCounter::AllFinished));
  }
  bool EachOnce() const {
    for (const auto& c : counts_) {
      if (c.load() != 1) return false;
    }
    return true;
  }
  int ok() {
    absl::MutexLock lock(&mu_);
    return ok_;
  }
  std::vector<absl::StatusCode> codes() {
    absl::MutexLock lock(&mu_);
    return codes_;
  }

 private:
  std::vector<std::atomic<int>> counts_;
  absl::Mutex mu_;
  int finished_ ABSL_GUARDED_BY(mu_) = 0;
  int ok_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<absl::StatusCode> codes_ ABSL_GUARDED_BY(mu_);

  bool AllFinished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return finished_ == static_cast<int>(counts_.size());
  }
};

// A request prepared by one protocol's Client, sent by the other's: `done`
// runs once, at once on the calling thread, with INVALID_ARGUMENT (a
// static_cast would have been undefined behaviour); over gRPC a stream
// refuses it the same way. Each Client still sends its own afterwards.
TEST_F(RestClientTest, RequestPreparedByTheOtherProtocolIsRefused) {
  const Tensor input = *RandomTensor({1, 32, 8, 8}, 7);
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> from_grpc =
      grpc_->Prepare("sepconv", "", input, {});
  ASSERT_TRUE(from_grpc.ok()) << from_grpc.status();
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> from_rest =
      http_->Prepare("sepconv", "", input, {});
  ASSERT_TRUE(from_rest.ok()) << from_rest.status();
  // Sends `request` on `client`; the result, and whether `done` ran before
  // InferAsync returned.
  const auto send = [](Client& client, std::shared_ptr<const PreparedRequest> request) {
    std::atomic<int> calls{0};
    absl::Notification done;
    AsyncInferResult result;
    client.InferAsync(std::move(request), absl::ZeroDuration(), [&](AsyncInferResult r) {
      result = std::move(r);
      ++calls;
      done.Notify();
    });
    const bool at_once = done.HasBeenNotified();
    done.WaitForNotification();
    EXPECT_EQ(calls.load(), 1);
    return std::pair{result, at_once};
  };
  for (const auto& [client, foreign, protocol] :
       {std::tuple{grpc_.get(), *from_rest, "gRPC"}, std::tuple{http_.get(), *from_grpc, "REST"},
        std::tuple{json_.get(), *from_grpc, "REST"}}) {
    SCOPED_TRACE(protocol);
    const auto [result, at_once] = send(*client, foreign);
    EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument) << result.status;
    EXPECT_THAT(result.status.message(), HasSubstr(absl::StrCat("not prepared by a ", protocol)));
    EXPECT_TRUE(at_once);
    EXPECT_EQ(send(*client, nullptr).first.status.code(), absl::StatusCode::kInvalidArgument);
  }
  // Each protocol sends its own.
  for (const auto& [client, own] :
       {std::pair{grpc_.get(), *from_grpc}, std::pair{http_.get(), *from_rest}}) {
    const AsyncInferResult result = send(*client, own).first;
    ASSERT_TRUE(result.status.ok()) << result.status;
    EXPECT_EQ(result.output_shape, (std::vector<int64_t>{1, 64, 8, 8}));
  }
  // A gRPC stream refuses a REST request the same way, and stays usable.
  absl::StatusOr<std::unique_ptr<InferStream>> stream = grpc_->OpenStream();
  ASSERT_TRUE(stream.ok()) << stream.status();
  absl::Notification refused;
  AsyncInferResult stream_result;
  (*stream)->Send(*from_rest, [&](AsyncInferResult r) {
    stream_result = std::move(r);
    refused.Notify();
  });
  EXPECT_TRUE(refused.HasBeenNotified());
  refused.WaitForNotification();
  EXPECT_EQ(stream_result.status.code(), absl::StatusCode::kInvalidArgument);
  absl::Notification answered;
  (*stream)->Send(*from_grpc, [&](AsyncInferResult r) {
    stream_result = std::move(r);
    answered.Notify();
  });
  answered.WaitForNotification();
  EXPECT_TRUE(stream_result.status.ok()) << stream_result.status;
  EXPECT_TRUE((*stream)->Close(absl::Seconds(30)).ok());
}

TEST_F(RestClientTest, InferAsyncManyInFlightEachDoneOnce) {
  const Tensor input = *RandomTensor({1, 32, 8, 8}, 5);
  for (Client* client : {http_.get(), json_.get()}) {
    absl::StatusOr<std::shared_ptr<const PreparedRequest>> request =
        client->Prepare("sepconv", "", input, {});
    ASSERT_TRUE(request.ok()) << request.status();
    constexpr int kCalls = 64;
    DoneCounter counter(kCalls);
    for (int i = 0; i < kCalls; ++i) {
      client->InferAsync(*request, absl::ZeroDuration(), counter.Done(i));
    }
    counter.WaitAll();
    EXPECT_TRUE(counter.EachOnce());
    EXPECT_EQ(counter.ok(), kCalls) << ::testing::PrintToString(counter.codes());
  }
}

TEST_F(RestClientTest, DestroyedWithCallsInFlightEndsEachOnce) {
  absl::StatusOr<std::unique_ptr<Client>> client = RestClient();
  ASSERT_TRUE(client.ok());
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> request =
      (*client)->Prepare("sepconv", "", *RandomTensor({4, 32, 32, 32}, 5), {});
  ASSERT_TRUE(request.ok()) << request.status();
  constexpr int kCalls = 48;
  DoneCounter counter(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    (*client)->InferAsync(*request, absl::ZeroDuration(), counter.Done(i));
  }
  client->reset();  // returns once every `done` has
  EXPECT_TRUE(counter.EachOnce());
  for (absl::StatusCode code : counter.codes()) EXPECT_EQ(code, absl::StatusCode::kCancelled);
}

TEST_F(RestClientTest, CliInferAndControlCommandsPrintWhatGrpcPrints) {
  for (const char* command : {"config", "metadata", "index", "health"}) {
    ProcessResult rest = Cli({command});
    ProcessResult grpc = Cli({command}, /*http=*/false);
    EXPECT_EQ(rest.exit_code, 0) << command << ": " << rest.err;
    EXPECT_EQ(rest.out, grpc.out) << command;
  }
  ProcessResult stats = Cli({"stats", "--model=sepconv"});
  EXPECT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_EQ(stats.out, Cli({"stats", "--model=sepconv"}, false).out);

  const std::string grpc_out = Temp("grpc.npy"), rest_out = Temp("rest.npy"),
                    json_out = Temp("json.npy");
  ASSERT_EQ(Cli({"infer", "--shape=2,32,9,7", "--seed=4", "--output=" + grpc_out}, false).exit_code,
            0);
  ProcessResult binary = Cli({"infer", "--shape=2,32,9,7", "--seed=4", "--output=" + rest_out});
  ASSERT_EQ(binary.exit_code, 0) << binary.err;
  EXPECT_THAT(binary.out, HasSubstr("output:  [2, 64, 9, 7]"));
  ProcessResult json =
      Cli({"infer", "--shape=2,32,9,7", "--seed=4", "--json_tensors", "--output=" + json_out});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  ExpectIdentical(*ReadNpy(rest_out), *ReadNpy(grpc_out));
  ExpectIdentical(*ReadNpy(json_out), *ReadNpy(grpc_out));
  for (const std::string& path : {grpc_out, rest_out, json_out}) std::remove(path.c_str());

  ProcessResult unknown = Cli({"infer", "--model=no_such", "--shape=1,32,4,4"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("NOT_FOUND"));
}

TEST_F(RestClientTest, CliBenchPrintsTheSameColumns) {
  const std::vector<std::string> args = {"bench",          "--shape=1,32,8,8", "--concurrency=1,3",
                                         "--warmup_ms=50", "--window_ms=200",  "--max_windows=2",
                                         "--csv=-"};
  ProcessResult grpc = Cli(args, false);
  ASSERT_EQ(grpc.exit_code, 0) << grpc.err;
  for (bool json : {false, true}) {
    std::vector<std::string> rest_args = args;
    if (json) rest_args.push_back("--json_tensors");
    ProcessResult rest = Cli(rest_args);
    ASSERT_EQ(rest.exit_code, 0) << rest.err;
    // The CSV header line, then one row per concurrency.
    EXPECT_EQ(rest.out.substr(0, rest.out.find('\n')), grpc.out.substr(0, grpc.out.find('\n')));
    EXPECT_EQ(std::count(rest.out.begin(), rest.out.end(), '\n'),
              std::count(grpc.out.begin(), grpc.out.end(), '\n'));
  }
  ProcessResult table = Cli({"bench", "--shape=1,32,8,8", "--concurrency=2", "--warmup_ms=50",
                             "--window_ms=200", "--max_windows=2"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("(binary, "));
  EXPECT_THAT(table.out, HasSubstr("REST infer"));
  EXPECT_THAT(table.out, HasSubstr("concurrency  infer/s"));
}

TEST_F(RestClientTest, CliRefusesGrpcOnlyFlagsOverHttp) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"bench", "--shape=1,32,4,4", "--streaming"},
        {"infer", "--shape=1,32,4,4", "--typed"},
        {"infer", "--shape=1,32,4,4", "--lb_policy=pick_first"}}) {
    ProcessResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 2) << args.back() << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("gRPC only"));
  }
  for (const char* server :
       {"--server=dns:///localhost:8000", "--server=ipv4:127.0.0.1:1,127.0.0.1:2"}) {
    ProcessResult r = testing::RunProcess(
        {testing::RequiredEnv("SEPCONV_CLIENT_BIN"), "health", "--protocol=http", server},
        absl::Seconds(60));
    EXPECT_EQ(r.exit_code, 2) << server << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("one host:port"));
  }
  ProcessResult json = Cli({"infer", "--shape=1,32,4,4", "--json_tensors"}, /*http=*/false);
  EXPECT_EQ(json.exit_code, 2) << json.err;
  EXPECT_THAT(json.err, HasSubstr("--json_tensors needs --protocol=http"));
  ProcessResult protocol = Cli({"health", "--protocol=ftp"}, false);
  EXPECT_EQ(protocol.exit_code, 2);
  EXPECT_THAT(protocol.err, HasSubstr("unknown protocol 'ftp'"));
  ProcessResult help = Cli({"infer", "--help"}, false);
  EXPECT_THAT(help.out, HasSubstr("--protocol"));
  EXPECT_THAT(help.out, HasSubstr("--json_tensors"));
}

// Explicit model control and a bearer token: load / unload over REST as
// over gRPC, and calls without the token refused alike.
class RestControlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::path(::testing::TempDir()) / absl::StrCat("rest_control_", getpid()));
    fs::remove_all(*root_);
    for (const char* name : {"a", "b"}) {
      fs::create_directories(*root_ / name);
      std::ofstream(*root_ / name / "config.pbtxt")
          << "max_batch_size: 4\n"
             "sepconv { seed: 5 layers { in_channels: 32 out_channels: 24 } }\n";
    }
    std::ofstream(*root_ / "tokens") << "s3cret\n";
    absl::StatusOr<int> port = testing::FreePort();
    ASSERT_TRUE(port.ok());
    port_ = *port;
    absl::StatusOr<std::unique_ptr<testing::ServerProcess>> s = testing::ServerProcess::Start(
        testing::RequiredEnv("SEPCONV_SERVER_BIN"),
        {absl::StrCat("--http_port=", port_), absl::StrCat("--model_repository=", root_->string()),
         "--model_control_mode=explicit", "--load_model=a",
         absl::StrCat("--auth_token_file=", (*root_ / "tokens").string())});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    fs::remove_all(*root_);
    delete root_;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ClientOptions options;
    options.token = "s3cret";
    grpc_ = *Client::Create(server_->target(), options);
    options.protocol = Protocol::kHttp;
    http_ = *Client::Create(absl::StrCat("127.0.0.1:", port_), options);
    WaitForRest(*http_);
  }

  static fs::path* root_;
  static testing::ServerProcess* server_;
  static int port_;
  std::unique_ptr<Client> grpc_, http_;
};

fs::path* RestControlTest::root_ = nullptr;
testing::ServerProcess* RestControlTest::server_ = nullptr;
int RestControlTest::port_ = 0;

TEST_F(RestControlTest, LoadAndUnloadAnswerAsGrpc) {
  const Tensor input = *RandomTensor({1, 32, 5, 5}, 2);
  // Each step over REST, then the same state checked over both protocols.
  EXPECT_TRUE(http_->LoadModel("b", absl::ZeroDuration()).ok());
  EXPECT_TRUE(*grpc_->ModelReady("b", ""));
  ExpectIdentical(*http_->Infer("b", "", input, {}), *grpc_->Infer("b", "", input, {}));
  EXPECT_TRUE(http_->UnloadModel("b", absl::ZeroDuration()).ok());
  EXPECT_FALSE(*http_->ModelReady("b", ""));
  const absl::Status rest_infer = http_->Infer("b", "", input, {}).status();
  EXPECT_EQ(rest_infer.code(), absl::StatusCode::kNotFound) << rest_infer;
  EXPECT_EQ(rest_infer.code(), grpc_->Infer("b", "", input, {}).status().code());
  const absl::Status rest_load = http_->LoadModel("nope", absl::ZeroDuration());
  EXPECT_EQ(rest_load.code(), absl::StatusCode::kNotFound) << rest_load;
  EXPECT_EQ(rest_load.code(), grpc_->LoadModel("nope", absl::ZeroDuration()).code());
  EXPECT_EQ(http_->UnloadModel("nope", absl::ZeroDuration()).code(),
            grpc_->UnloadModel("nope", absl::ZeroDuration()).code());
  absl::StatusOr<std::vector<IndexEntry>> index = http_->RepositoryIndex(false);
  ASSERT_TRUE(index.ok()) << index.status();
  ASSERT_EQ(index->size(), 2u);
  EXPECT_EQ((*index)[1].name, "b");
  EXPECT_EQ((*index)[1].state, grpc_->RepositoryIndex(false)->at(1).state);
}

TEST_F(RestControlTest, WithoutTheTokenCallsAreUnauthenticated) {
  ClientOptions wrong;
  wrong.token = "wrong";
  for (const ClientOptions& o : {ClientOptions{}, wrong}) {
    ClientOptions http = o;
    http.protocol = Protocol::kHttp;
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Create(absl::StrCat("127.0.0.1:", port_), http);
    ASSERT_TRUE(client.ok());
    const Tensor input = *RandomTensor({1, 32, 4, 4}, 1);
    EXPECT_EQ((*client)->Infer("a", "", input, {}).status().code(),
              absl::StatusCode::kUnauthenticated);
    EXPECT_EQ((*client)->ModelMetadata("a", "").status().code(),
              absl::StatusCode::kUnauthenticated);
    EXPECT_EQ((*client)->LoadModel("b", absl::ZeroDuration()).code(),
              absl::StatusCode::kUnauthenticated);
    // Health and readiness stay open, as over gRPC.
    EXPECT_EQ(*(*client)->Health(""), "SERVING");
  }
  ProcessResult cli = testing::RunProcess(
      {testing::RequiredEnv("SEPCONV_CLIENT_BIN"), "infer", "--model=a", "--shape=1,32,4,4",
       "--protocol=http", absl::StrCat("--server=127.0.0.1:", port_)},
      absl::Seconds(60));
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_THAT(cli.err, HasSubstr("UNAUTHENTICATED"));
}

}  // namespace
}  // namespace sepconv::client
