// The endpoint serves the registry over real HTTP on loopback.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics.h"
#include "tests/testing/exposition.h"
#include "tests/testing/http_get.h"

namespace sepconv {
namespace {

using testing::Exposition;
using testing::HttpGet;
using testing::HttpResponse;

TEST(MetricsEndpointTest, ServesRecordingsAtSlashMetrics) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::shared_ptr<ModelMetrics> model = metrics->ForModel({"sepconv", "1", 1, 32, 64});
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start("127.0.0.1", 0, metrics->registry());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();
  ASSERT_GT(port, 0);

  model->RequestDone(absl::StatusCode::kOk, absl::Milliseconds(2));
  model->RequestDone(absl::StatusCode::kInvalidArgument, absl::Microseconds(30));
  absl::StatusOr<HttpResponse> response = HttpGet(port, "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  absl::StatusOr<Exposition> e = Exposition::Parse(response->body);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->Value("sepconv_inference_requests_total",
                     {{"model", "sepconv"}, {"version", "1"}, {"status", "ok"}}),
            1);
  EXPECT_EQ(e->Value("sepconv_inference_requests_total",
                     {{"model", "sepconv"}, {"version", "1"}, {"status", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_GT(e->Value("process_open_fds", {}).value_or(0), 0);

  // Recordings show up in the next scrape.
  model->RequestDone(absl::StatusCode::kOk, absl::Milliseconds(2));
  response = HttpGet(port, "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  e = Exposition::Parse(response->body);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->Value("sepconv_inference_requests_total",
                     {{"model", "sepconv"}, {"version", "1"}, {"status", "ok"}}),
            2);

  EXPECT_EQ(HttpGet(port, "/nothing-here")->status, 404);

  // Stopping the endpoint closes the port.
  endpoint->reset();
  EXPECT_FALSE(HttpGet(port, "/metrics", absl::Seconds(1)).ok());
}

TEST(MetricsEndpointTest, PortInUseIsAnError) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  // Hold a listening socket on a free port.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int taken = ntohs(addr.sin_port);

  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start("127.0.0.1", taken, metrics->registry());
  EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kUnavailable) << endpoint.status();
  close(fd);
}

TEST(MetricsEndpointTest, RejectsBadArguments) {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  EXPECT_EQ(MetricsEndpoint::Start("127.0.0.1", -1, metrics->registry()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsEndpoint::Start("127.0.0.1", 70000, metrics->registry()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsEndpoint::Start("127.0.0.1", 0, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sepconv
