#ifndef SEPCONV_TESTS_TESTING_ENGINE_GATE_H_
#define SEPCONV_TESTS_TESTING_ENGINE_GATE_H_

// Holds a test server's engine deterministically, so that a test can prove
// requests are queued (or in the engine) however fast or slow the CPU is.
//
// The server side is sepconv-server-gated: server/main.cc built with
// SEPCONV_TEST_ENGINE_GATE (tests only; the shipped sepconv-server has no
// such flag), whose --test_engine_gate=PATH installs ParkWhileGateClosed as
// SchedulerOptions::before_batch (an in-process server takes the same hook
// from EngineGate::Hook). The gate is a file: while PATH exists a
// worker that has taken a batch (its jobs no longer count as pending) waits
// before running it, and PATH.parked exists while one does. The test side
// is EngineGate, which owns PATH.

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace sepconv::testing {

// The before_batch hook for gate file `path`; an empty path gives a null
// hook (no gate). Thread-safe: several workers may park at once (each one
// holds PATH.parked; the last one out removes it).
std::function<void()> ParkWhileGateClosed(const std::string& path);

// The test's end of one gate: a file in a fresh temporary directory, opened
// on construction. Not thread-safe.
class EngineGate {
 public:
  EngineGate();
  ~EngineGate();  // opens the gate (and removes its directory)
  EngineGate(const EngineGate&) = delete;
  EngineGate& operator=(const EngineGate&) = delete;

  // The flag to start sepconv-server-gated with.
  std::string Flag() const { return "--test_engine_gate=" + path_; }
  // The same gate for an in-process server: SchedulerOptions::before_batch.
  std::function<void()> Hook() const { return ParkWhileGateClosed(path_); }

  void Close();  // workers park before their next batch (once any released earlier have left)
  void Open();   // parked workers run their batch; idempotent

  // Waits until a worker is parked at the closed gate; an error after
  // `timeout` (a hang guard: parking needs only that a request arrives).
  absl::Status WaitParked(absl::Duration timeout = absl::Seconds(60)) const;
  // True while a worker is parked.
  bool parked() const;

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_ENGINE_GATE_H_
