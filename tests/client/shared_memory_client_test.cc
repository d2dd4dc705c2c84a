// Triton's system shared-memory extension from the client's side, against
// the real sepconv-server binary (a child process on free 127.0.0.1 ports):
// register / status / unregister, inference with the input and the output in
// shared memory bit-identical to the raw path (Infer, Prepare + InferAsync,
// and `sepconv-client infer|bench --shared_memory=system`), and the CLI
// leaving no region behind, on success or failure. Then, against an
// in-process fake server, the client's own checks of a response.

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/npy.h"
#include "client/shared_memory.h"
#include "client/tensor.h"
#include "gmock/gmock.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/client/client_test_util.h"
#include "tests/testing/fake_grpc_server.h"
#include "tests/testing/shared_server.h"

namespace sepconv::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ProcessResult;

constexpr int64_t kFloat = sizeof(float);

std::string UniqueName(const std::string& tag) {
  static int next = 0;
  return absl::StrCat("shm_client_test_", getpid(), "_", next++, "_", tag);
}

// The shared-memory objects whose name starts with `prefix`.
std::set<std::string> ShmObjects(const std::string& prefix) {
  std::set<std::string> names;
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) {
    if (absl::StartsWith(entry->d_name, prefix)) names.insert(entry->d_name);
  }
  closedir(dir);
  return names;
}

using testing::ExpectIdentical;

class SharedMemoryClientTest : public testing::SharedServerClientTest<SharedMemoryClientTest> {
 public:
  // The extension is off unless asked for.
  static std::vector<std::string> ServerFlags() { return {"--allow_shared_memory"}; }

 protected:
  void TearDown() override {
    if (client_ != nullptr) {
      EXPECT_TRUE(client_->UnregisterSystemSharedMemory("").ok());
    }
  }

  // A region of `bytes` created and registered whole under a unique name.
  struct Registered {
    std::string name;
    SharedMemoryRegion region;
  };
  Registered Register(const std::string& tag, int64_t bytes) {
    const std::string name = UniqueName(tag);
    absl::StatusOr<SharedMemoryRegion> region = SharedMemoryRegion::Create("/" + name, bytes);
    EXPECT_TRUE(region.ok()) << region.status();
    absl::Status s = client_->RegisterSystemSharedMemory(name, region->key(), 0, bytes);
    EXPECT_TRUE(s.ok()) << s;
    return {name, *std::move(region)};
  }

  ProcessResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {testing::RequiredEnv("SEPCONV_CLIENT_BIN")});
    args.push_back(absl::StrCat("--server=", server_->target()));
    return testing::RunProcess(args, absl::Seconds(120));
  }

  std::string Temp(const std::string& name) {
    return absl::StrCat(::testing::TempDir(), "/shm_client_test_", server_->grpc_port(), "_", name);
  }
};

TEST_F(SharedMemoryClientTest, ServerListsTheExtension) {
  absl::StatusOr<ServerInfo> info = client_->ServerMetadata();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->extensions, ::testing::Contains("system_shared_memory"));
}

TEST_F(SharedMemoryClientTest, RegisterStatusUnregister) {
  const std::string name = UniqueName("status");
  absl::StatusOr<SharedMemoryRegion> region = SharedMemoryRegion::Create("/" + name, 3 * 4096);
  ASSERT_TRUE(region.ok()) << region.status();
  ASSERT_TRUE(client_->RegisterSystemSharedMemory(name, region->key(), 4096, 2 * 4096).ok());

  absl::StatusOr<std::vector<SharedMemoryStatus>> one = client_->SystemSharedMemoryStatus(name);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].name, name);
  EXPECT_EQ((*one)[0].key, region->key());
  EXPECT_EQ((*one)[0].offset, 4096u);
  EXPECT_EQ((*one)[0].byte_size, 2u * 4096);

  // The same name twice is refused; the first registration stands.
  EXPECT_EQ(client_->RegisterSystemSharedMemory(name, region->key(), 0, 4096).code(),
            absl::StatusCode::kAlreadyExists);

  Registered other = Register("status_other", 4096);
  absl::StatusOr<std::vector<SharedMemoryStatus>> all = client_->SystemSharedMemoryStatus("");
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<std::string> names;
  for (const SharedMemoryStatus& s : *all) names.push_back(s.name);
  EXPECT_THAT(names, ::testing::IsSupersetOf({name, other.name}));
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));

  ASSERT_TRUE(client_->UnregisterSystemSharedMemory(name).ok());
  all = client_->SystemSharedMemoryStatus("");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name, other.name);
  EXPECT_FALSE(client_->SystemSharedMemoryStatus(name).ok());

  // Empty name: every region.
  ASSERT_TRUE(client_->UnregisterSystemSharedMemory("").ok());
  all = client_->SystemSharedMemoryStatus("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
}

TEST_F(SharedMemoryClientTest, KeysThatDoNotExistOrAreNotNamesAreRefused) {
  const std::string name = UniqueName("missing");
  EXPECT_FALSE(client_->RegisterSystemSharedMemory(name, "/" + name, 0, 4096).ok());
  EXPECT_FALSE(client_->RegisterSystemSharedMemory(name, "/../etc/passwd", 0, 4096).ok());
  // Larger than the object.
  Registered small = Register("small", 4096);
  EXPECT_FALSE(
      client_->RegisterSystemSharedMemory(UniqueName("big"), small.region.key(), 0, 8192).ok());
  absl::StatusOr<std::vector<SharedMemoryStatus>> all = client_->SystemSharedMemoryStatus("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 1u);
}

TEST_F(SharedMemoryClientTest, InferThroughSharedMemoryIsBitIdenticalToRaw) {
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{1, 32, 56, 56}, std::vector<int64_t>{2, 32, 9, 11}}) {
    absl::StatusOr<Tensor> input = RandomTensor(shape, 11);
    ASSERT_TRUE(input.ok());
    absl::StatusOr<Tensor> raw = client_->Infer("sepconv", "", *input, {});
    ASSERT_TRUE(raw.ok()) << raw.status();

    const int64_t in_bytes = static_cast<int64_t>(input->data.size()) * kFloat;
    const int64_t out_bytes = static_cast<int64_t>(raw->data.size()) * kFloat;
    Registered in = Register("in", in_bytes);
    // The output at an offset into a larger region, which starts 4096 bytes
    // into its object.
    const std::string out_name = UniqueName("out");
    absl::StatusOr<SharedMemoryRegion> out_object =
        SharedMemoryRegion::Create("/" + out_name, 4096 + 256 + out_bytes);
    ASSERT_TRUE(out_object.ok()) << out_object.status();
    ASSERT_TRUE(
        client_->RegisterSystemSharedMemory(out_name, out_object->key(), 4096, 256 + out_bytes)
            .ok());
    std::memcpy(in.region.data(), input->data.data(), in_bytes);

    InferOptions options;
    options.input_shared_memory = SharedMemoryPlacement{in.name, 0, in_bytes};
    options.output_shared_memory = SharedMemoryPlacement{out_name, 256, out_bytes};
    options.output_view = absl::MakeConstSpan(out_object->data() + 4096 + 256, out_bytes);
    absl::StatusOr<Tensor> shm = client_->Infer("sepconv", "", Tensor{shape, {}}, options);
    ASSERT_TRUE(shm.ok()) << shm.status();
    ExpectIdentical(*shm, *raw);
    // The server wrote nothing outside the placement.
    for (int64_t i = 0; i < 4096 + 256; ++i) ASSERT_EQ(out_object->data()[i], 0) << i;
    ASSERT_TRUE(client_->UnregisterSystemSharedMemory(out_name).ok());
  }
}

TEST_F(SharedMemoryClientTest, PreparedRequestsWithOutputSlicesAnswerWithoutValues) {
  const std::vector<int64_t> shape = {1, 32, 14, 14};
  absl::StatusOr<Tensor> input = RandomTensor(shape, 3);
  absl::StatusOr<Tensor> raw = client_->Infer("sepconv", "", *input, {});
  ASSERT_TRUE(raw.ok()) << raw.status();
  const int64_t in_bytes = static_cast<int64_t>(input->data.size()) * kFloat;
  const int64_t out_bytes = static_cast<int64_t>(raw->data.size()) * kFloat;
  constexpr int kSlices = 8;
  Registered in = Register("async_in", in_bytes);
  Registered out = Register("async_out", kSlices * out_bytes);
  std::memcpy(in.region.data(), input->data.data(), in_bytes);

  absl::Mutex mu;
  int done = 0;
  std::vector<AsyncInferResult> results(kSlices);
  for (int i = 0; i < kSlices; ++i) {
    InferOptions options;
    options.input_shared_memory = SharedMemoryPlacement{in.name, 0, in_bytes};
    options.output_shared_memory = SharedMemoryPlacement{out.name, i * out_bytes, out_bytes};
    absl::StatusOr<std::shared_ptr<const PreparedRequest>> request =
        client_->Prepare("sepconv", "", Tensor{shape, {}}, options);
    ASSERT_TRUE(request.ok()) << request.status();
    EXPECT_LT((*request)->ByteSize(), 1024);  // names, not values
    client_->InferAsync(*request, absl::ZeroDuration(), [&, i](AsyncInferResult r) {
      absl::MutexLock lock(&mu);
      results[i] = std::move(r);
      ++done;
    });
  }
  {
    absl::MutexLock lock(&mu);
    auto all_done = [&] { return done == kSlices; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(60)));
  }
  for (int i = 0; i < kSlices; ++i) {
    EXPECT_TRUE(results[i].status.ok()) << results[i].status;
    EXPECT_THAT(results[i].output_shape, ElementsAre(1, 64, 14, 14));
    EXPECT_EQ(results[i].output_bytes, out_bytes);
    EXPECT_EQ(std::memcmp(out.region.data() + i * out_bytes, raw->data.data(), out_bytes), 0)
        << "slice " << i;
  }
}

TEST_F(SharedMemoryClientTest, CliInferWritesTheRawPathsOutputAndLeavesNothingBehind) {
  const std::string raw_path = Temp("raw.npy"), shm_path = Temp("shm.npy");
  ProcessResult raw = Cli({"infer", "--shape=1,32,56,56", "--seed=4", "--output=" + raw_path});
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  ProcessResult shm = Cli({"infer", "--shape=1,32,56,56", "--seed=4", "--shared_memory=system",
                           "--output=" + shm_path});
  ASSERT_EQ(shm.exit_code, 0) << shm.err;
  EXPECT_THAT(shm.out, HasSubstr("output:  [1, 64, 56, 56]"));
  absl::StatusOr<Tensor> a = ReadNpy(raw_path), b = ReadNpy(shm_path);
  ASSERT_TRUE(a.ok() && b.ok());
  ExpectIdentical(*b, *a);
  EXPECT_THAT(ShmObjects("sepconv_client_"), ::testing::IsEmpty());
  absl::StatusOr<std::vector<SharedMemoryStatus>> all = client_->SystemSharedMemoryStatus("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
  std::remove(raw_path.c_str());
  std::remove(shm_path.c_str());
}

TEST_F(SharedMemoryClientTest, CliBenchReportsTheSameColumnsAndCleansUp) {
  ProcessResult r = Cli({"bench", "--shape=1,32,16,16", "--shared_memory=system",
                         "--concurrency=1,4", "--warmup_ms=100", "--window_ms=300",
                         "--max_windows=3", "--metrics_url=" + server_->metrics_url()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("system shared memory"));
  for (const char* column : {"concurrency", "infer/s", "p50 ms", "p99 ms", "srv compute ms"}) {
    EXPECT_THAT(r.out, HasSubstr(column));
  }
  ProcessResult rate =
      Cli({"bench", "--shape=1,32,8,8", "--shared_memory=system", "--rate=50", "--max_in_flight=4",
           "--warmup_ms=100", "--window_ms=300", "--max_windows=2"});
  EXPECT_EQ(rate.exit_code, 0) << rate.err;
  EXPECT_THAT(ShmObjects("sepconv_client_"), ::testing::IsEmpty());
  absl::StatusOr<std::vector<SharedMemoryStatus>> all = client_->SystemSharedMemoryStatus("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->empty());
}

TEST_F(SharedMemoryClientTest, CliCleansUpAfterAFailedRequest) {
  // 3 channels where the model wants 32: regions made and registered, the
  // request refused.
  for (const char* command : {"infer", "bench"}) {
    ProcessResult r = Cli({command, "--shape=1,3,8,8", "--shared_memory=system",
                           "--output_shared_memory_size=4096", "--concurrency=2"});
    EXPECT_EQ(r.exit_code, 1) << command;
    EXPECT_THAT(r.err, HasSubstr("INVALID_ARGUMENT")) << command;
    EXPECT_THAT(ShmObjects("sepconv_client_"), ::testing::IsEmpty()) << command;
    absl::StatusOr<std::vector<SharedMemoryStatus>> all = client_->SystemSharedMemoryStatus("");
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_TRUE(all->empty()) << command;
  }
}

TEST_F(SharedMemoryClientTest, CliRefusesCombinationsThatMakeNoSense) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"infer", "--shared_memory=system", "--typed"}, "--typed"},
      {{"bench", "--shared_memory=system", "--typed"}, "--typed"},
      {{"bench", "--shared_memory=system", "--streaming"}, "--streaming"},
      {{"infer", "--shared_memory=cuda"}, "'cuda' is not none or system"},
      {{"bench", "--shared_memory=system", "--output_shared_memory_size=-1"},
       "--output_shared_memory_size"},
  };
  for (const auto& [args, needle] : cases) {
    std::vector<std::string> argv = args;
    argv.push_back("--shape=1,32,8,8");
    ProcessResult r = Cli(argv);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << args[1];
    EXPECT_THAT(r.err, HasSubstr(needle));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  ProcessResult help = Cli({"bench", "--help"});
  EXPECT_THAT(help.out, HasSubstr("--shared_memory"));
  EXPECT_THAT(help.out, HasSubstr("perf_analyzer"));
}

// A ModelInfer service that answers every request with a [1, 1, 1, 1] output,
// its value in raw_output_contents or (with `values` false) nowhere.
class FixedAnswer final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit FixedAnswer(bool values) : values_(values) {}
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest*,
                                       inference::ModelInferResponse* response) override {
    auto* output = response->add_outputs();
    output->set_name("output");
    output->set_datatype("FP32");
    for (int i = 0; i < 4; ++i) output->add_shape(1);
    if (values_) {
      const float value = 1.5f;
      response->add_raw_output_contents()->assign(reinterpret_cast<const char*>(&value),
                                                  sizeof(value));
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const bool values_;
};

using FakeServer = testing::FakeGrpcServer<FixedAnswer>;

InferOptions OutputInSharedMemory(const std::vector<char>& view) {
  InferOptions options;
  options.output_shared_memory = SharedMemoryPlacement{"out", 0, 64};
  options.output_view = absl::MakeConstSpan(view);
  return options;
}

TEST(SharedMemoryResponseTest, AnOutputWithoutValuesIsValidOnlyWhenRequestedInSharedMemory) {
  FakeServer fake(/*values=*/false);
  ASSERT_NE(fake.server, nullptr);
  std::unique_ptr<Client> client = *Client::Create(fake.target(), {});
  const Tensor input = *RandomTensor({1, 32, 2, 2}, 1);
  absl::StatusOr<Tensor> plain = client->Infer("sepconv", "", input, {});
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kDataLoss) << plain.status();
  EXPECT_THAT(std::string(plain.status().message()), HasSubstr("carries no values"));

  std::vector<char> view(64, 0);
  const float value = 2.5f;
  std::memcpy(view.data(), &value, sizeof(value));
  absl::StatusOr<Tensor> shm = client->Infer("sepconv", "", input, OutputInSharedMemory(view));
  ASSERT_TRUE(shm.ok()) << shm.status();
  EXPECT_THAT(shm->shape, ElementsAre(1, 1, 1, 1));
  EXPECT_THAT(shm->data, ElementsAre(2.5f));  // read from the view

  absl::StatusOr<std::shared_ptr<const PreparedRequest>> request =
      client->Prepare("sepconv", "", input, OutputInSharedMemory(view));
  ASSERT_TRUE(request.ok()) << request.status();
  std::optional<AsyncInferResult> result =
      testing::InferAsyncAndWait(*client, *request, absl::Seconds(30));
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->status.ok()) << result->status;
  EXPECT_EQ(result->output_bytes, 4);
}

TEST(SharedMemoryResponseTest, ValuesInTheResponseForASharedMemoryOutputAreDataLoss) {
  // What a server without the extension answers.
  FakeServer fake(/*values=*/true);
  ASSERT_NE(fake.server, nullptr);
  std::unique_ptr<Client> client = *Client::Create(fake.target(), {});
  std::vector<char> view(64, 0);
  absl::StatusOr<Tensor> out =
      client->Infer("sepconv", "", *RandomTensor({1, 32, 2, 2}, 1), OutputInSharedMemory(view));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss) << out.status();
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("shared memory"));
}

TEST(SharedMemoryResponseTest, AnOutputLargerThanItsPlacementIsDataLoss) {
  FakeServer fake(/*values=*/false);
  ASSERT_NE(fake.server, nullptr);
  std::unique_ptr<Client> client = *Client::Create(fake.target(), {});
  std::vector<char> view(2, 0);
  InferOptions options;
  options.output_shared_memory = SharedMemoryPlacement{"out", 0, 2};  // < 4 bytes
  options.output_view = absl::MakeConstSpan(view);
  absl::StatusOr<Tensor> out =
      client->Infer("sepconv", "", *RandomTensor({1, 32, 2, 2}, 1), options);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss) << out.status();
}

}  // namespace
}  // namespace sepconv::client
