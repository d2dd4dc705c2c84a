// cpu_budget against fake /proc/self/cgroup + /sys/fs/cgroup trees.

#include "server/batching/cpu_budget.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/temp_tree.h"

namespace sepconv {
namespace {

namespace fs = std::filesystem;

class CpuBudgetTest : public ::testing::Test {
 protected:
  void Write(const std::string& relative, const std::string& contents) {
    tree_.Write(relative, contents);
  }

  std::string root() const { return root_.string(); }

  testing::TempTree tree_{"cpu_budget_"};
  const fs::path& root_ = tree_.path();
};

TEST_F(CpuBudgetTest, V2QuotaIsRoundedUp) {
  Write("proc/self/cgroup", "0::/\n");
  Write("sys/fs/cgroup/cpu.max", "150000 100000\n");
  ASSERT_TRUE(CgroupCpuQuota(root()).has_value());
  EXPECT_DOUBLE_EQ(*CgroupCpuQuota(root()), 1.5);
  const CpuBudget budget = ComputeCpuBudget(root());
  EXPECT_EQ(budget.usable, std::min(budget.affinity_cpus, 2));
}

TEST_F(CpuBudgetTest, V2MaxMeansNoLimit) {
  Write("proc/self/cgroup", "0::/\n");
  Write("sys/fs/cgroup/cpu.max", "max 100000\n");
  EXPECT_FALSE(CgroupCpuQuota(root()).has_value());
  const CpuBudget budget = ComputeCpuBudget(root());
  EXPECT_EQ(budget.usable, budget.affinity_cpus);
}

TEST_F(CpuBudgetTest, V2TakesTheTightestQuotaOnThePath) {
  Write("proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  Write("sys/fs/cgroup/kubepods/cpu.max", "800000 100000\n");
  Write("sys/fs/cgroup/kubepods/pod1/cpu.max", "50000 100000\n");
  Write("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  ASSERT_TRUE(CgroupCpuQuota(root()).has_value());
  EXPECT_DOUBLE_EQ(*CgroupCpuQuota(root()), 0.5);
  EXPECT_EQ(ComputeCpuBudget(root()).usable, 1);  // ceil(0.5), never 0
}

TEST_F(CpuBudgetTest, V1CfsQuota) {
  Write("proc/self/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n");
  Write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
  Write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  ASSERT_TRUE(CgroupCpuQuota(root()).has_value());
  EXPECT_DOUBLE_EQ(*CgroupCpuQuota(root()), 3.0);
  const CpuBudget budget = ComputeCpuBudget(root());
  EXPECT_EQ(budget.usable, std::min(budget.affinity_cpus, 3));
}

TEST_F(CpuBudgetTest, V1UnlimitedQuota) {
  Write("proc/self/cgroup", "2:cpuacct:/\n1:cpu:/\n0::/\n");
  Write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
  Write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_FALSE(CgroupCpuQuota(root()).has_value());
}

TEST_F(CpuBudgetTest, V1ContainerSeesItsCgroupAtTheMountRoot) {
  // Without a cgroup namespace the path names the host's cgroup, but only the
  // container's own directory is mounted.
  Write("proc/self/cgroup", "1:cpu:/docker/abc\n");
  Write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "200000\n");
  Write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  ASSERT_TRUE(CgroupCpuQuota(root()).has_value());
  EXPECT_DOUBLE_EQ(*CgroupCpuQuota(root()), 2.0);
}

TEST_F(CpuBudgetTest, NoCgroupFilesMeansNoLimit) {
  EXPECT_FALSE(CgroupCpuQuota(root()).has_value());
  Write("proc/self/cgroup", "0::/\n");
  EXPECT_FALSE(CgroupCpuQuota(root()).has_value());
  const CpuBudget budget = ComputeCpuBudget(root());
  EXPECT_EQ(budget.usable, budget.affinity_cpus);
}

TEST_F(CpuBudgetTest, MalformedFilesAreIgnored) {
  Write("proc/self/cgroup", "garbage\n0::/\n");
  Write("sys/fs/cgroup/cpu.max", "lots 100000\n");
  EXPECT_FALSE(CgroupCpuQuota(root()).has_value());
}

TEST_F(CpuBudgetTest, AffinityMatchesTheKernel) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  EXPECT_EQ(AffinityCpuCount(), CPU_COUNT(&set));
  EXPECT_GE(UsableCpus(), 1);
  EXPECT_LE(UsableCpus(), AffinityCpuCount());
}

TEST(DefaultEngineThreadsTest, SplitsTheCpusAmongTheInstances) {
  EXPECT_EQ(DefaultEngineThreads(1, 1), 1);
  EXPECT_EQ(DefaultEngineThreads(2, 1), 2);
  EXPECT_EQ(DefaultEngineThreads(4, 1), 4);
  EXPECT_EQ(DefaultEngineThreads(16, 1), 16);
  EXPECT_EQ(DefaultEngineThreads(16, 3), 5);
  EXPECT_EQ(DefaultEngineThreads(2, 4), 1);  // never fewer than one
  EXPECT_EQ(DefaultEngineThreads(8, 0), 8);  // no instances counts as one
}

}  // namespace
}  // namespace sepconv
