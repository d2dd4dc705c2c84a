#include "client/internal/http_connection.h"

#include <netdb.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"

namespace sepconv::client::internal {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using SslStream = beast::ssl_stream<beast::tcp_stream>;
using Clock = std::chrono::steady_clock;

// "host:port" or "[v6]:port".
absl::Status SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  const auto bad = [&address] {
    return absl::InvalidArgumentError(
        absl::StrCat("REST server address '", address,
                     "' is not host:port (one server; gRPC's target forms are not for REST)"));
  };
  if (colon == std::string::npos || colon == 0) return bad();
  *host = address.substr(0, colon);
  if (host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  if (host->empty() || host->find_first_of("/,[]") != std::string::npos ||
      (host->find(':') != std::string::npos && address.front() != '[')) {
    return bad();
  }
  if (!absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 1 || *port > 65535) {
    return bad();
  }
  return absl::OkStatus();
}

// The first address `host` resolves to, as text (a server-name override
// connects to the address the given host has).
absl::StatusOr<std::string> NumericHost(const std::string& host) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve '", host, "'"));
  }
  char text[NI_MAXHOST];
  const int rc = getnameinfo(found->ai_addr, found->ai_addrlen, text, sizeof(text), nullptr, 0,
                             NI_NUMERICHOST);
  freeaddrinfo(found);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("cannot resolve '", host, "'"));
  return std::string(text);
}

absl::string_view View(beast::string_view s) { return absl::string_view(s.data(), s.size()); }

// Runs the async operation `start` begins on `io`, on this thread, until it
// (and whatever it started) is done; its error.
template <class Start>
beast::error_code RunOp(net::io_context& io, Start start) {
  beast::error_code result = net::error::would_block;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}

}  // namespace

std::string HttpAnswer::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

bool HttpAnswer::HasHeader(absl::string_view name) const {
  return std::any_of(headers.begin(), headers.end(), [name](const auto& header) {
    return absl::EqualsIgnoreCase(header.first, name);
  });
}

struct HttpConnection::Shared {
  std::string address;  // "host:port" as given, for messages
  std::string host;     // connected to (numeric with a server-name override)
  std::string port;
  std::string host_header;  // the Host header
  std::string token;
  std::string server_name;  // TLS: verified, and sent as SNI
  std::optional<ssl::context> tls;
};

struct HttpConnection::Io {
  explicit Io(std::shared_ptr<const Shared> s) : shared(std::move(s)) {}

  // Closes the connection; the next exchange connects again.
  void Reset() {
    beast::error_code ignored;
    if (secure.has_value()) secure->next_layer().socket().close(ignored);
    if (plain.has_value()) plain->socket().close(ignored);
    secure.reset();
    plain.reset();
    buffer.clear();
  }

  absl::Status Failure(beast::error_code ec, absl::string_view stage) const {
    if (stopped.load()) return absl::CancelledError("the client is being destroyed");
    if (ec == beast::error::timeout) {
      return absl::DeadlineExceededError(
          absl::StrCat("deadline exceeded ", stage, " ", shared->address));
    }
    return absl::UnavailableError(absl::StrCat(stage, " ", shared->address, ": ", ec.message()));
  }

  absl::Status Connect(Clock::time_point expiry);
  template <class Stream>
  absl::StatusOr<HttpAnswer> Exchange(Stream& stream, const HttpCall& call,
                                      Clock::time_point expiry);

  const std::shared_ptr<const Shared> shared;
  net::io_context io{1};
  std::optional<beast::tcp_stream> plain;
  std::optional<SslStream> secure;
  beast::flat_buffer buffer;
  std::atomic<bool> stopped{false};
};

absl::Status HttpConnection::Io::Connect(Clock::time_point expiry) {
  tcp::resolver resolver(io);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(shared->host, shared->port, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", shared->address, ": ", ec.message()));
  beast::tcp_stream stream(io);
  stream.expires_at(expiry);
  ec = RunOp(io, [&](auto handler) { stream.async_connect(endpoints, std::move(handler)); });
  if (ec) return Failure(ec, "cannot connect to");
  stream.socket().set_option(tcp::no_delay(true), ec);
  if (!shared->tls.has_value()) {
    plain.emplace(std::move(stream));
    return absl::OkStatus();
  }
  // Asio's TLS stream takes the context as non-const; it only reads it.
  secure.emplace(std::move(stream), const_cast<ssl::context&>(*shared->tls));
  if (!SSL_set_tlsext_host_name(secure->native_handle(), shared->server_name.c_str())) {
    return absl::UnavailableError(
        absl::StrCat("TLS: cannot send the server name to ", shared->address));
  }
  secure->set_verify_callback(ssl::host_name_verification(shared->server_name));
  secure->next_layer().expires_at(expiry);
  ec = RunOp(io, [&](auto handler) {
    secure->async_handshake(ssl::stream_base::client, std::move(handler));
  });
  if (ec) return Failure(ec, "TLS handshake with");
  return absl::OkStatus();
}

template <class Stream>
absl::StatusOr<HttpAnswer> HttpConnection::Io::Exchange(Stream& stream, const HttpCall& call,
                                                        Clock::time_point expiry) {
  beast::tcp_stream& lowest = beast::get_lowest_layer(stream);
  lowest.expires_at(expiry);
  http::request<http::span_body<const char>> request(call.post ? http::verb::post : http::verb::get,
                                                     call.path, 11);
  request.set(http::field::host, shared->host_header);
  request.set(http::field::accept_encoding, "identity");  // a load generator measures inference
  if (!shared->token.empty()) request.set(http::field::authorization, "Bearer " + shared->token);
  for (const auto& [name, value] : call.headers) request.set(name, value);
  if (call.post) {
    request.set(http::field::content_type, call.content_type);
    if (call.body != nullptr) {
      request.body() = beast::span<const char>(call.body->data(), call.body->size());
    }
    request.content_length(call.body != nullptr ? call.body->size() : 0);
  }
  request.keep_alive(true);
  beast::error_code ec =
      RunOp(io, [&](auto handler) { http::async_write(stream, request, std::move(handler)); });
  if (ec) return Failure(ec, "sending to");

  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  ec = RunOp(io, [&](auto handler) {
    http::async_read_header(stream, buffer, parser, std::move(handler));
  });
  if (ec) return Failure(ec, "reading the answer from");
  HttpAnswer answer;
  answer.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    answer.headers.emplace_back(View(field.name_string()), View(field.value()));
  }
  const bool keep_alive = parser.get().keep_alive();
  if (parser.is_done()) {
    // No body.
  } else if (parser.chunked() || !parser.content_length().has_value()) {
    ec = RunOp(io,
               [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); });
    if (ec) return Failure(ec, "reading the answer from");
    answer.body = std::move(parser.get().body());
  } else {
    // The body straight into the answer: what came with the header, then
    // the rest in as few reads as the kernel allows.
    const uint64_t length = *parser.content_length();
    answer.body.resize(length);
    const size_t buffered = std::min<uint64_t>(buffer.size(), length);
    net::buffer_copy(net::buffer(answer.body.data(), buffered), buffer.data());
    buffer.consume(buffered);
    if (buffered < length) {
      ec = RunOp(io, [&](auto handler) {
        net::async_read(stream, net::buffer(answer.body.data() + buffered, length - buffered),
                        std::move(handler));
      });
      if (ec) return Failure(ec, "reading the answer from");
    }
  }
  if (!keep_alive) Reset();
  return answer;
}

HttpConnection::HttpConnection(std::shared_ptr<const Shared> shared)
    : io_(std::make_unique<Io>(std::move(shared))) {}

HttpConnection::~HttpConnection() = default;

absl::StatusOr<HttpAnswer> HttpConnection::Exchange(const HttpCall& call, absl::Time deadline) {
  Io& io = *io_;
  if (io.stopped.load()) return absl::CancelledError("the client is being destroyed");
  const Clock::time_point expiry =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(
                         std::max(deadline - absl::Now(), absl::ZeroDuration())));
  if (!io.plain.has_value() && !io.secure.has_value()) {
    if (absl::Status connected = io.Connect(expiry); !connected.ok()) {
      io.Reset();
      return connected;
    }
  }
  absl::StatusOr<HttpAnswer> answer = io.secure.has_value() ? io.Exchange(*io.secure, call, expiry)
                                                            : io.Exchange(*io.plain, call, expiry);
  if (!answer.ok()) io.Reset();
  return answer;
}

void HttpConnection::Stop() {
  Io& io = *io_;
  io.stopped.store(true);
  // Runs on the exchange's thread (now, or at its next run): closing the
  // socket ends its pending operation.
  net::post(io.io, [&io] {
    beast::error_code ignored;
    if (io.secure.has_value()) io.secure->next_layer().socket().close(ignored);
    if (io.plain.has_value()) io.plain->socket().close(ignored);
  });
}

HttpConnector::~HttpConnector() = default;

const std::string& HttpConnector::address() const { return shared_->address; }

absl::StatusOr<std::unique_ptr<HttpConnector>> HttpConnector::Create(const std::string& address,
                                                                     const ClientOptions& options) {
  std::unique_ptr<HttpConnector> connector(new HttpConnector());
  auto shared = std::make_shared<HttpConnection::Shared>();
  shared->address = address;
  int port = 0;
  if (absl::Status s = SplitAddress(address, &shared->host, &port); !s.ok()) return s;
  shared->port = std::to_string(port);
  shared->host_header = absl::StrContains(shared->host, ':')
                            ? absl::StrCat("[", shared->host, "]:", port)
                            : absl::StrCat(shared->host, ":", port);
  shared->token = options.token;
  if (options.use_tls) {
    ssl::context& tls = shared->tls.emplace(ssl::context::tls_client);
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    tls.set_verify_mode(ssl::verify_peer);
    beast::error_code ec;
    if (options.root_certs_pem.empty()) {
      tls.set_default_verify_paths(ec);
    } else {
      tls.add_certificate_authority(net::buffer(options.root_certs_pem), ec);
      if (ec) return absl::InvalidArgumentError("the TLS root certificates are not PEM");
    }
    if (!options.client_cert_pem.empty() || !options.client_key_pem.empty()) {
      tls.use_certificate_chain(net::buffer(options.client_cert_pem), ec);
      if (!ec) tls.use_private_key(net::buffer(options.client_key_pem), ssl::context::pem, ec);
      if (ec) return absl::InvalidArgumentError("the TLS client certificate or key is not PEM");
    }
    shared->server_name = shared->host;
    if (!options.tls_server_name.empty()) {
      shared->server_name = options.tls_server_name;
      absl::StatusOr<std::string> numeric = NumericHost(shared->host);
      if (!numeric.ok()) return numeric.status();
      shared->host = *std::move(numeric);
    }
  }
  connector->shared_ = std::move(shared);
  return connector;
}

std::unique_ptr<HttpConnection> HttpConnector::Connect() const {
  return std::make_unique<HttpConnection>(shared_);
}

}  // namespace sepconv::client::internal
