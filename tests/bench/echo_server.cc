// A trivial KServe v2 server from the same proto as sepconv-server, for the
// service benchmark: ModelInfer answers with an output-sized payload
// ([N, --out_channels, H, W] FP32 zeros, raw or typed like the request)
// without computing anything. Our throughput divided by the echo's says how
// close the service is to what gRPC itself can move. Not part of the product.

#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

ABSL_FLAG(std::string, address, "127.0.0.1", "address to listen on");
ABSL_FLAG(int32_t, port, 0, "port (0: any free port; the chosen one is printed)");
ABSL_FLAG(int64_t, out_channels, 64, "channels of the answered output");

namespace {

class EchoService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit EchoService(int64_t out_channels) : out_channels_(out_channels) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* response) override {
    response->set_live(true);
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* response) override {
    response->set_ready(true);
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest*,
                                       inference::ModelReadyResponse* response) override {
    response->set_ready(true);
    return Done(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override {
    if (request->inputs_size() != 1 || request->inputs(0).shape_size() != 4) {
      return Done(context,
                  grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "echo expects one NCHW input"));
    }
    const auto& in = request->inputs(0);
    const int64_t n = in.shape(0), h = in.shape(2), w = in.shape(3);
    const int64_t count = n * out_channels_ * h * w;
    response->set_model_name(request->model_name());
    response->set_model_version("1");
    response->set_id(request->id());
    auto* out = response->add_outputs();
    out->set_name("output");
    out->set_datatype("FP32");
    for (int64_t d : {n, out_channels_, h, w}) out->add_shape(d);
    if (request->raw_input_contents_size() > 0) {
      response->add_raw_output_contents()->resize(static_cast<size_t>(count) * sizeof(float));
    } else {
      out->mutable_contents()->mutable_fp32_contents()->Resize(static_cast<int>(count), 0.0f);
    }
    return Done(context, grpc::Status::OK);
  }

 private:
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                                        const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  const int64_t out_channels_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  grpc::EnableDefaultHealthCheckService(true);
  EchoService service(absl::GetFlag(FLAGS_out_channels));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      absl::StrCat(absl::GetFlag(FLAGS_address), ":", absl::GetFlag(FLAGS_port)),
      grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(1 << 30);
  builder.SetMaxSendMessageSize(1 << 30);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "echo_server: cannot listen on " << absl::GetFlag(FLAGS_address) << ":"
              << absl::GetFlag(FLAGS_port) << "\n";
    return 1;
  }
  std::cout << "listening on " << absl::GetFlag(FLAGS_address) << ":" << port << std::endl;
  server->Wait();
  return 0;
}
