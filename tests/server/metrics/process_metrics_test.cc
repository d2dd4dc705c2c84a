// Process metrics track the real process: descriptors, CPU time, memory.

#include "server/metrics/process_metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace sepconv {
namespace {

TEST(ProcessMetricsTest, OpenFdsFollowsOpenAndClose) {
  absl::StatusOr<ProcessStats> before = ReadProcessStats();
  ASSERT_TRUE(before.ok()) << before.status();
  const int fd = open("/proc/self/stat", O_RDONLY);
  ASSERT_GE(fd, 0);
  absl::StatusOr<ProcessStats> during = ReadProcessStats();
  close(fd);
  absl::StatusOr<ProcessStats> after = ReadProcessStats();
  ASSERT_TRUE(during.ok() && after.ok());
  EXPECT_EQ(during->open_fds, before->open_fds + 1);
  EXPECT_EQ(after->open_fds, before->open_fds);
  EXPECT_GE(before->open_fds, 3);  // at least stdin, stdout, stderr
  EXPECT_GE(before->max_fds, before->open_fds);
}

TEST(ProcessMetricsTest, CpuSecondsGrowWithWork) {
  absl::StatusOr<ProcessStats> before = ReadProcessStats();
  ASSERT_TRUE(before.ok()) << before.status();
  // Burn ~150ms of CPU (bounded by wall time too, for a loaded machine).
  const std::clock_t start = std::clock();
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  volatile double sink = 0;
  while (std::clock() - start < CLOCKS_PER_SEC * 15 / 100 && absl::Now() < give_up) sink += 1;
  absl::StatusOr<ProcessStats> after = ReadProcessStats();
  ASSERT_TRUE(after.ok());
  EXPECT_GE(after->cpu_seconds - before->cpu_seconds, 0.1);
}

TEST(ProcessMetricsTest, MemoryGrowsWithTouchedPages) {
  absl::StatusOr<ProcessStats> before = ReadProcessStats();
  ASSERT_TRUE(before.ok()) << before.status();
  std::vector<char> block(64 << 20, 1);  // 64 MiB, written so it is resident
  absl::StatusOr<ProcessStats> after = ReadProcessStats();
  ASSERT_TRUE(after.ok());
  EXPECT_GE(after->resident_memory_bytes - before->resident_memory_bytes, 60 << 20);
  EXPECT_GE(after->virtual_memory_bytes, after->resident_memory_bytes);
  EXPECT_EQ(block[12345], 1);
}

TEST(ProcessMetricsTest, StartTimeIsThisProcessStart) {
  absl::StatusOr<ProcessStats> stats = ReadProcessStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  // The test binary started moments ago (clock ticks are 10ms, so allow 1s).
  EXPECT_LE(stats->start_time_seconds, now + 1);
  EXPECT_GE(stats->start_time_seconds, now - 300);
}

TEST(ProcessMetricsTest, CollectorProducesTheStandardFamilies) {
  std::vector<prometheus::MetricFamily> families = ProcessCollector().Collect();
  std::vector<std::string> names;
  for (const prometheus::MetricFamily& family : families) {
    names.push_back(family.name);
    ASSERT_EQ(family.metric.size(), 1u) << family.name;
    EXPECT_TRUE(family.metric[0].label.empty()) << family.name;
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"process_cpu_seconds_total", "process_resident_memory_bytes",
                                      "process_virtual_memory_bytes", "process_open_fds",
                                      "process_max_fds", "process_start_time_seconds"}));
  EXPECT_GT(families[1].metric[0].gauge.value, 0);  // resident memory
}

}  // namespace
}  // namespace sepconv
