#ifndef SEPCONV_SERVER_GRPC_GRPC_TLS_H_
#define SEPCONV_SERVER_GRPC_GRPC_TLS_H_

// gRPC server credentials from the TLS files (server/core/tls.h checks
// them). Stateless; thread-safe.

#include <memory>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"
#include "server/core/tls.h"

namespace sepconv {

// Insecure credentials when no file is set. Otherwise TLS credentials; with
// client_ca_file, clients must present a certificate that verifies against
// that CA (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY).
// Errors as LoadTls.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_GRPC_TLS_H_
