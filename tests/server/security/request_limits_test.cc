// Unit tests of server/core/request_limits.h.

#include "server/core/request_limits.h"

#include "gtest/gtest.h"

namespace sepconv {
namespace {

TEST(RequestLimitsTest, WithinLimitsIsOk) {
  RequestLimits limits;
  limits.max_elements = 32 * 64 * 64;
  limits.max_spatial_size = 64;
  limits.max_batch = 1;
  EXPECT_TRUE(CheckRequestLimits(limits, {1, 32, 64, 64}, {1, 32, 64, 64}).ok());
}

TEST(RequestLimitsTest, EachLimitRefusesWithResourceExhaustedNamingItsFlag) {
  RequestLimits limits;
  limits.max_elements = 1000;
  limits.max_spatial_size = 16;
  limits.max_batch = 2;
  struct Case {
    Dims4 in, out;
    const char* flag;
  };
  for (const Case& c : {Case{{3, 1, 2, 2}, {3, 1, 2, 2}, "--max_batch_per_request"},
                        Case{{1, 1, 17, 2}, {1, 1, 17, 2}, "--max_spatial_size"},
                        Case{{1, 1, 2, 17}, {1, 1, 2, 17}, "--max_spatial_size"},
                        Case{{2, 32, 4, 4}, {2, 8, 4, 4}, "--max_elements_per_request"},
                        Case{{1, 8, 8, 8}, {1, 64, 8, 8}, "--max_elements_per_request"}}) {
    absl::Status status = CheckRequestLimits(limits, c.in, c.out);
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << c.flag;
    EXPECT_NE(status.message().find(c.flag), std::string::npos) << status;
  }
}

TEST(RequestLimitsTest, ZeroMeansNoLimitAndHugeShapesDoNotOverflow) {
  RequestLimits none{0, 0, 0};
  EXPECT_TRUE(CheckRequestLimits(none, {1 << 20, 1 << 20, 1 << 20, 1 << 20}, {1, 1, 1, 1}).ok());
  RequestLimits some;
  EXPECT_EQ(CheckRequestLimits(some, {1, 32, 1, 1}, {int64_t{1} << 40, 1 << 20, 64, 64}).code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace sepconv
