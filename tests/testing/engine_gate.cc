#include "tests/testing/engine_gate.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace sepconv::testing {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

void Touch(const std::string& path) {
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
}

}  // namespace

std::function<void()> ParkWhileGateClosed(const std::string& path) {
  if (path.empty()) return nullptr;
  auto parked_workers = std::make_shared<std::atomic<int>>(0);
  return [path, parked_workers] {
    if (!Exists(path)) return;
    const std::string marker = path + ".parked";
    if (parked_workers->fetch_add(1) == 0) Touch(marker);
    // Polling keeps the gate a plain file any test (C++, Python, shell) can
    // drive; 1 ms is nothing next to what a test waits for.
    while (Exists(path)) absl::SleepFor(absl::Milliseconds(1));
    if (parked_workers->fetch_sub(1) == 1) unlink(marker.c_str());
  };
}

EngineGate::EngineGate() {
  char templ[] = "/tmp/sepconv_gate_XXXXXX";
  const char* made = mkdtemp(templ);
  dir_ = made != nullptr ? made : "/tmp";
  path_ = absl::StrCat(dir_, "/gate");
}

EngineGate::~EngineGate() {
  Open();
  // A worker may still be leaving the gate (it removes PATH.parked).
  for (const absl::Time give_up = absl::Now() + absl::Seconds(5);
       parked() && absl::Now() < give_up;) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  unlink((path_ + ".parked").c_str());  // left by a server killed while parked
  rmdir(dir_.c_str());
}

void EngineGate::Close() { Touch(path_); }

void EngineGate::Open() { unlink(path_.c_str()); }

bool EngineGate::parked() const { return Exists(path_ + ".parked"); }

absl::Status EngineGate::WaitParked(absl::Duration timeout) const {
  for (const absl::Time give_up = absl::Now() + timeout; !parked();) {
    if (absl::Now() >= give_up) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no engine worker parked at ", path_, " within ", absl::FormatDuration(timeout),
          " (is the server sepconv-server-gated, started with ", Flag(), "?)"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return absl::OkStatus();
}

}  // namespace sepconv::testing
