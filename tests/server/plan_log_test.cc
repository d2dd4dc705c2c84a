// The real sepconv-server binary says on stderr which kernels the engine
// chose for each input shape it tuned: one line per tuned shape (batch sizes
// of one image shape share a choice), naming the model, the input, the
// kernels and their threads. With --tuning_cache the next server builds the
// shape as the first chose it, without timing, and says so.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"
#include "tests/testing/temp_tree.h"

namespace sepconv {
namespace {

constexpr char kLine[] = "chosen by timing";

constexpr char kCachedLine[] = "from the tuning cache";

// The log's lines that hold `what`.
std::vector<std::string> LinesWith(const std::string& log, const char* what) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, what)) lines.emplace_back(line);
  }
  return lines;
}

int Lines(const std::string& log) { return static_cast<int>(LinesWith(log, kLine).size()); }

// Waits for the server's first line with `what` (the warm-up writes it
// before serving; a hang guard, not a deadline) and returns its log.
std::string LogOnceItSays(const testing::ServerProcess& server, const char* what) {
  for (int i = 0; i < 600 && LinesWith(server.Log(), what).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return server.Log();
}

// "<kernels> on N" of a plan line ("...input NxCxHxW: <kernels> on N
// thread(s), ..."): what serves the shape, whichever batch size it names.
std::string Kernels(const std::string& line) {
  const size_t start = line.find(": ", line.find("input "));
  const size_t end = line.find(" thread(s), ");
  if (start == std::string::npos || end == std::string::npos) return line;
  return line.substr(start, end - start);
}

TEST(PlanLogTest, TheDefaultModelsWarmedShapeIsLoggedOnce) {
  // Batching on: the default model is warmed at batch 1 and at the largest
  // batch, two plans of one image shape, so one choice.
  absl::StatusOr<std::unique_ptr<testing::ServerProcess>> server =
      testing::ServerProcess::Start(SEPCONV_SERVER_BINARY, {"--max_batch_size=4", "--threads=2"});
  ASSERT_TRUE(server.ok()) << server.status();
  // The warm-up runs on the engine's own thread; a hang guard, not a
  // deadline: the line is written before the first request can be served.
  for (int i = 0; i < 600 && Lines((*server)->Log()) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string log = (*server)->Log();
  EXPECT_EQ(Lines(log), 1) << log;
  EXPECT_THAT(log,
              ::testing::ContainsRegex(
                  "sepconv-server: model '[^']+' version [^,]+, input "
                  "[0-9]+x[0-9]+x[0-9]+x[0-9]+: [a-z_0-9]+:.* on [12] thread\\(s\\), chosen "
                  "by timing [0-9]+ candidates in [0-9]+ ms \\([0-9]+ timed runs; runner-up "
                  "[a-zA-Z0-9_ ]+ on [12] thread\\(s\\) at [0-9]+\\.[0-9][0-9]x the time\\)\n"));
}

TEST(PlanLogTest, TheTuningCacheGivesTheNextServerTheSamePlanUntimed) {
  testing::TempTree tree("plan_log_");
  const std::string cache = (tree.path() / "tuning.tsv").string();
  const std::vector<std::string> flags = {"--max_batch_size=4", "--threads=2",
                                          "--tuning_cache=" + cache};
  std::string first_line;
  {
    absl::StatusOr<std::unique_ptr<testing::ServerProcess>> server =
        testing::ServerProcess::Start(SEPCONV_SERVER_BINARY, flags);
    ASSERT_TRUE(server.ok()) << server.status();
    const std::string log = LogOnceItSays(**server, kLine);
    ASSERT_EQ(Lines(log), 1) << log;
    EXPECT_TRUE(LinesWith(log, kCachedLine).empty()) << log;
    first_line = LinesWith(log, kLine).front();
    EXPECT_FALSE(absl::StrContains(first_line, "not kept")) << first_line;
  }
  ASSERT_TRUE(std::filesystem::exists(cache));
  absl::StatusOr<std::unique_ptr<testing::ServerProcess>> server =
      testing::ServerProcess::Start(SEPCONV_SERVER_BINARY, flags);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string log = LogOnceItSays(**server, kCachedLine);
  EXPECT_EQ(Lines(log), 0) << log;
  const std::vector<std::string> cached = LinesWith(log, kCachedLine);
  ASSERT_EQ(cached.size(), 1u) << log;
  EXPECT_EQ(Kernels(cached.front()), Kernels(first_line)) << log;
}

TEST(PlanLogTest, ATuningCacheThatCannotBeReadStopsTheStart) {
  testing::TempTree tree("plan_log_");
  tree.Write("tuning.tsv", "not a tuning cache\n");
  absl::StatusOr<std::unique_ptr<testing::ServerProcess>> server = testing::ServerProcess::Start(
      SEPCONV_SERVER_BINARY, {"--tuning_cache=" + (tree.path() / "tuning.tsv").string()});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              ::testing::HasSubstr("--tuning_cache: INVALID_ARGUMENT: tuning cache "));
  EXPECT_THAT(std::string(server.status().message()), ::testing::HasSubstr("line 1:"));
}

}  // namespace
}  // namespace sepconv
