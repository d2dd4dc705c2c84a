#ifndef SEPCONV_CLIENT_INTERNAL_HTTP_CONNECTION_H_
#define SEPCONV_CLIENT_INTERNAL_HTTP_CONNECTION_H_

// The REST client's HTTP/1.1 connections, on Boost.Beast and Asio (as the
// server's REST frontend): to one "host:port", plaintext or TLS (verified
// against ClientOptions' roots, with its client certificate for mutual TLS
// and its server-name override), keep-alive, sending the bearer token and
// asking for uncompressed answers. A request's body is sent from the
// caller's buffer (one gathered write with the header); an answer's body is
// read straight into the answer's string, in as few reads as the kernel
// allows. Every exchange ends by its deadline.
//
// Thread-safe: HttpConnector::Connect may run on any thread; each
// HttpConnection has one user at a time, and Stop may come from any thread.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace sepconv::client::internal {

// One HTTP exchange. `body` (POST; null: empty) must outlive it.
struct HttpCall {
  bool post = false;
  std::string path;
  const std::string* body = nullptr;
  const char* content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

struct HttpAnswer {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first value of header `name` (case-insensitive); "" when absent.
  std::string Header(absl::string_view name) const;
  bool HasHeader(absl::string_view name) const;
};

class HttpConnection {
 public:
  struct Shared;  // what every connection of a connector uses
  explicit HttpConnection(std::shared_ptr<const Shared> shared);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends `call` and reads its answer by `deadline`, connecting first when
  // not connected. Without an HTTP answer: UNAVAILABLE (cannot connect, TLS
  // refused, or the connection broke: then it reconnects on the next call),
  // DEADLINE_EXCEEDED, or CANCELLED after Stop.
  absl::StatusOr<HttpAnswer> Exchange(const HttpCall& call, absl::Time deadline);

  // Ends the exchange in flight, and every later one, CANCELLED. Any thread.
  void Stop();

 private:
  struct Io;
  std::unique_ptr<Io> io_;
};

class HttpConnector {
 public:
  // INVALID_ARGUMENT for an address that is not "host:port" ("[v6]:port")
  // or TLS material OpenSSL cannot read.
  static absl::StatusOr<std::unique_ptr<HttpConnector>> Create(const std::string& address,
                                                               const ClientOptions& options);
  ~HttpConnector();
  HttpConnector(const HttpConnector&) = delete;
  HttpConnector& operator=(const HttpConnector&) = delete;

  // A new connection (connects on its first exchange).
  std::unique_ptr<HttpConnection> Connect() const;

  // "host:port", for messages.
  const std::string& address() const;

 private:
  HttpConnector() = default;
  std::shared_ptr<HttpConnection::Shared> shared_;
};

}  // namespace sepconv::client::internal

#endif  // SEPCONV_CLIENT_INTERNAL_HTTP_CONNECTION_H_
