#include "tests/testing/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace sepconv::testing {
namespace {

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> MergedEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool overridden = false;
    for (const std::string& x : extra) {
      overridden |= entry.substr(0, entry.find('=') + 1) == x.substr(0, x.find('=') + 1);
    }
    if (!overridden) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Waits for `pid` until `deadline`; returns its wait status or -1.
int WaitUntil(pid_t pid, absl::Time deadline) {
  int status = 0;
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;
    if (absl::Now() >= deadline) return -1;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Shows `text`, all a child named `what` wrote, when it went wrong (see
// child_process.h); `how` says how it ended ("" when it exited 0).
void ShowIfWrong(const std::string& what, const std::string& how, const std::string& text) {
  const std::string header = absl::StrCat("---- ", what, how.empty() ? "" : ": ", how);
  if (HasSanitizerReport(text)) {
    ADD_FAILURE() << header << "; a sanitizer reported an error. Everything it wrote:\n"
                  << text << "---- end of " << what;
  } else if (!how.empty()) {
    std::cerr << header << ". Everything it wrote:\n" << text << "---- end of " << what << "\n";
  }
}

// How a wait status ended, "" for exit 0.
std::string Ending(int status) {
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    return absl::StrCat("exited with ", WEXITSTATUS(status));
  }
  return "";
}

}  // namespace

bool HasSanitizerReport(const std::string& text) {
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                             "WARNING: ThreadSanitizer", ": runtime error: "}) {
    if (text.find(marker) != std::string::npos) return true;
  }
  return false;
}

ProcessResult RunProcess(const std::vector<std::string>& argv, absl::Duration timeout,
                         const std::vector<std::string>& env) {
  ProcessResult result;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  const std::vector<std::string> merged = MergedEnv(env);
  std::vector<char*> args = CStrings(argv);
  std::vector<char*> envp = CStrings(merged);
  const absl::Time start = absl::Now();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  const absl::Time deadline = start + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  while (open_fds > 0) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      result.timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0) continue;
      char buffer[8192];
      const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  int status = WaitUntil(pid, result.timed_out ? absl::Now() : deadline);
  if (status == -1) {
    result.timed_out = true;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  result.elapsed = absl::Now() - start;
  result.exit_code = !result.timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.signal = !result.timed_out && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  ShowIfWrong(absl::StrCat("child `", absl::StrJoin(argv, " "), "` (stderr)"),
              result.timed_out ? absl::StrCat("timed out after ", absl::FormatDuration(timeout))
                               : Ending(status),
              result.err);
  return result;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& log_path)
    : log_path_(log_path),
      description_(absl::StrCat("child `", absl::StrJoin(argv, " "), "` (log ", log_path, ")")) {
  std::vector<char*> args = CStrings(argv);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execv(args[0], args.data());
    _exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0) return;
  const bool ended_by_itself = !running() && !signalled_;
  if (!exited_) {
    kill(pid_, SIGTERM);
    const int status = WaitUntil(pid_, absl::Now() + absl::Seconds(10));
    if (status == -1) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      ShowIfWrong(description_, "still running 10 s after SIGTERM", Log());
      return;
    }
    wait_status_ = status;
  }
  std::string how = Ending(wait_status_);
  if (ended_by_itself)
    absl::StrAppend(&how, how.empty() ? "exited 0" : "", " before it was stopped");
  ShowIfWrong(description_, how, Log());
}

bool ChildProcess::running() {
  if (pid_ <= 0 || exited_) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  exited_ = true;
  wait_status_ = r == pid_ ? status : 0;
  return false;
}

absl::Status ChildProcess::Signal(int signo) {
  if (pid_ <= 0) return absl::FailedPreconditionError("no child");
  if (kill(pid_, signo) != 0) {
    return absl::InternalError(absl::StrCat("kill: ", std::strerror(errno)));
  }
  signalled_ = true;
  return absl::OkStatus();
}

absl::StatusOr<int> ChildProcess::Wait(absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (running()) {
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat(description_, " still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (pid_ <= 0) return absl::FailedPreconditionError("no child");
  return WIFEXITED(wait_status_) ? WEXITSTATUS(wait_status_) : 128 + WTERMSIG(wait_status_);
}

std::string ChildProcess::Log() const { return ReadFile(log_path_); }

std::string RequiredEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(absl::StrCat("environment variable ", name, " is not set"));
  }
  return value;
}

}  // namespace sepconv::testing
