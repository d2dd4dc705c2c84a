// The process helpers show everything a child that went wrong wrote: its
// whole stderr (or log) in the test output, and a test failure carrying the
// whole report when a sanitizer reported an error. Proven with children that
// really go wrong (crashing_child).

#include "tests/testing/child_process.h"

#include <signal.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace sepconv::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kLines = 2000;  // as crashing_child.cc

std::string Child() { return RequiredEnv("SEPCONV_CRASHING_CHILD"); }

// Every line the child writes before it goes wrong, in order.
void ExpectAllLines(const std::string& text) {
  size_t at = 0;
  for (int i = 1; i <= kLines; ++i) {
    const std::string line = absl::StrCat("child stderr line ", i, " of ", kLines, "\n");
    at = text.find(line, at);
    ASSERT_NE(at, std::string::npos) << "missing: " << line;
  }
}

TEST(RunProcessTest, ChildKilledBySignalShowsItsWholeStderr) {
  ::testing::internal::CaptureStderr();
  ProcessResult r = RunProcess({Child(), "abort"}, absl::Seconds(60));
  const std::string shown = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, SIGABRT);
  EXPECT_THAT(shown, HasSubstr(absl::StrCat("killed by signal ", SIGABRT)));
  ExpectAllLines(shown);
  EXPECT_THAT(shown, Not(HasSubstr("last words")));
}

TEST(RunProcessTest, ChildExitingNonZeroShowsItsWholeStderr) {
  ::testing::internal::CaptureStderr();
  ProcessResult r = RunProcess({Child(), "exit3"}, absl::Seconds(60));
  const std::string shown = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(shown, HasSubstr("exited with 3"));
  ExpectAllLines(shown);
  EXPECT_THAT(shown, HasSubstr("last words"));
}

TEST(RunProcessTest, ChildExitingZeroShowsNothing) {
  ::testing::internal::CaptureStderr();
  ProcessResult r = RunProcess({Child(), "ok"}, absl::Seconds(60));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(r.exit_code, 0);
  ExpectAllLines(r.err);
}

TEST(ChildProcessTest, ChildThatDiedShowsItsWholeLog) {
  const std::string log = ::testing::TempDir() + "/crashing_child_abort.log";
  ::testing::internal::CaptureStderr();
  {
    ChildProcess child({Child(), "abort"}, log);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (child.running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    EXPECT_FALSE(child.running());
  }
  const std::string shown = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(shown,
              HasSubstr(absl::StrCat("killed by signal ", SIGABRT, " before it was stopped")));
  ExpectAllLines(shown);
}

TEST(HasSanitizerReportTest, FindsReportsOfEachSanitizer) {
  EXPECT_TRUE(HasSanitizerReport("==1==ERROR: AddressSanitizer: heap-use-after-free on"));
  EXPECT_TRUE(HasSanitizerReport("==1==ERROR: LeakSanitizer: detected memory leaks"));
  EXPECT_TRUE(HasSanitizerReport("a.cc:3:5: runtime error: signed integer overflow"));
  EXPECT_FALSE(HasSanitizerReport("sepconv-client bench: 3 of 9 requests failed"));
}

#ifdef SEPCONV_CHILD_USE_AFTER_FREE
// The report is in the failure message, whole: what, where (the function's
// frame) and ASan's summary, after everything the child wrote before.
void ExpectWholeReport(const std::string& message) {
  EXPECT_THAT(message, HasSubstr("ERROR: AddressSanitizer: heap-use-after-free"));
  EXPECT_THAT(message, HasSubstr("UseFreedMemory"));
  EXPECT_THAT(message, HasSubstr("freed by thread T0 here"));
  EXPECT_THAT(message, HasSubstr("SUMMARY: AddressSanitizer: heap-use-after-free"));
  ExpectAllLines(message);
}

TEST(RunProcessTest, SanitizerReportFailsTheTestWithTheWholeReport) {
  ::testing::TestPartResultArray failures;
  ProcessResult r;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    r = RunProcess({Child(), "use-after-free"}, absl::Seconds(60));
  }
  EXPECT_NE(r.exit_code, 0);
  ASSERT_EQ(failures.size(), 1);
  EXPECT_TRUE(failures.GetTestPartResult(0).nonfatally_failed());
  ExpectWholeReport(failures.GetTestPartResult(0).message());
}

TEST(ChildProcessTest, SanitizerReportFailsTheTestWithTheWholeLog) {
  const std::string log = ::testing::TempDir() + "/crashing_child_uaf.log";
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    ChildProcess child({Child(), "use-after-free"}, log);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (child.running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(failures.size(), 1);
  ExpectWholeReport(failures.GetTestPartResult(0).message());
}
#endif

}  // namespace
}  // namespace sepconv::testing
