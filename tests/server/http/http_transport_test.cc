// HttpTransport (server/http/http_transport.h) on its own, over 127.0.0.1
// with raw sockets: keep-alive, pipelining, Expect: 100-continue, chunked
// and compressed bodies, the body limit, HEAD, answers from other threads,
// hang-ups and shutdown. The handler echoes what it was given.

#include "server/http/http_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace sepconv {
namespace {

// One client connection; every read gives up after 30 s (a hang guard).
class RawConnection {
 public:
  explicit RawConnection(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
    timeval timeout{30, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~RawConnection() { close(fd_); }

  bool connected() const { return connected_; }
  void Send(const std::string& bytes) {
    for (size_t sent = 0; sent < bytes.size();) {
      const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "send failed";
      sent += static_cast<size_t>(n);
    }
  }
  // One answer: its head (status line and headers) and its body (by
  // Content-Length; none for HEAD). nullopt when the connection ended first.
  struct Answer {
    std::string head;
    std::string body;
    int status = 0;
  };
  std::optional<Answer> Read(bool head_only = false) {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    Answer answer;
    answer.head = buffer_.substr(0, end + 4);
    buffer_.erase(0, end + 4);
    absl::SimpleAtoi(answer.head.substr(9, 3), &answer.status);
    size_t length = 0;
    const size_t at = answer.head.find("Content-Length: ");
    if (at != std::string::npos) {
      absl::SimpleAtoi(answer.head.substr(at + 16, answer.head.find("\r\n", at) - at - 16),
                       &length);
    }
    if (head_only || answer.status == 100) return answer;
    while (buffer_.size() < length) {
      if (!Fill()) return std::nullopt;
    }
    answer.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return answer;
  }
  // True when the server closed the connection (after what was buffered).
  bool Closed() { return buffer_.empty() && !Fill(); }

 private:
  bool Fill() {
    char chunk[65536];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  const int fd_;
  bool connected_ = false;
  std::string buffer_;
};

std::string Post(const std::string& path, const std::string& body,
                 const std::string& extra_headers = "") {
  return absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: x\r\nContent-Length: ", body.size(),
                      "\r\n", extra_headers, "\r\n", body);
}

std::string Gzip(const std::string& data) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&stream, data.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

constexpr size_t kLimit = 1 << 20;

class HttpTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpTransportOptions options;
    options.address = "127.0.0.1";
    options.max_body_bytes = kLimit;
    auto started = HttpTransport::Start(
        options,
        [this](HttpRequest request, HttpResponder responder) { Handle(request, responder); },
        [](absl::string_view message) { return absl::StrCat("{\"error\":\"", message, "\"}"); });
    ASSERT_TRUE(started.ok()) << started.status();
    transport_ = *std::move(started);
  }
  void TearDown() override {
    if (later_.joinable()) later_.join();
  }

  // /echo: "METHOD PATH pad=N" then the body as received (pad included);
  // /later: the same, answered from another thread; /held: the same, once
  // the test releases it; /hang: answered once the client has hung up.
  void Handle(HttpRequest& request, const HttpResponder& responder) {
    HttpResponse response;
    response.SetContent(
        absl::StrCat(request.method, " ", request.path, " pad=", request.pad, "\n", request.body),
        "text/plain");
    if (request.path == "/later") {
      later_ = std::thread([responder, response]() mutable {
        absl::SleepFor(absl::Milliseconds(20));
        responder.Respond(std::move(response));
      });
      return;
    }
    if (request.path == "/held") {
      held_.Notify();
      later_ = std::thread([this, responder, response]() mutable {
        release_.WaitForNotification();
        responder.Respond(std::move(response));
      });
      return;
    }
    if (request.path == "/hang") {
      responder.OnHangUp([this, responder] {
        hung_up_.Notify();
        responder.Respond(HttpResponse());
      });
      return;
    }
    responder.Respond(std::move(response));
  }

  std::unique_ptr<HttpTransport> transport_;
  std::thread later_;
  absl::Notification hung_up_;
  absl::Notification held_;
  absl::Notification release_;
};

TEST_F(HttpTransportTest, KeepAliveServesManyRequestsOnOneConnection) {
  RawConnection c(transport_->port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 20; ++i) {
    const std::string body(static_cast<size_t>(i) * 10000, 'a' + i % 26);
    c.Send(Post(absl::StrCat("/echo/", i), body));
    std::optional<RawConnection::Answer> answer = c.Read();
    ASSERT_TRUE(answer.has_value()) << "request " << i;
    EXPECT_EQ(answer->status, 200);
    EXPECT_EQ(answer->body, absl::StrCat("POST /echo/", i, " pad=0\n", body));
  }
}

TEST_F(HttpTransportTest, PipelinedRequestsAreAnsweredInOrder) {
  RawConnection c(transport_->port());
  c.Send(Post("/echo/1", "one") + Post("/later", "two") + Post("/echo/3", "three"));
  for (const char* want :
       {"POST /echo/1 pad=0\none", "POST /later pad=0\ntwo", "POST /echo/3 pad=0\nthree"}) {
    std::optional<RawConnection::Answer> answer = c.Read();
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(answer->body, want);
  }
}

TEST_F(HttpTransportTest, ExpectContinueIsAnsweredBeforeTheBody) {
  RawConnection c(transport_->port());
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  std::optional<RawConnection::Answer> go_on = c.Read();
  ASSERT_TRUE(go_on.has_value());
  EXPECT_EQ(go_on->status, 100);
  c.Send("hello");
  std::optional<RawConnection::Answer> answer = c.Read();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->body, "POST /echo pad=0\nhello");
}

TEST_F(HttpTransportTest, ChunkedAndCompressedBodies) {
  RawConnection c(transport_->port());
  c.Send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  std::optional<RawConnection::Answer> chunked = c.Read();
  ASSERT_TRUE(chunked.has_value());
  EXPECT_EQ(chunked->body, "POST /echo pad=0\nhello world");

  const std::string text(300000, 'z');
  c.Send(Post("/echo", Gzip(text), "Content-Encoding: gzip\r\n"));
  std::optional<RawConnection::Answer> inflated = c.Read();
  ASSERT_TRUE(inflated.has_value());
  EXPECT_EQ(inflated->body, "POST /echo pad=0\n" + text);

  c.Send(Post("/echo", "not gzip", "Content-Encoding: gzip\r\n"));
  std::optional<RawConnection::Answer> bad = c.Read();
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400) << bad->body;

  c.Send(Post("/echo", "x", "Content-Encoding: br\r\n"));
  std::optional<RawConnection::Answer> unknown = c.Read();
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->status, 415) << unknown->body;

  // Inflated past the limit.
  c.Send(Post("/echo", Gzip(std::string(kLimit + 1, 'y')), "Content-Encoding: gzip\r\n"));
  std::optional<RawConnection::Answer> bomb = c.Read();
  ASSERT_TRUE(bomb.has_value());
  EXPECT_EQ(bomb->status, 413) << bomb->body;
}

TEST_F(HttpTransportTest, BodyLimit) {
  {
    // Just over: read and dropped, 413, the connection still serves.
    RawConnection c(transport_->port());
    c.Send(Post("/echo", std::string(kLimit + 1, 'b')));
    std::optional<RawConnection::Answer> refused = c.Read();
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->status, 413);
    EXPECT_EQ(refused->body.rfind("{\"error\":", 0), 0u) << refused->body;
    c.Send(Post("/echo", "ok"));
    std::optional<RawConnection::Answer> next = c.Read();
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->body, "POST /echo pad=0\nok");
  }
  {
    // Far over: 413 at once, and the connection closes.
    RawConnection c(transport_->port());
    c.Send(absl::StrCat("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ", kLimit * 100,
                        "\r\n\r\n"));
    std::optional<RawConnection::Answer> refused = c.Read();
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->status, 413);
    EXPECT_TRUE(c.Closed());
  }
  {
    // Chunked past the limit.
    RawConnection c(transport_->port());
    c.Send(absl::StrCat("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                        absl::Hex(kLimit + 1), "\r\n", std::string(kLimit + 1, 'c'),
                        "\r\n0\r\n\r\n"));
    std::optional<RawConnection::Answer> refused = c.Read();
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->status, 413);
  }
}

TEST_F(HttpTransportTest, PadAlignsBinaryDataAfterTheJsonHeader) {
  RawConnection c(transport_->port());
  for (int header_length : {4, 5, 6, 7}) {
    c.Send(Post("/echo", "12345678",
                absl::StrCat("Inference-Header-Content-Length: ", header_length, "\r\n")));
    std::optional<RawConnection::Answer> answer = c.Read();
    ASSERT_TRUE(answer.has_value());
    const int pad = (4 - header_length % 4) % 4;
    EXPECT_EQ(answer->body,
              absl::StrCat("POST /echo pad=", pad, "\n", std::string(pad, ' '), "12345678"));
  }
}

TEST_F(HttpTransportTest, HeadIsGetWithoutTheBodyAndPathsAreDecoded) {
  RawConnection c(transport_->port());
  c.Send("GET /a%20b?query=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::optional<RawConnection::Answer> get = c.Read();
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->body, "GET /a b pad=0\n");
  c.Send("HEAD /a%20b HTTP/1.1\r\nHost: x\r\n\r\n");
  std::optional<RawConnection::Answer> head = c.Read(/*head_only=*/true);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_NE(head->head.find(absl::StrCat("Content-Length: ", get->body.size())), std::string::npos)
      << head->head;
  // Nothing follows the head: the next answer is the next request's.
  c.Send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  std::optional<RawConnection::Answer> next = c.Read();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->body, "GET /next pad=0\n");
}

TEST_F(HttpTransportTest, MalformedRequestIs400AndCloses) {
  RawConnection c(transport_->port());
  c.Send("NOT HTTP AT ALL\r\n\r\n");
  std::optional<RawConnection::Answer> answer = c.Read();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 400);
  EXPECT_EQ(answer->body.rfind("{\"error\":", 0), 0u) << answer->body;
  EXPECT_TRUE(c.Closed());

  RawConnection big(transport_->port());
  big.Send(absl::StrCat("GET / HTTP/1.1\r\nX-Big: ", std::string(20000, 'h'), "\r\n\r\n"));
  std::optional<RawConnection::Answer> too_big = big.Read();
  ASSERT_TRUE(too_big.has_value());
  EXPECT_EQ(too_big->status, 431);
}

TEST_F(HttpTransportTest, HangUpIsReportedToTheHandler) {
  {
    RawConnection c(transport_->port());
    c.Send(Post("/hang", "x"));
    // Closes here, with the request unanswered.
  }
  EXPECT_TRUE(hung_up_.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

TEST_F(HttpTransportTest, ShutdownWritesTheAnswerStillBeingMade) {
  RawConnection c(transport_->port());
  c.Send(Post("/held", "wait for me"));
  ASSERT_TRUE(held_.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // No I/O of that connection is pending while its answer is made: Shutdown
  // must still wait for it.
  std::thread shutdown([this] { transport_->Shutdown(); });
  // Releases the answer once Shutdown is under way (it refuses connections).
  for (int i = 0; i < 30000 && RawConnection(transport_->port()).connected(); ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  release_.Notify();
  std::optional<RawConnection::Answer> answer = c.Read();
  shutdown.join();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->body, "POST /held pad=0\nwait for me");
  EXPECT_TRUE(c.Closed());  // not kept alive past the shutdown
}

TEST_F(HttpTransportTest, ShutdownClosesIdleConnectionsAndRefusesNewOnes) {
  RawConnection idle(transport_->port());
  idle.Send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(idle.Read().has_value());
  transport_->Shutdown();  // returns although `idle` is kept alive
  EXPECT_TRUE(idle.Closed());
  RawConnection refused(transport_->port());
  EXPECT_FALSE(refused.connected());
}

}  // namespace
}  // namespace sepconv
