#ifndef SEPCONV_TESTS_CLIENT_CLIENT_TEST_UTIL_H_
#define SEPCONV_TESTS_CLIENT_CLIENT_TEST_UTIL_H_

// What the client's tests against a real or a fake server share: a fixture
// that holds a gRPC Client to the suite's shared server, one InferAsync call
// waited for, and bit-for-bit equality of two tensors. Header-only; for targets that link
// sepconv_client.

#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_server.h"

namespace sepconv::testing {

// A SharedServerTest (shared_server.h) whose every test starts with client_,
// a gRPC Client to the suite's server made with Suite::TestClientOptions().
// Use as `class FooTest : public SharedServerClientTest<FooTest>`; FooTest
// may define its own static TestClientOptions(). Not thread-safe.
template <typename Suite>
class SharedServerClientTest : public SharedServerTest<Suite> {
 public:
  static client::ClientOptions TestClientOptions() { return {}; }

 protected:
  void SetUp() override {
    SharedServerTest<Suite>::SetUp();
    if (this->HasFatalFailure()) return;
    absl::StatusOr<std::unique_ptr<client::Client>> c =
        client::Client::Create(this->server_->target(), Suite::TestClientOptions());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *std::move(c);
  }

  std::unique_ptr<client::Client> client_;
};

// Sends `request` with client.InferAsync (`deadline` as InferAsync takes it)
// and waits up to 60 s for its done: the result, or nullopt when done did not
// run by then. The callback owns what it writes, so a late one is harmless.
inline std::optional<client::AsyncInferResult> InferAsyncAndWait(
    client::Client& client, std::shared_ptr<const client::PreparedRequest> request,
    absl::Duration deadline) {
  struct Call {
    absl::Notification done;
    client::AsyncInferResult result;
  };
  auto call = std::make_shared<Call>();
  client.InferAsync(std::move(request), deadline, [call](client::AsyncInferResult result) {
    call->result = std::move(result);
    call->done.Notify();
  });
  if (!call->done.WaitForNotificationWithTimeout(absl::Seconds(60))) return std::nullopt;
  return std::move(call->result);
}

// Bit-for-bit equality of two tensors, shape and data.
inline void ExpectIdentical(const client::Tensor& got, const client::Tensor& want) {
  EXPECT_EQ(got.shape, want.shape);
  ASSERT_EQ(got.data.size(), want.data.size());
  EXPECT_EQ(std::memcmp(got.data.data(), want.data.data(), want.data.size() * sizeof(float)), 0);
}

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_CLIENT_CLIENT_TEST_UTIL_H_
