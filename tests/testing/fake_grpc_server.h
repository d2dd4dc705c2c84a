#ifndef SEPCONV_TESTS_TESTING_FAKE_GRPC_SERVER_H_
#define SEPCONV_TESTS_TESTING_FAKE_GRPC_SERVER_H_

// An in-process gRPC server on a free 127.0.0.1 port serving one fake
// service a test writes (e.g. a GRPCInferenceService that answers as a
// broken server would), for client tests that need answers the real server
// never gives. Shut down on destruction. Thread-compatible.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>

namespace sepconv::testing {

template <typename Service>
struct FakeGrpcServer {
  // Builds the service from `args` and starts serving it.
  template <typename... Args>
  explicit FakeGrpcServer(Args&&... args) : service(std::forward<Args>(args)...) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
  }
  ~FakeGrpcServer() { server->Shutdown(); }
  std::string target() const { return "127.0.0.1:" + std::to_string(port); }

  Service service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_FAKE_GRPC_SERVER_H_
