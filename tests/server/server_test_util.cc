#include "server_test_util.h"

#include <prometheus/registry.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/random_model.h"
#include "server/core/auth.h"
#include "server/models/served_model.h"

namespace sepconv::testing {

ModelSpec ValidPaddingModel() {
  LayerSpec layer;
  layer.in_channels = 32;
  layer.out_channels = 16;
  layer.kernel = 5;
  layer.padding = 0;
  absl::StatusOr<ModelSpec> model = MakeRandomModel({layer}, 7);
  if (!model.ok()) std::abort();
  return *model;
}

std::vector<MalformedCase> MalformedCases() {
  using inference::ModelInferRequest;
  using Code = absl::StatusCode;
  auto shape = [](std::vector<int64_t> dims) {
    return [dims](ModelInferRequest* r) {
      r->mutable_inputs(0)->clear_shape();
      for (int64_t d : dims) r->mutable_inputs(0)->add_shape(d);
    };
  };
  std::vector<MalformedCase> cases = {
      {"UnknownModel", [](ModelInferRequest* r) { r->set_model_name("nope"); }, Code::kNotFound,
       "unknown model 'nope'", "sepconv", false},
      {"UnknownVersion", [](ModelInferRequest* r) { r->set_model_version("42"); }, Code::kNotFound,
       "unknown version '42'", "sepconv", false},
      {"WrongInputName", [](ModelInferRequest* r) { r->mutable_inputs(0)->set_name("x"); },
       Code::kInvalidArgument, "input name 'x'"},
      {"WrongDatatype", [](ModelInferRequest* r) { r->mutable_inputs(0)->set_datatype("FP16"); },
       Code::kInvalidArgument, "datatype 'FP16'"},
      {"WrongRank", shape({1, 32, 8}), Code::kInvalidArgument, "rank 3"},
      {"ChannelMismatch", shape({1, 16, 8, 16}), Code::kInvalidArgument, "16 channels"},
      {"RawByteSizeMismatch",
       [](ModelInferRequest* r) { r->mutable_raw_input_contents(0)->resize(100); },
       Code::kInvalidArgument, "raw_input_contents[0] has 100 bytes"},
      {"TypedCountMismatch",
       [](ModelInferRequest* r) {
         r->clear_raw_input_contents();
         r->mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
       },
       Code::kInvalidArgument, "fp32_contents has 1 elements"},
      {"TypedWrongField",
       [](ModelInferRequest* r) {
         r->clear_raw_input_contents();
         r->mutable_inputs(0)->mutable_contents()->add_int_contents(1);
       },
       Code::kInvalidArgument, "contents.int_contents"},
      {"BothRawAndTyped",
       [](ModelInferRequest* r) {
         r->mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
       },
       Code::kInvalidArgument, "both in raw_input_contents[0] and in contents.fp32_contents"},
      {"NoData", [](ModelInferRequest* r) { r->clear_raw_input_contents(); },
       Code::kInvalidArgument, "no raw_input_contents[0] given"},
      {"ZeroDim", shape({1, 32, 0, 8}), Code::kInvalidArgument, "dim 2 (H) is 0"},
      {"NegativeDim", shape({-1, 32, 8, 8}), Code::kInvalidArgument, "dim 0 (N) is -1"},
      {"ShapeOverflow", shape({int64_t{1} << 40, 32, int64_t{1} << 20, 8}), Code::kInvalidArgument,
       "more elements than int64"},
      {"TooManyInputs", [](ModelInferRequest* r) { r->add_inputs()->CopyFrom(r->inputs(0)); },
       Code::kInvalidArgument, "request has 2 inputs"},
      {"NoInput", [](ModelInferRequest* r) { r->clear_inputs(); }, Code::kInvalidArgument,
       "request has no inputs"},
      {"UnknownOutput", [](ModelInferRequest* r) { r->add_outputs()->set_name("logits"); },
       Code::kInvalidArgument, "requested output 'logits'"},
      {"NegativeTimeout",
       [](ModelInferRequest* r) { (*r->mutable_parameters())["timeout"].set_int64_param(-5); },
       Code::kInvalidArgument, "parameter 'timeout' is -5"},
      {"ExtraRawContents", [](ModelInferRequest* r) { r->add_raw_input_contents("x"); },
       Code::kInvalidArgument, "raw_input_contents has 2 entries"},
      {"TimeoutNotAnInteger",
       [](ModelInferRequest* r) { (*r->mutable_parameters())["timeout"].set_string_param("soon"); },
       Code::kInvalidArgument, "'timeout' must be an int64_param"},
      {"SpatialSmallerThanKernel",
       [](ModelInferRequest* r) {
         r->mutable_inputs(0)->set_shape(2, 3);
         r->mutable_inputs(0)->set_shape(3, 3);
         r->mutable_raw_input_contents(0)->resize(32 * 3 * 3 * sizeof(float));
       },
       Code::kInvalidArgument, "smaller than the kernel reach 5", kValidPaddingModel},
  };
  return cases;
}

ServerOptions TestServer::DefaultOptions() {
  ServerOptions options;
  options.address = "127.0.0.1";
  options.grpc_port = 0;
  options.metrics_port = 0;
  options.threads = 1;
  options.exit_timeout = absl::Seconds(10);
  options.drain_grace = absl::ZeroDuration();
  return options;
}

absl::StatusOr<ServerOptions> WithTokens(ServerOptions options, std::vector<std::string> tokens) {
  absl::StatusOr<std::unique_ptr<TokenAuthenticator>> auth =
      TokenAuthenticator::FromTokens(std::move(tokens));
  if (!auth.ok()) return auth.status();
  options.core.auth = *std::move(auth);
  return options;
}

TestServer::TestServer(ServerOptions options)
    : metrics_(Metrics::Create()), registry_(std::make_shared<ModelRegistry>()) {
  absl::Status added = AddDefaultModel(options, metrics_.get(), registry_.get());
  if (!added.ok()) std::abort();
  auto second = ServedModel::Create(
      kValidPaddingModel, "1", std::make_shared<const ModelSpec>(ValidPaddingModel()),
      options.ModelSchedulerOptions(), options.ModelExecutorOptions(), metrics_.get());
  if (!second.ok()) std::abort();
  registry_->AddOrReplace(*std::move(second));
  auto server = Server::Start(options, registry_, metrics_.get());
  if (!server.ok()) {
    std::fprintf(stderr, "TestServer: %s\n", server.status().ToString().c_str());
    std::abort();
  }
  server_ = *std::move(server);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                       grpc::InsecureChannelCredentials(), args);
}

TestServer::~TestServer() { server_->Shutdown(absl::Now() + absl::Seconds(10)); }

std::unique_ptr<inference::GRPCInferenceService::Stub> TestServer::NewStub() const {
  return inference::GRPCInferenceService::NewStub(channel_);
}

double TestServer::RequestCount(const std::string& status) const {
  double total = 0;
  for (const auto& family : metrics_->registry()->Collect()) {
    if (family.name != "sepconv_inference_requests_total") continue;
    for (const auto& metric : family.metric) {
      bool model_ok = false;
      bool status_ok = false;
      for (const auto& label : metric.label) {
        if (label.name == "model" && label.value == kDefaultModelName) model_ok = true;
        if (label.name == "status" && label.value == status) status_ok = true;
      }
      if (model_ok && status_ok) total += metric.counter.value;
    }
  }
  return total;
}

std::unique_ptr<grpc::ClientContext> ContextWithDeadline(double seconds) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  return context;
}

}  // namespace sepconv::testing
