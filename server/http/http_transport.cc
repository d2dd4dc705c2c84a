#include "server/http/http_transport.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "server/http/compression.h"

namespace sepconv {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

constexpr auto kWait = std::chrono::seconds(60);  // for a request, a body, a write
constexpr uint32_t kHeaderLimit = 16 << 10;
// Spare capacity after every body, for parsers that read past the end of
// what they parse (simdjson reads up to 64 bytes past a JSON document).
constexpr size_t kBodySlack = 64;
// A body over the limit but at most this many times it is read and dropped
// before the 413, so that a client that sends it whole reads the answer.
constexpr uint64_t kDrainFactor = 4;

const std::string& EmptyString() {
  static const std::string* empty = new std::string();
  return *empty;
}

int FromHex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The target's path, without its query, %XX decoded (a malformed escape is
// kept as it is).
std::string DecodedPath(absl::string_view target) {
  target = target.substr(0, target.find('?'));
  std::string path;
  path.reserve(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == '%' && i + 2 < target.size() && FromHex(target[i + 1]) >= 0 &&
        FromHex(target[i + 2]) >= 0) {
      path.push_back(static_cast<char>(FromHex(target[i + 1]) * 16 + FromHex(target[i + 2])));
      i += 2;
    } else {
      path.push_back(target[i]);
    }
  }
  return path;
}

// The blanks before a body whose binary tensor data follows a JSON header of
// the length the request names.
size_t PadFor(absl::string_view header_length) {
  uint64_t length = 0;
  if (header_length.empty() || !absl::SimpleAtoi(header_length, &length)) return 0;
  return (4 - length % 4) % 4;
}

absl::string_view View(beast::string_view s) { return absl::string_view(s.data(), s.size()); }

// The error codes that end a connection quietly: the client went away or
// was idle too long, or the server is closing it.
bool QuietEnd(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::operation_aborted || ec == beast::error::timeout ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == ssl::error::stream_truncated || ec == net::error::bad_descriptor;
}

}  // namespace

const std::string& HttpRequest::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return EmptyString();
}

bool HttpRequest::HasHeader(absl::string_view name) const {
  return std::any_of(headers.begin(), headers.end(), [name](const auto& header) {
    return absl::EqualsIgnoreCase(header.first, name);
  });
}

struct HttpResponder::State {
  // Takes the answer to the connection's strand.
  std::function<void(std::function<HttpResponse()>)> deliver;
  std::atomic<bool> answered{false};
  absl::Mutex mu;
  std::function<void()> on_hang_up ABSL_GUARDED_BY(mu);
  bool hung_up ABSL_GUARDED_BY(mu) = false;

  void HangUp() {
    std::function<void()> run;
    {
      absl::MutexLock lock(&mu);
      if (hung_up) return;
      hung_up = true;
      run = std::move(on_hang_up);
    }
    if (run) run();
  }
};

void HttpResponder::Respond(std::function<HttpResponse()> make) const {
  if (state_->answered.exchange(true)) return;
  std::function<void(std::function<HttpResponse()>)> deliver = std::move(state_->deliver);
  deliver(std::move(make));
}

void HttpResponder::Respond(HttpResponse response) const {
  Respond([answer = std::make_shared<HttpResponse>(std::move(response))] {
    return std::move(*answer);
  });
}

void HttpResponder::OnHangUp(std::function<void()> on_hang_up) const {
  bool hung_up = false;
  {
    absl::MutexLock lock(&state_->mu);
    hung_up = state_->hung_up;
    if (!hung_up) state_->on_hang_up = std::move(on_hang_up);
  }
  if (hung_up) on_hang_up();
}

void HttpResponse::SetHeader(std::string name, std::string value) {
  for (auto& header : headers) {
    if (absl::EqualsIgnoreCase(header.first, name)) {
      header.second = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

// What the transport's threads share; sessions hold a reference to it (it
// outlives them: Shutdown joins the threads that run them), and an answer
// being delivered from another thread a shared one (see Connection::Handle).
class HttpTransport::Impl : public std::enable_shared_from_this<HttpTransport::Impl> {
 public:
  // A connection, as Shutdown sees it.
  class Session {
   public:
    virtual ~Session() = default;
    // Closes the connection if it waits for a request; a request being
    // handled answers first. Any thread.
    virtual void Stop() = 0;
  };

  Impl(const HttpTransportOptions& options, Handler handler, ErrorBody error_body)
      : options_(options),
        handler_(std::move(handler)),
        error_body_(std::move(error_body)),
        acceptor_(net::make_strand(io_)),
        retry_(acceptor_.get_executor()) {}

  absl::Status Setup();
  void Run();
  void Shutdown();

  int port() const { return port_; }
  const HttpTransportOptions& options() const { return options_; }
  const Handler& handler() const { return handler_; }
  std::string ErrorJson(absl::string_view message) const { return error_body_(message); }
  bool stopping() const { return stopping_flag_.load(std::memory_order_acquire); }
  // Counts `session` in; false once shutting down (then it must close).
  bool Register(const std::shared_ptr<Session>& session);

 private:
  void Accept();
  template <class Stream>
  void StartSession(tcp::socket socket);

  const HttpTransportOptions options_;
  const Handler handler_;
  const ErrorBody error_body_;
  net::io_context io_;
  std::optional<ssl::context> tls_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;  // accept again after a failure (no descriptor left)
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::once_flag shutdown_;
  int port_ = 0;
  std::atomic<bool> stopping_flag_{false};
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::weak_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
};

namespace {

using Impl = HttpTransport::Impl;
using SslStream = beast::ssl_stream<beast::tcp_stream>;

beast::tcp_stream& Lowest(beast::tcp_stream& stream) { return stream; }
beast::tcp_stream& Lowest(SslStream& stream) { return stream.next_layer(); }

// One connection: reads a request, has it handled, writes the answer, again
// while the connection is kept alive. Every step runs on the connection's
// strand.
template <class Stream>
class Connection : public Impl::Session, public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(Impl& transport, Stream stream) : transport_(transport), stream_(std::move(stream)) {}

  // From any thread: starts on the connection's strand.
  void Start() {
    net::dispatch(Lowest(stream_).get_executor(),
                  [self = this->shared_from_this()] { self->Begin(); });
  }

  void Stop() override {
    net::post(Lowest(stream_).get_executor(), [self = this->shared_from_this()] {
      if (!self->handling_) self->Close();
    });
  }

 private:
  void Begin() {
    if constexpr (std::is_same_v<Stream, SslStream>) {
      Lowest(stream_).expires_after(kWait);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close();
                                self->ReadHeader();
                              });
    } else {
      ReadHeader();
    }
  }

  void ReadHeader() {
    handling_ = false;
    if (transport_.stopping()) return Close();
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    // Checked by ReadBody. (Not boost::none: Beast 1.74 then refuses every
    // Content-Length, comparing it with an empty optional.)
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    Lowest(stream_).expires_after(kWait);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) {
      if (QuietEnd(ec)) return Close();
      if (ec == http::error::header_limit) {
        return ReplyError(431, "the request's header is larger than 16 KiB", false);
      }
      return ReplyError(400, absl::StrCat("the request could not be parsed: ", ec.message()),
                        false);
    }
    const auto& header = parser_->get();
    request_ = HttpRequest();
    head_ = header.method() == http::verb::head;
    request_.method = head_ ? "GET" : std::string(View(header.method_string()));
    request_.path = DecodedPath(View(header.target()));
    for (const auto& field : header) {
      request_.headers.emplace_back(View(field.name_string()), View(field.value()));
    }
    request_.pad = PadFor(request_.Header("Inference-Header-Content-Length"));
    accept_encoding_ = request_.Header("Accept-Encoding");
    tcp::socket& socket = Lowest(stream_).socket();
    beast::error_code ignored;
    const tcp::endpoint remote = socket.remote_endpoint(ignored);
    request_.remote_addr = remote.address().to_string();
    request_.remote_port = remote.port();
    keep_alive_ = header.keep_alive();
    version_ = header.version();
    if (parser_->is_done()) {
      request_.body.assign(request_.pad, ' ');
      return Handle();
    }
    if (absl::EqualsIgnoreCase(View(header[http::field::expect]), "100-continue")) {
      continue_.emplace(http::status::continue_, version_);
      Lowest(stream_).expires_after(kWait);
      return http::async_write(stream_, *continue_,
                               [self = this->shared_from_this()](beast::error_code ec, size_t) {
                                 self->continue_.reset();
                                 if (ec) return self->Close();
                                 self->ReadBody();
                               });
    }
    ReadBody();
  }

  void ReadBody() {
    const uint64_t limit = transport_.options().max_body_bytes;
    if (parser_->chunked()) {
      parser_->body_limit(limit);
      Lowest(stream_).expires_after(kWait);
      return http::async_read(stream_, buffer_, *parser_,
                              [self = this->shared_from_this()](beast::error_code ec, size_t) {
                                self->OnChunkedBody(ec);
                              });
    }
    const uint64_t length = parser_->content_length().value_or(0);
    if (length > limit) {
      if (length / kDrainFactor > limit) return ReplyError(413, kTooLarge, false);
      return Drain(length);
    }
    std::string& body = request_.body;
    body.reserve(request_.pad + length + kBodySlack);
    body.assign(request_.pad, ' ');
    body.resize(request_.pad + length);
    char* to = body.data() + request_.pad;
    const size_t buffered = std::min<uint64_t>(buffer_.size(), length);
    net::buffer_copy(net::buffer(to, buffered), buffer_.data());
    buffer_.consume(buffered);
    if (buffered == length) return OnBody();
    Lowest(stream_).expires_after(kWait);
    // The rest straight from the socket into the body, in as few reads as
    // the kernel allows.
    net::async_read(stream_, net::buffer(to + buffered, length - buffered),
                    [self = this->shared_from_this()](beast::error_code ec, size_t) {
                      if (ec) return self->Close();
                      self->OnBody();
                    });
  }

  void OnChunkedBody(beast::error_code ec) {
    if (ec == http::error::body_limit) return ReplyError(413, kTooLarge, false);
    if (ec) {
      if (QuietEnd(ec)) return Close();
      return ReplyError(400, absl::StrCat("the request body could not be read: ", ec.message()),
                        false);
    }
    std::string& chunked = parser_->get().body();
    request_.body.reserve(request_.pad + chunked.size() + kBodySlack);
    request_.body.assign(request_.pad, ' ');
    request_.body.append(chunked);
    OnBody();
  }

  // Reads and drops `left` bytes of a body that is too large, then answers
  // 413 on a connection still usable.
  void Drain(uint64_t left) {
    const size_t buffered = std::min<uint64_t>(buffer_.size(), left);
    buffer_.consume(buffered);
    left -= buffered;
    if (left == 0) return ReplyError(413, kTooLarge, keep_alive_);
    if (!scratch_) scratch_ = std::make_unique<char[]>(kScratch);
    Lowest(stream_).expires_after(kWait);
    stream_.async_read_some(
        net::buffer(scratch_.get(), std::min<uint64_t>(left, kScratch)),
        [self = this->shared_from_this(), left](beast::error_code ec, size_t read) {
          if (ec) return self->Close();
          self->Drain(left - read);
        });
  }

  void OnBody() {
    const std::string& encoding = request_.Header("Content-Encoding");
    if (!encoding.empty() && !absl::EqualsIgnoreCase(encoding, "identity")) {
      absl::StatusOr<std::string> inflated =
          Decompress(request_.Body(), encoding, transport_.options().max_body_bytes);
      if (!inflated.ok()) {
        const absl::StatusCode code = inflated.status().code();
        return ReplyError(code == absl::StatusCode::kResourceExhausted ? 413
                          : code == absl::StatusCode::kUnimplemented   ? 415
                                                                       : 400,
                          inflated.status().message(), keep_alive_);
      }
      request_.body.reserve(request_.pad + inflated->size() + kBodySlack);
      request_.body.resize(request_.pad);
      request_.body.append(*inflated);
    }
    Handle();
  }

  void Handle() {
    handling_ = true;
    // Keeps the transport's threads running until the answer is written,
    // though no I/O of this connection is pending meanwhile (Shutdown).
    answer_pending_.emplace(Lowest(stream_).get_executor());
    auto state = std::make_shared<HttpResponder::State>();
    // The thread that responds (an engine thread) may still hold this
    // closure, and the executor it posted through, after the answer is out
    // and Shutdown has joined the transport's threads: `transport` keeps the
    // io_context they refer to alive until then. The connection's reference
    // moves into the posted answer, so that the connection never ends after
    // its transport (a closure's captures end in no set order).
    state->deliver = [self = this->shared_from_this(), transport = transport_.shared_from_this()](
                         std::function<HttpResponse()> make) mutable {
      const auto executor = Lowest(self->stream_).get_executor();
      net::post(executor,
                [self = std::move(self), make = std::move(make)] { self->Answer(make()); });
    };
    responder_ = state;
    transport_.handler()(std::move(request_), HttpResponder(state));
    request_ = HttpRequest();
    if (!state->answered.load()) WatchPeer();
  }

  // While the request is handled, waits for the client to hang up: readable
  // with nothing to read. Data (a pipelined request) ends the watch.
  void WatchPeer() {
    watching_ = true;
    Lowest(stream_).socket().async_wait(
        tcp::socket::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
          if (ec || !self->watching_) return;  // answered meanwhile
          char byte;
          const ssize_t peeked = recv(Lowest(self->stream_).socket().native_handle(), &byte, 1,
                                      MSG_PEEK | MSG_DONTWAIT);
          if (peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return self->WatchPeer();  // woken with nothing there (Asio may): again
          }
          self->watching_ = false;
          if (peeked <= 0 && self->responder_ != nullptr) self->responder_->HangUp();
        });
  }

  void Answer(HttpResponse response) {
    responder_.reset();
    answer_pending_.reset();  // the write below is work of its own
    if (watching_) {
      watching_ = false;
      beast::error_code ignored;
      Lowest(stream_).socket().cancel(ignored);
    }
    Compress(response);
    Write(std::move(response), keep_alive_);
  }

  // Compresses the answer as the request's Accept-Encoding asks.
  void Compress(HttpResponse& response) {
    if (response.body.empty()) return;
    for (const auto& [name, value] : response.headers) {
      if (absl::EqualsIgnoreCase(name, "Content-Encoding")) return;
    }
    std::optional<Encoding> encoding = ChooseEncoding(accept_encoding_);
    if (!encoding.has_value()) return;
    absl::StatusOr<std::string> compressed = sepconv::Compress(response.body, *encoding);
    if (!compressed.ok()) return;  // the answer goes out uncompressed
    response.body = *std::move(compressed);
    response.SetHeader("Content-Encoding", EncodingName(*encoding));
    response.SetHeader("Vary", "Accept-Encoding");
  }

  void ReplyError(int status, absl::string_view message, bool keep_alive) {
    handling_ = true;
    HttpResponse response;
    response.status = status;
    response.SetContent(transport_.ErrorJson(message), "application/json");
    Write(std::move(response), keep_alive);
  }

  void Write(HttpResponse response, bool keep_alive) {
    keep_alive = keep_alive && !transport_.stopping();
    answer_.emplace();
    auto& answer = *answer_;
    answer.version(version_);
    answer.result(static_cast<unsigned>(response.status));
    for (auto& [name, value] : response.headers) answer.set(name, value);
    answer.keep_alive(keep_alive);
    const size_t size = response.body.size();
    if (!head_) answer.body() = std::move(response.body);
    answer.content_length(size);
    Lowest(stream_).expires_after(kWait);
    http::async_write(stream_, answer,
                      [self = this->shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        self->answer_.reset();
                        if (ec) return self->Close();
                        if (!keep_alive) return self->Linger();
                        self->ReadHeader();
                      });
  }

  // Closes after the answer without cutting off a client that is still
  // sending (a body refused before its end): our side is shut, and what the
  // client still sends is read and dropped, for at most 2 s and 64 MiB,
  // so that its kernel does not reset the connection before it has read
  // the answer.
  void Linger() {
    beast::error_code ignored;
    Lowest(stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (!scratch_) scratch_ = std::make_unique<char[]>(kScratch);
    Lowest(stream_).expires_after(std::chrono::seconds(2));
    DropUntilEnd(uint64_t{64} << 20);
  }
  void DropUntilEnd(uint64_t left) {
    if (left == 0 || transport_.stopping()) return Close();
    Lowest(stream_).async_read_some(
        net::buffer(scratch_.get(), kScratch),
        [self = this->shared_from_this(), left](beast::error_code ec, size_t read) {
          if (ec) return self->Close();
          self->DropUntilEnd(left - std::min<uint64_t>(left, read));
        });
  }

  void Close() {
    beast::error_code ignored;
    tcp::socket& socket = Lowest(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  static constexpr char kTooLarge[] = "the request body is larger than the server accepts";
  static constexpr size_t kScratch = 64 << 10;

  Impl& transport_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  std::string accept_encoding_;
  bool head_ = false;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  bool handling_ = false;  // from the handler's start until the answer is out
  bool watching_ = false;  // for a hang-up (WatchPeer)
  std::shared_ptr<HttpResponder::State> responder_;  // until the answer
  std::optional<net::executor_work_guard<net::any_io_executor>> answer_pending_;
  std::optional<http::response<http::empty_body>> continue_;
  std::optional<http::response<http::string_body>> answer_;
  std::unique_ptr<char[]> scratch_;
};

}  // namespace

absl::Status HttpTransport::Impl::Setup() {
  if (options_.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP threads must be >= 1, not ", options_.threads));
  }
  beast::error_code ec;
  if (!options_.tls_cert.empty()) {
    tls_.emplace(ssl::context::tls_server);
    tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    tls_->use_certificate_chain(net::buffer(options_.tls_cert), ec);
    if (!ec) tls_->use_private_key(net::buffer(options_.tls_key), ssl::context::pem, ec);
    if (!ec && !options_.tls_client_ca.empty()) {
      tls_->add_certificate_authority(net::buffer(options_.tls_client_ca), ec);
      if (!ec) tls_->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    }
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("OpenSSL refused the --tls_cert / --tls_key files: ", ec.message()));
    }
  }
  const std::string where = absl::StrCat(options_.address, ":", options_.port);
  tcp::resolver resolver(io_);
  const auto endpoints =
      resolver.resolve(options_.address, std::to_string(options_.port),
                       tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return absl::UnavailableError(
        absl::StrCat("cannot bind HTTP to ", where, ": ", ec ? ec.message() : "no such address"));
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(absl::StrCat("cannot bind HTTP to ", where, ": ", ec.message()));
  port_ = acceptor_.local_endpoint(ec).port();
  return absl::OkStatus();
}

void HttpTransport::Impl::Run() {
  work_.emplace(io_.get_executor());
  net::post(acceptor_.get_executor(), [this] { Accept(); });
  threads_.reserve(options_.threads);
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { io_.run(); });
}

void HttpTransport::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(io_), [this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open() || stopping()) return;
    if (ec) {  // e.g. out of descriptors: try again shortly, without spinning
      retry_.expires_after(std::chrono::milliseconds(50));
      retry_.async_wait([this](beast::error_code waited) {
        if (!waited && !stopping()) Accept();
      });
      return;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (tls_.has_value()) {
      StartSession<SslStream>(std::move(socket));
    } else {
      StartSession<beast::tcp_stream>(std::move(socket));
    }
    Accept();
  });
}

template <class Stream>
void HttpTransport::Impl::StartSession(tcp::socket socket) {
  std::shared_ptr<Connection<Stream>> connection;
  if constexpr (std::is_same_v<Stream, SslStream>) {
    connection = std::make_shared<Connection<Stream>>(
        *this, SslStream(beast::tcp_stream(std::move(socket)), *tls_));
  } else {
    connection = std::make_shared<Connection<Stream>>(*this, beast::tcp_stream(std::move(socket)));
  }
  if (Register(connection)) connection->Start();
}

bool HttpTransport::Impl::Register(const std::shared_ptr<Session>& session) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(),
                                 [](const std::weak_ptr<Session>& s) { return s.expired(); }),
                  sessions_.end());
  sessions_.push_back(session);
  return true;
}

void HttpTransport::Impl::Shutdown() {
  std::call_once(shutdown_, [this] {
    std::vector<std::weak_ptr<Session>> sessions;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      stopping_flag_.store(true, std::memory_order_release);
      sessions.swap(sessions_);
    }
    net::post(acceptor_.get_executor(), [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      retry_.cancel();
    });
    for (const std::weak_ptr<Session>& weak : sessions) {
      if (std::shared_ptr<Session> session = weak.lock()) session->Stop();
    }
    work_.reset();  // the threads end when the last connection has
    for (std::thread& thread : threads_) thread.join();
  });
}

HttpTransport::HttpTransport(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpTransport::~HttpTransport() { Shutdown(); }

absl::StatusOr<std::unique_ptr<HttpTransport>> HttpTransport::Start(
    const HttpTransportOptions& options, Handler handler, ErrorBody error_body) {
  auto impl = std::make_shared<Impl>(options, std::move(handler), std::move(error_body));
  if (absl::Status status = impl->Setup(); !status.ok()) return status;
  impl->Run();
  return std::unique_ptr<HttpTransport>(new HttpTransport(std::move(impl)));
}

int HttpTransport::port() const { return impl_->port(); }

void HttpTransport::Shutdown() { impl_->Shutdown(); }

}  // namespace sepconv
