#include "tests/testing/engine_gate.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

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
  // The count and the marker change together, so that a worker leaving the
  // gate cannot remove the marker of one arriving.
  struct Parked {
    std::mutex mu;
    int workers = 0;
  };
  auto parked = std::make_shared<Parked>();
  return [path, parked] {
    if (!Exists(path)) return;
    const std::string marker = path + ".parked";
    {
      std::lock_guard<std::mutex> lock(parked->mu);
      if (parked->workers++ == 0) Touch(marker);
    }
    // Polling keeps the gate a plain file any test (C++, Python, shell) can
    // drive; 1 ms is nothing next to what a test waits for.
    while (Exists(path)) absl::SleepFor(absl::Milliseconds(1));
    std::lock_guard<std::mutex> lock(parked->mu);
    if (--parked->workers == 0) unlink(marker.c_str());
  };
}

EngineGate::EngineGate() {
  char templ[] = "/tmp/sepconv_gate_XXXXXX";
  const char* made = mkdtemp(templ);
  if (made == nullptr) {
    std::fprintf(stderr, "EngineGate: mkdtemp: %s\n", std::strerror(errno));
    std::abort();
  }
  dir_ = made;
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

void EngineGate::Close() {
  // Workers released by an Open leave first, so that a later WaitParked sees
  // only a worker parked by this Close (60 s hang guard).
  for (const absl::Time give_up = absl::Now() + absl::Seconds(60);
       parked() && absl::Now() < give_up;) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  Touch(path_);
}

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
