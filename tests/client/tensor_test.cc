#include "client/tensor.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sepconv::client {
namespace {

using ::testing::HasSubstr;

TEST(TensorTest, ParseShapeAcceptsPositiveDims) {
  absl::StatusOr<std::vector<int64_t>> s = ParseShape("1, 32,56 ,56");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (std::vector<int64_t>{1, 32, 56, 56}));
}

TEST(TensorTest, ParseShapeRefusesBadDims) {
  for (const char* bad : {"", "1,,2", "1,0,2", "1,-3", "a,b", "1,2.5", "99999999,99999999"}) {
    absl::StatusOr<std::vector<int64_t>> s = ParseShape(bad);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(std::string(ParseShape("1,x").status().message()), HasSubstr("'x'"));
}

TEST(TensorTest, ElementCountDetectsOverflowAndNegatives) {
  EXPECT_EQ(*ElementCount({}), 1);
  EXPECT_EQ(*ElementCount({2, 0, 5}), 0);
  EXPECT_EQ(*ElementCount({2, 3, 4}), 24);
  EXPECT_FALSE(ElementCount({1LL << 40, 1LL << 40}).ok());
  EXPECT_FALSE(ElementCount({2, -1}).ok());
  EXPECT_FALSE(ElementCount({1024, 1024}, 1024 * 1024).ok());  // 4 MiB > 1 MiB
}

TEST(TensorTest, RandomTensorIsSeededAndBounded) {
  absl::StatusOr<Tensor> a = RandomTensor({2, 3, 4}, 7);
  absl::StatusOr<Tensor> b = RandomTensor({2, 3, 4}, 7);
  absl::StatusOr<Tensor> c = RandomTensor({2, 3, 4}, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->data.size(), 24u);
  EXPECT_EQ(a->data, b->data);
  EXPECT_NE(a->data, c->data);
  for (float v : a->data) {
    EXPECT_GE(v, -1.0f);
    EXPECT_LT(v, 1.0f);
  }
}

}  // namespace
}  // namespace sepconv::client
