// The dynamic batcher end to end over 127.0.0.1: concurrent clients with
// distinct inputs each get the engine's answer for their input alone, while
// the engine ran fewer times than there were requests. The engine is held at
// a gate (tests/testing/engine_gate.h) until every request is queued, so the
// batches formed do not depend on how fast the machine is.

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/executor.h"
#include "engine/random_model.h"
#include "grpc_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/grpc/server.h"
#include "server/metrics/metrics.h"
#include "server/models/model_registry.h"
#include "server/models/served_model.h"
#include "tests/testing/engine_gate.h"
#include "tests/testing/tensors.h"

namespace sepconv {
namespace {

constexpr int kClients = 32;
constexpr Dims4 kInput{1, 32, 56, 56};

using testing::Elements;

std::vector<float> RandomInput(uint64_t seed) {
  return testing::RandomTensor(Elements(kInput), seed);
}

inference::ModelInferRequest MakeRequest(const std::vector<float>& input_values) {
  inference::ModelInferRequest request;
  request.set_model_name("sepconv");
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  for (int64_t d : {kInput.n, kInput.c, kInput.h, kInput.w}) input->add_shape(d);
  request.add_raw_input_contents()->assign(reinterpret_cast<const char*>(input_values.data()),
                                           input_values.size() * sizeof(float));
  return request;
}

double CounterValue(Metrics& metrics, const std::string& family_name) {
  double total = 0;
  for (const auto& family : metrics.registry()->Collect()) {
    if (family.name != family_name) continue;
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) {
        if (label.name == "model" && label.value == "sepconv") total += metric.counter.value;
      }
    }
  }
  return total;
}

TEST(BatchingIntegrationTest, ConcurrentClientsGetTheirOwnAnswersFromFewerExecutions) {
  ServerOptions options;
  options.address = "127.0.0.1";
  options.grpc_port = 0;
  options.metrics_port = 0;
  options.threads = 1;
  options.scheduler.max_batch_size = 8;
  options.scheduler.adaptive_queue_delay = false;  // full batches, never a probe of singles
  testing::EngineGate gate;
  options.scheduler.before_batch = gate.Hook();
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  auto registry = std::make_shared<ModelRegistry>();
  ASSERT_TRUE(AddDefaultModel(options, metrics.get(), registry.get()).ok());
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options, registry, metrics.get());
  ASSERT_TRUE(server.ok()) << server.status();

  // The engine's answer for each input alone, from an executor of our own.
  auto model = std::make_shared<const ModelSpec>(DefaultModel());
  ExecutorOptions executor_options;
  executor_options.threads = 1;
  absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::Create(model, executor_options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  absl::StatusOr<Dims4> out_dims = InferOutputShape(*model, kInput);
  ASSERT_TRUE(out_dims.ok());
  std::vector<std::vector<float>> inputs, expected;
  for (int i = 0; i < kClients; ++i) {
    inputs.push_back(RandomInput(1000 + i));
    expected.emplace_back(Elements(*out_dims));
    ASSERT_TRUE((*executor)->Run(kInput, inputs.back().data(), expected.back().data()).ok());
  }

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", (*server)->grpc_port()),
                                           grpc::InsecureChannelCredentials(), args);
  ASSERT_TRUE(channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10))));
  auto stub = inference::GRPCInferenceService::NewStub(channel);

  // One request parks the worker; every client's request then queues.
  gate.Close();
  std::thread plug([&] {
    inference::ModelInferRequest request = MakeRequest(inputs[0]);
    inference::ModelInferResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
    EXPECT_TRUE(stub->ModelInfer(&context, request, &response).ok());
  });
  ASSERT_TRUE(gate.WaitParked().ok());

  std::vector<grpc::Status> statuses(kClients);
  std::vector<std::vector<float>> outputs(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      inference::ModelInferRequest request = MakeRequest(inputs[i]);
      inference::ModelInferResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
      statuses[i] = stub->ModelInfer(&context, request, &response);
      if (statuses[i].ok() && response.raw_output_contents_size() == 1) {
        const std::string& bytes = response.raw_output_contents(0);
        outputs[i].resize(bytes.size() / sizeof(float));
        std::memcpy(outputs[i].data(), bytes.data(), outputs[i].size() * sizeof(float));
      }
    });
  }
  absl::StatusOr<std::shared_ptr<ServedModel>> served = registry->Find("sepconv", "1");
  ASSERT_TRUE(served.ok()) << served.status();
  for (int i = 0; i < 60000 && (*served)->scheduler().queued() < kClients; ++i) {
    absl::SleepFor(absl::Milliseconds(1));  // (a 60 s hang guard)
  }
  ASSERT_EQ((*served)->scheduler().queued(), kClients);
  gate.Open();
  plug.join();
  for (std::thread& client : clients) client.join();

  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << "client " << i << ": " << statuses[i].error_message();
    ASSERT_EQ(outputs[i].size(), expected[i].size()) << "client " << i;
    double worst = 0;
    for (size_t j = 0; j < outputs[i].size(); ++j) {
      worst = std::max(worst, std::abs(double{outputs[i][j]} - double{expected[i][j]}) /
                                  std::max(1.0, std::abs(double{expected[i][j]})));
    }
    EXPECT_LE(worst, 1e-6) << "client " << i << " got an answer that is not its own";
  }
  const double executions = CounterValue(*metrics, "sepconv_inference_executions_total");
  const double samples = CounterValue(*metrics, "sepconv_inference_samples_total");
  // The plug alone, then the 32 queued requests in full batches of 8.
  EXPECT_EQ(samples, kClients + 1);
  EXPECT_EQ(executions, 1 + kClients / 8);
  (*server)->Shutdown(absl::Now() + absl::Seconds(10));
}

}  // namespace
}  // namespace sepconv
