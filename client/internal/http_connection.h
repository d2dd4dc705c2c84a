#ifndef SEPCONV_CLIENT_INTERNAL_HTTP_CONNECTION_H_
#define SEPCONV_CLIENT_INTERNAL_HTTP_CONNECTION_H_

// Makes the REST client's connections: httplib clients to one "host:port",
// plaintext or TLS (verified against ClientOptions' roots, with its client
// certificate for mutual TLS and its server-name override), keep-alive,
// sending the bearer token and asking for uncompressed answers.
//
// Thread-safe: Connect may run on any thread; each connection it makes has
// one user at a time.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "httplib.h"

namespace sepconv::client::internal {

class HttpConnector {
 public:
  // INVALID_ARGUMENT for an address that is not "host:port" ("[v6]:port")
  // or TLS material OpenSSL cannot read.
  static absl::StatusOr<std::unique_ptr<HttpConnector>> Create(const std::string& address,
                                                               const ClientOptions& options);
  ~HttpConnector();
  HttpConnector(const HttpConnector&) = delete;
  HttpConnector& operator=(const HttpConnector&) = delete;

  // A new connection (connects on its first request).
  std::unique_ptr<httplib::ClientImpl> Connect() const;

  // "host:port", for messages.
  const std::string& address() const { return address_; }

 private:
  struct Tls;
  HttpConnector() = default;

  std::string address_;
  std::string host_;  // as connected to (numeric with a server-name override)
  int port_ = 0;
  std::string token_;
  std::unique_ptr<Tls> tls_;  // null: plaintext
};

}  // namespace sepconv::client::internal

#endif  // SEPCONV_CLIENT_INTERNAL_HTTP_CONNECTION_H_
