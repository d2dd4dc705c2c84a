#ifndef SEPCONV_SERVER_GRPC_STATUS_UTIL_H_
#define SEPCONV_SERVER_GRPC_STATUS_UTIL_H_

// FinishUnary: a unary callback RPC ended at once with an absl::Status. The
// conversion itself is proto/status_convert.h's (shared with the client), the
// one place where absl::Status becomes grpc::Status. Thread-safe.

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "proto/status_convert.h"

namespace sepconv {

// Ends a unary callback RPC at once with `status` converted; returns the
// call's default reactor, which the handler returns to gRPC.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_STATUS_UTIL_H_
