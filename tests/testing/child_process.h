#ifndef SEPCONV_TESTS_TESTING_CHILD_PROCESS_H_
#define SEPCONV_TESTS_TESTING_CHILD_PROCESS_H_

// Child processes for tests: run a command with a timeout and capture its
// output; keep a child (the server) alive in the background.
//
// A child that goes wrong shows all it wrote in the test output: when a child
// dies of a signal it was not sent, times out or exits non-zero, its complete
// stderr (for ChildProcess: its complete log) is printed to this process's
// stderr; when it carries a sanitizer report (ASan, LSan, UBSan, TSan), the
// current test also fails with the complete text in the failure message,
// whatever the exit code (ASan exits 1 by default, a code tests may expect
// for other reasons).
// Not thread-safe; used from the test's main thread.

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sepconv::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  int signal = 0;      // the signal that ended it (not our SIGKILL on timeout)
  bool timed_out = false;
  std::string out;
  std::string err;
  absl::Duration elapsed;
};

// Runs argv[0] with `argv` (extra "NAME=VALUE" entries in `env` override the
// environment); kills it after `timeout`.
ProcessResult RunProcess(const std::vector<std::string>& argv, absl::Duration timeout,
                         const std::vector<std::string>& env = {});

// A background child whose stdout and stderr go to `log_path` (truncated).
// It is SIGKILLed if this process dies first. On destruction: SIGTERM, then
// SIGKILL after 10 s. Its log is shown (see above) when it ended by itself
// (any exit code), exited non-zero or by a signal after being signalled, or
// holds a sanitizer report.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // False once it has exited (or when fork failed).
  bool running();
  pid_t pid() const { return pid_; }
  // Sends `signo`; an ending caused by it is then not "by itself".
  absl::Status Signal(int signo);
  // Its exit code (128 + signal when a signal ended it); an error when it is
  // still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // All it wrote so far.
  std::string Log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool exited_ = false;  // reaped; then `wait_status_` holds its wait status
  int wait_status_ = 0;
  bool signalled_ = false;
  std::string description_;
};

// True when `text` holds a sanitizer's error report.
bool HasSanitizerReport(const std::string& text);

// Environment variable or a test failure naming it (std::runtime_error).
std::string RequiredEnv(const char* name);

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_CHILD_PROCESS_H_
