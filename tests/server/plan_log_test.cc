// The real sepconv-server binary says on stderr which kernels the engine
// chose for each input shape it tuned: one line per tuned shape (batch sizes
// of one image shape share a choice), naming the model, the input, the
// kernels and their threads.

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace sepconv {
namespace {

constexpr char kLine[] = "chosen by timing";

int Lines(const std::string& log) {
  int count = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, kLine)) ++count;
  }
  return count;
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

}  // namespace
}  // namespace sepconv
