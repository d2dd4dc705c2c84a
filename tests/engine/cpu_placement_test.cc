// Helpers kept off the caller's CPU: CallerCpuExclusion reports the CPUs
// only when the caller moved (or after Reset), and a caller's OpenMP team
// runs off the caller's CPU whichever CPU the caller is held on.

#include "engine/internal/cpu_placement.h"

#include <omp.h>
#include <sched.h>

#include <vector>

#include "gtest/gtest.h"
#include "tests/engine/engine_test_util.h"

namespace sepconv {
namespace internal {
namespace {

using ::sepconv::testing::AllowedCpus;
using ::sepconv::testing::OnCpu;

TEST(CallerCpuExclusionTest, ReportsTheOtherCpusOnlyWhenTheCallerMoved) {
  const std::vector<int> cpus = AllowedCpus();
  ASSERT_FALSE(cpus.empty());
  CallerCpuExclusion exclusion;  // made while the test may use every CPU
  for (int cpu : cpus) {
    const OnCpu on(cpu);
    ASSERT_TRUE(on.ok());
    const cpu_set_t* others = exclusion.Changed();
    if (cpus.size() == 1) {
      EXPECT_EQ(others, nullptr) << "the caller's CPU is the only one";
      continue;
    }
    ASSERT_NE(others, nullptr) << "caller moved to CPU " << cpu;
    EXPECT_FALSE(CPU_ISSET(cpu, others));
    for (int other : cpus) {
      if (other != cpu) {
        EXPECT_TRUE(CPU_ISSET(other, others)) << other;
      }
    }
    EXPECT_EQ(exclusion.Changed(), nullptr) << "the caller has not moved";
    exclusion.Reset();
    EXPECT_NE(exclusion.Changed(), nullptr) << "after Reset";
  }
}

TEST(KeepOpenMpTeamOffCallersCpuTest, TheTeamRunsOffTheCallersCpu) {
  const std::vector<int> cpus = AllowedCpus();
  ASSERT_FALSE(cpus.empty());
  // Starts this thread's team while it may use every CPU (a server's engine
  // threads are not held on one), as the team's threads inherit its CPUs.
  KeepOpenMpTeamOffCallersCpu(2);
  for (int round = 0; round < 2; ++round) {  // back on a CPU it was kept off
    for (int cpu : cpus) {
      const OnCpu on(cpu);
      ASSERT_TRUE(on.ok());
      KeepOpenMpTeamOffCallersCpu(2);
      std::vector<cpu_set_t> team(2);
      int size = 0;
#pragma omp parallel num_threads(2)
      {
        const int i = omp_get_thread_num();
        if (i == 0) size = omp_get_num_threads();
        if (i < 2) sched_getaffinity(0, sizeof(team[i]), &team[static_cast<size_t>(i)]);
      }
      ASSERT_EQ(size, 2);
      EXPECT_TRUE(CPU_ISSET(cpu, &team[0])) << "the caller itself is not moved";
      if (cpus.size() > 1) {
        EXPECT_FALSE(CPU_ISSET(cpu, &team[1])) << "caller on CPU " << cpu << ", round " << round;
        EXPECT_GT(CPU_COUNT(&team[1]), 0);
      }
    }
  }
}

}  // namespace
}  // namespace internal
}  // namespace sepconv
