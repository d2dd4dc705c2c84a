#include "client/metrics_scrape.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/bench.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/free_port.h"

namespace sepconv::client {
namespace {

using ::testing::HasSubstr;

constexpr char kExposition[] = R"(# HELP sepconv_inference_requests_total Requests.
# TYPE sepconv_inference_requests_total counter
sepconv_inference_requests_total{model="sepconv",status="ok",version="1"} 10
sepconv_inference_requests_total{model="sepconv",status="NOT_FOUND",version="1"} 2
sepconv_inference_requests_total{model="sepconv",status="ok",version="2"} 100
sepconv_inference_requests_total{model="other",status="ok",version="1"} 1000
sepconv_inference_samples_total{model="sepconv",version="1"} 40
sepconv_inference_executions_total{model="sepconv",version="1"} 5
sepconv_queue_duration_seconds_bucket{model="sepconv",version="1",le="0.001"} 3
sepconv_queue_duration_seconds_sum{model="sepconv",version="1"} 0.5
sepconv_queue_duration_seconds_count{model="sepconv",version="1"} 10
sepconv_compute_duration_seconds_sum{model="sepconv",version="1"} 0.25 1700000000000
sepconv_compute_duration_seconds_count{model="sepconv",version="1"} 5
sepconv_model_info{model="sepconv",version="1",weird="a \"quoted\", value"} 1
process_cpu_seconds_total 3.5
)";

TEST(ParseCountersTest, SumsTheModelsSeriesAcrossStatuses) {
  absl::StatusOr<ServerCounters> c = ParseCounters(kExposition, "sepconv", "1");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->found);
  EXPECT_EQ(c->requests, 12);
  EXPECT_EQ(c->samples, 40);
  EXPECT_EQ(c->executions, 5);
  EXPECT_DOUBLE_EQ(c->queue_sum, 0.5);
  EXPECT_EQ(c->queue_count, 10);
  EXPECT_DOUBLE_EQ(c->compute_sum, 0.25);
  EXPECT_EQ(c->compute_count, 5);
}

TEST(ParseCountersTest, EmptyVersionMeansEveryVersion) {
  absl::StatusOr<ServerCounters> c = ParseCounters(kExposition, "sepconv", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->requests, 112);
}

TEST(ParseCountersTest, UnknownModelIsNotFound) {
  absl::StatusOr<ServerCounters> c = ParseCounters(kExposition, "nope", "");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->found);
  EXPECT_EQ(c->requests, 0);
}

TEST(ParseCountersTest, MalformedLinesAreErrors) {
  EXPECT_FALSE(ParseCounters("sepconv_inference_requests_total{model=\"a\" 1\n", "a", "").ok());
  EXPECT_FALSE(ParseCounters("sepconv_inference_requests_total{model=\"a\"} x\n", "a", "").ok());
}

// Serves one canned HTTP response on 127.0.0.1, or accepts and stays silent.
class OneShotHttpServer {
 public:
  explicit OneShotHttpServer(std::string response, bool silent = false) {
    absl::StatusOr<std::unique_ptr<testing::LoopbackListener>> listener =
        testing::LoopbackListener::Open(1);
    EXPECT_TRUE(listener.ok()) << listener.status();
    if (!listener.ok()) return;
    listener_ = *std::move(listener);
    thread_ = std::thread([this, response, silent] {
      const int conn = accept(listener_->fd(), nullptr, nullptr);
      if (conn < 0) return;
      char buffer[4096];
      std::string request;
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = read(conn, buffer, sizeof(buffer));
        if (n <= 0) break;
        request.append(buffer, n);
      }
      request_ = request;
      if (silent) {
        absl::SleepFor(absl::Milliseconds(1500));
      } else {
        EXPECT_EQ(write(conn, response.data(), response.size()),
                  static_cast<ssize_t>(response.size()));
      }
      close(conn);
    });
  }
  ~OneShotHttpServer() {
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return listener_ == nullptr ? 0 : listener_->port(); }
  const std::string& request() const { return request_; }

 private:
  std::unique_ptr<testing::LoopbackListener> listener_;
  std::string request_;
  std::thread thread_;
};

TEST(HttpGetTest, ReadsTheBodyOfA200) {
  std::string body;
  {
    OneShotHttpServer server("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\nworld\n");
    absl::StatusOr<std::string> got =
        HttpGet(absl::StrCat("http://127.0.0.1:", server.port(), "/metrics"), absl::Seconds(5));
    ASSERT_TRUE(got.ok()) << got.status();
    body = *got;
  }
  EXPECT_EQ(body, "hello\nworld\n");
}

TEST(HttpGetTest, Non200IsAnError) {
  OneShotHttpServer server("HTTP/1.0 404 Not Found\r\n\r\nnope");
  absl::StatusOr<std::string> got =
      HttpGet(absl::StrCat("http://127.0.0.1:", server.port(), "/x"), absl::Seconds(5));
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("404"));
}

TEST(HttpGetTest, SilentServerTimesOutInBoundedTime) {
  OneShotHttpServer server("", /*silent=*/true);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> got = HttpGet(
      absl::StrCat("http://127.0.0.1:", server.port(), "/metrics"), absl::Milliseconds(300));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(HttpGetTest, RefusesNonHttpUrls) {
  absl::StatusOr<std::string> got = HttpGet("https://localhost:8002/metrics", absl::Seconds(1));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("http://"));
}

TEST(PercentileTest, NearestRank) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(Percentile(v, 50), 50);
  EXPECT_EQ(Percentile(v, 99), 99);
  EXPECT_EQ(Percentile(v, 100), 100);
  EXPECT_EQ(Percentile(v, 0), 1);
  EXPECT_EQ(Percentile({7}, 90), 7);
  EXPECT_EQ(Percentile({}, 50), 0);
}

}  // namespace
}  // namespace sepconv::client
