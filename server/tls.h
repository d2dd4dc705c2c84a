#ifndef SEPCONV_SERVER_TLS_H_
#define SEPCONV_SERVER_TLS_H_

// gRPC server credentials from the --tls_cert / --tls_key / --tls_client_ca
// files. Files are read and checked at startup, so a bad path or a key that
// does not belong to the certificate is a clear error instead of a vague
// gRPC bind failure. Stateless functions; thread-safe.

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class ServerCredentials;
}  // namespace grpc

namespace sepconv {

struct TlsOptions {
  std::string cert_file;       // PEM certificate chain (server first)
  std::string key_file;        // PEM private key of the first certificate
  std::string client_ca_file;  // PEM CA bundle; non-empty requires mTLS

  // True when any TLS file is set.
  bool enabled() const {
    return !cert_file.empty() || !key_file.empty() || !client_ca_file.empty();
  }
};

// Insecure credentials when no file is set. Otherwise TLS credentials; with
// client_ca_file, clients must present a certificate that verifies against
// that CA (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY).
// Errors: INVALID_ARGUMENT (cert without key or the reverse, CA without cert,
// not PEM, key does not match cert), NOT_FOUND / PERMISSION_DENIED (file
// unreadable); every message names the flag and the file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options);

// The file's contents, or NOT_FOUND / PERMISSION_DENIED naming `flag` and
// the path, or INVALID_ARGUMENT when it is empty.
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_TLS_H_
