#ifndef SEPCONV_SERVER_GRPC_STATUS_UTIL_H_
#define SEPCONV_SERVER_GRPC_STATUS_UTIL_H_

// The one place where absl::Status becomes grpc::Status (and back, for the
// rare gRPC result the server has to reason about). absl's and gRPC's codes
// share their numeric values; the mapping is still spelled out so that a
// code outside the canonical range becomes UNKNOWN rather than garbage.
// Pure functions; thread-safe.

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace sepconv {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// Ends a unary callback RPC at once with `status` converted; returns the
// call's default reactor, which the handler returns to gRPC.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_STATUS_UTIL_H_
