#include "server/grpc/grpc_tls.h"

#include <utility>

namespace sepconv {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options) {
  absl::StatusOr<TlsPems> pems = LoadTls(options);
  if (!pems.ok()) return pems.status();
  if (!options.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({pems->key, pems->cert});
  if (!pems->client_ca.empty()) {
    ssl.pem_root_certs = std::move(pems->client_ca);
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace sepconv
