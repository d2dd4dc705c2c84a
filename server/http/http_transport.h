#ifndef SEPCONV_SERVER_HTTP_HTTP_TRANSPORT_H_
#define SEPCONV_SERVER_HTTP_HTTP_TRANSPORT_H_

// HTTP/1.1 connections for the REST frontend, on Boost.Beast and Asio
// (Debian's libboost-dev). It reads each request whole, hands it to one
// handler and writes the handler's answer; what the requests mean is
// http_server.cc's.
//
// Why not cpp-httplib any more: Debian's build of it reads a body 4 KiB at a
// time with a poll before each read (the size is fixed when the library is
// built), so a 400 KB binary tensor cost about 200 system calls. Here a
// body with a Content-Length is read in one call straight into the
// request's buffer (after what arrived with the header), and an answer goes
// out in one gathered write of its header and body, no copy.
//
// What a client gets, besides its handler's answer:
//   - keep-alive (HTTP/1.1 default, HTTP/1.0 on request), pipelining;
//   - `Expect: 100-continue` answered before the body is read;
//   - chunked request bodies;
//   - gzip or deflate request bodies (Content-Encoding) inflated, the
//     inflated size held to the body limit;
//   - answers compressed as Accept-Encoding asks (compression.h);
//   - 413 for a body over the limit (the body is read and dropped first when
//     it is at most 4x the limit, so that the client reads the answer), 400
//     for a request that cannot be parsed, 431 for a header over 16 KiB;
//     each with a JSON {"error": "..."} body;
//   - HEAD served as GET without the body;
//   - a connection waits at most 60 s for a request or a body to arrive
//     (idle keep-alive connections are then closed) and 60 s for an answer
//     to be taken.
// Handlers answer when they are ready, from any thread (HttpResponder):
// `threads` threads run every connection's I/O, the handlers' start and
// the making of their answers, and none of them waits for an inference, so
// any number of requests can be in flight on them. A client that closes its
// connection before its answer is told to the handler (OnHangUp), which
// cancels what it started; a pipelined next request is not a hang-up.
//
// Thread-safe. Shutdown stops accepting, closes connections that wait for a
// request, lets every request being handled answer, then joins.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sepconv {

struct HttpRequest {
  std::string method;  // as sent: "GET", "POST", ...; HEAD is given as "GET"
  std::string path;    // the target without its query, %XX decoded
  // Headers as sent; Header() looks them up.
  std::vector<std::pair<std::string, std::string>> headers;
  // `pad` blanks, then the body (inflated when it was compressed). The pad
  // makes the binary tensor data after an `Inference-Header-Content-Length`
  // JSON header start 4-byte aligned in `body`: (4 - length % 4) % 4 when
  // that header is a number, else 0. Body() is the body without it.
  std::string body;
  size_t pad = 0;
  // The client, numeric: "127.0.0.1" / "::1".
  std::string remote_addr;
  int remote_port = 0;
  // Set by the router: [0] the path, then its pattern's groups ("" where a
  // group did not match).
  std::vector<std::string> matches;

  // The first value of header `name` (case-insensitive); "" when absent.
  const std::string& Header(absl::string_view name) const;
  bool HasHeader(absl::string_view name) const;
  absl::string_view Body() const { return absl::string_view(body).substr(pad); }
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  void SetHeader(std::string name, std::string value);
  void SetContent(std::string content, const char* content_type) {
    body = std::move(content);
    SetHeader("Content-Type", content_type);
  }
};

// How a handler answers its request. Copyable; every copy answers the same
// request. Thread-safe.
class HttpResponder {
 public:
  // Answers with what `make` returns; `make` runs on a transport thread (so
  // that a large answer is not made on, say, an inference thread). Only
  // the first answer counts.
  void Respond(std::function<HttpResponse()> make) const;
  void Respond(HttpResponse response) const;
  // `on_hang_up` runs, on a transport thread, if the client closes its
  // connection before the answer is made. Set it before starting work that
  // a hang-up should cancel; at most once.
  void OnHangUp(std::function<void()> on_hang_up) const;

  struct State;
  explicit HttpResponder(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

struct HttpTransportOptions {
  std::string address = "0.0.0.0";  // numeric or a name to resolve
  int port = 0;                     // 0 picks a free port (see port())
  int threads = 2;
  size_t max_body_bytes = size_t{256} << 20;
  // PEM contents (as LoadTls gives them); empty cert: plain HTTP. A
  // non-empty client_ca makes clients present a certificate it signed.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
};

class HttpTransport {
 public:
  // Runs on a transport thread for every request; answers through
  // `responder`, at once or later. Should not block.
  using Handler = std::function<void(HttpRequest request, HttpResponder responder)>;
  // The JSON body of the transport's own error answers (413, 400, 431).
  using ErrorBody = std::function<std::string(absl::string_view message)>;

  // Binds and starts serving. UNAVAILABLE when the address cannot be bound,
  // INVALID_ARGUMENT for bad options or TLS material OpenSSL refuses.
  static absl::StatusOr<std::unique_ptr<HttpTransport>> Start(const HttpTransportOptions& options,
                                                              Handler handler,
                                                              ErrorBody error_body);
  ~HttpTransport();  // Shutdown
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  int port() const;

  // Idempotent; not from a handler.
  void Shutdown();

  class Impl;

 private:
  explicit HttpTransport(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_HTTP_TRANSPORT_H_
