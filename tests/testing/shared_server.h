#ifndef SEPCONV_TESTS_TESTING_SHARED_SERVER_H_
#define SEPCONV_TESTS_TESTING_SHARED_SERVER_H_

// A gtest fixture whose suite shares one real sepconv-server: the binary
// $SEPCONV_SERVER_BIN started by ServerProcess (server_process.h) before the
// suite's first test and stopped after its last; a test fails at SetUp when
// it did not come up. Use as `class FooTest : public
// SharedServerTest<FooTest>`; FooTest may define its own static
// ServerFlags() and ProbeCredentials() (called when the suite starts) and
// SetUpTestSuite() (calling this one). Not thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "tests/testing/child_process.h"
#include "tests/testing/server_process.h"

namespace sepconv::testing {

template <typename Suite>
class SharedServerTest : public ::testing::Test {
 public:
  // Flags after ServerProcess's own.
  static std::vector<std::string> ServerFlags() { return {}; }
  // How the readiness probe connects (null: plaintext).
  static std::shared_ptr<grpc::ChannelCredentials> ProbeCredentials() { return nullptr; }

  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<ServerProcess>> started = ServerProcess::Start(
        RequiredEnv("SEPCONV_SERVER_BIN"), Suite::ServerFlags(), Suite::ProbeCredentials());
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = started->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

 protected:
  void SetUp() override { ASSERT_NE(server_, nullptr) << "the suite's server did not start"; }

  // Owned; null outside the suite or when it did not start.
  inline static ServerProcess* server_ = nullptr;
};

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_SHARED_SERVER_H_
