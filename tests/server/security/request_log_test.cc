// Unit tests of server/core/request_log.h: format, escaping and rate limiting on a
// fake clock.

#include "server/core/request_log.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sepconv {
namespace {

struct Captured {
  std::vector<std::string> lines;
  absl::Time now = absl::FromUnixSeconds(1800000000);
};

std::unique_ptr<RequestLog> MakeLog(Captured* captured, RequestLogOptions options = {}) {
  return std::make_unique<RequestLog>(
      options, [captured](absl::string_view line) { captured->lines.emplace_back(line); },
      [captured] { return captured->now; });
}

FailedRequest Bad(absl::string_view reason = "input 'input': expected FP32, got INT8") {
  FailedRequest request;
  request.code = absl::StatusCode::kInvalidArgument;
  request.model = "sepconv";
  request.version = "1";
  request.peer = "ipv4:127.0.0.1:40312";
  request.reason = reason;
  return request;
}

TEST(LogfmtValueTest, BareQuotedEscapedAndCut) {
  EXPECT_EQ(LogfmtValue("sepconv", 256), "sepconv");
  EXPECT_EQ(LogfmtValue("", 256), "\"\"");
  EXPECT_EQ(LogfmtValue("a b", 256), "\"a b\"");
  EXPECT_EQ(LogfmtValue("x=\"1\"\n\\", 256), "\"x=\\\"1\\\"\\n\\\\\"");
  EXPECT_EQ(LogfmtValue(std::string("\x01\xff", 2), 256), "\"\\x01\\xff\"");
  EXPECT_EQ(LogfmtValue("abcdef", 3), "abc...");
  EXPECT_EQ(LogfmtValue("a cdef", 3), "\"a c...\"");
}

TEST(RequestLogTest, OneStructuredLinePerFailure) {
  Captured captured;
  auto log = MakeLog(&captured);
  log->Failed(Bad());
  ASSERT_EQ(captured.lines.size(), 1u);
  EXPECT_EQ(captured.lines[0],
            "time=2027-01-15T08:00:00.000000Z level=warning msg=\"request failed\" "
            "status=INVALID_ARGUMENT model=sepconv version=1 peer=ipv4:127.0.0.1:40312 "
            "reason=\"input 'input': expected FP32, got INT8\"");
}

TEST(RequestLogTest, ClientTextCannotForgeLines) {
  Captured captured;
  auto log = MakeLog(&captured);
  FailedRequest request = Bad("x\nlevel=error msg=forged");
  request.model = "m\r\nstatus=OK";
  log->Failed(request);
  ASSERT_EQ(captured.lines.size(), 1u);
  EXPECT_EQ(captured.lines[0].find('\n'), std::string::npos);
  EXPECT_EQ(captured.lines[0].find('\r'), std::string::npos);
  EXPECT_NE(captured.lines[0].find("model=\"m\\x0d\\nstatus=OK\""), std::string::npos);
}

TEST(RequestLogTest, FloodIsCappedAndSummarised) {
  Captured captured;
  RequestLogOptions options;
  options.lines_per_second = 10;
  options.burst = 20;
  auto log = MakeLog(&captured, options);
  for (int i = 0; i < 1000; ++i) log->Failed(Bad());
  EXPECT_EQ(captured.lines.size(), 20u);
  EXPECT_EQ(log->suppressed(), 980);

  // 0.5 s later five tokens are back: a summary, then the line.
  captured.now += absl::Milliseconds(500);
  log->Failed(Bad());
  ASSERT_EQ(captured.lines.size(), 22u);
  EXPECT_NE(captured.lines[20].find("msg=\"request log rate-limited\" suppressed=980"),
            std::string::npos)
      << captured.lines[20];
  EXPECT_NE(captured.lines[21].find("msg=\"request failed\""), std::string::npos);
  EXPECT_EQ(log->suppressed(), 0);

  // Sustained rate: over 10 simulated seconds at 1000 failures/s, about
  // 10 lines/s get through (4 tokens left + 100 refilled).
  size_t before = captured.lines.size();
  for (int i = 0; i < 10000; ++i) {
    captured.now += absl::Milliseconds(1);
    log->Failed(Bad());
  }
  const size_t written = captured.lines.size() - before;
  EXPECT_GE(written, 100u);
  EXPECT_LE(written, 2 * 105u);  // each line may be preceded by one summary
}

TEST(RequestLogTest, DestructorFlushesPendingSummary) {
  Captured captured;
  RequestLogOptions options;
  options.burst = 1;
  {
    auto log = MakeLog(&captured, options);
    log->Failed(Bad());
    log->Failed(Bad());
    log->Failed(Bad());
  }
  ASSERT_EQ(captured.lines.size(), 2u);
  EXPECT_NE(captured.lines[1].find("suppressed=2"), std::string::npos);
}

TEST(RequestLogTest, ClockGoingBackwardsDoesNotMintTokens) {
  Captured captured;
  RequestLogOptions options;
  options.burst = 1;
  options.lines_per_second = 1;
  auto log = MakeLog(&captured, options);
  log->Failed(Bad());
  captured.now -= absl::Seconds(100);
  log->Failed(Bad());
  captured.now += absl::Seconds(50);
  log->Failed(Bad());
  EXPECT_EQ(captured.lines.size(), 1u);
  EXPECT_EQ(log->suppressed(), 2);
}

}  // namespace
}  // namespace sepconv
