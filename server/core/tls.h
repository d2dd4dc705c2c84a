#ifndef SEPCONV_SERVER_CORE_TLS_H_
#define SEPCONV_SERVER_CORE_TLS_H_

// The --tls_cert / --tls_key / --tls_client_ca files, read and checked at
// startup, so that a bad path or a key that does not belong to the
// certificate is a clear error instead of a vague bind failure in a
// frontend. Protocol-free: each frontend builds its own credentials from
// the checked PEMs (server/grpc/grpc_tls.h). Stateless functions;
// thread-safe.

#include <string>

#include "absl/status/statusor.h"

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

// The checked PEM contents; all empty when TLS is off.
struct TlsPems {
  std::string cert;
  std::string key;
  std::string client_ca;  // non-empty: clients must present a certificate
};

// Reads and checks the files `options` names; empty TlsPems when no file is
// set. Errors: INVALID_ARGUMENT (cert without key or the reverse, CA without
// cert, not PEM, key does not match cert), NOT_FOUND / PERMISSION_DENIED
// (file unreadable); every message names the flag and the file.
absl::StatusOr<TlsPems> LoadTls(const TlsOptions& options);

// The file's contents, or NOT_FOUND / PERMISSION_DENIED naming `flag` and
// the path, or INVALID_ARGUMENT when it is empty.
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_TLS_H_
