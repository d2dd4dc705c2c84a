// ClientOptions: the load-balancing policy names and Create's checks of the
// retry options. Spreading calls over replicas is shown by the scale-out
// system test (tests/system/scale_test.py), with real servers.
#include <memory>

#include "client/client.h"
#include "gtest/gtest.h"

namespace sepconv::client {
namespace {

TEST(LbPolicyTest, ParsesGrpcNamesAndBack) {
  for (LbPolicy policy : {LbPolicy::kRoundRobin, LbPolicy::kPickFirst}) {
    absl::StatusOr<LbPolicy> parsed = ParseLbPolicy(LbPolicyName(policy));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, policy);
  }
  EXPECT_EQ(LbPolicyName(LbPolicy::kRoundRobin), "round_robin");
  EXPECT_EQ(LbPolicyName(LbPolicy::kPickFirst), "pick_first");
  EXPECT_EQ(ParseLbPolicy("grpclb").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLbPolicy("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LbPolicyTest, DefaultsSuitAMultiReplicaDeployment) {
  ClientOptions options;
  EXPECT_EQ(options.lb_policy, LbPolicy::kRoundRobin);
  EXPECT_GT(options.max_attempts, 1);
}

TEST(ClientCreateTest, AcceptsEveryTargetFormAndPolicy) {
  for (const char* target :
       {"localhost:1", "dns:///localhost:1", "ipv4:127.0.0.1:1,127.0.0.1:2", "127.0.0.1:1"}) {
    for (LbPolicy policy : {LbPolicy::kRoundRobin, LbPolicy::kPickFirst}) {
      ClientOptions options;
      options.lb_policy = policy;
      EXPECT_TRUE(Client::Create(target, options).ok()) << target;
    }
  }
}

TEST(ClientCreateTest, RejectsZeroAttempts) {
  ClientOptions options;
  options.max_attempts = 0;
  EXPECT_EQ(Client::Create("localhost:1", options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.max_attempts = 1;  // no retries
  EXPECT_TRUE(Client::Create("localhost:1", options).ok());
}

}  // namespace
}  // namespace sepconv::client
