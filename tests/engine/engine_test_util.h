#ifndef SEPCONV_TESTS_ENGINE_ENGINE_TEST_UTIL_H_
#define SEPCONV_TESTS_ENGINE_ENGINE_TEST_UTIL_H_

// What the engine's tests share. Header-only: a test that links
// sepconv_engine includes it with no target of its own.

#include <sched.h>

#include <cstdint>
#include <vector>

#include "engine/model_spec.h"

namespace sepconv::testing {

// A layer from `in` to `out` channels, every other field at its default.
inline LayerSpec Spec(int64_t in, int64_t out) {
  LayerSpec s;
  s.in_channels = in;
  s.out_channels = out;
  return s;
}

// Holds the calling thread on one CPU for the object's scope, then gives it
// back the CPUs it had.
class OnCpu {
 public:
  explicit OnCpu(int cpu) {
    sched_getaffinity(0, sizeof(saved_), &saved_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ok_ = sched_setaffinity(0, sizeof(one), &one) == 0;
  }
  ~OnCpu() { sched_setaffinity(0, sizeof(saved_), &saved_); }
  OnCpu(const OnCpu&) = delete;
  OnCpu& operator=(const OnCpu&) = delete;
  bool ok() const { return ok_; }

 private:
  cpu_set_t saved_;
  bool ok_ = false;
};

// Up to four of the CPUs the calling thread may use.
inline std::vector<int> AllowedCpus() {
  cpu_set_t all;
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(all), &all) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE && cpus.size() < 4; ++cpu) {
    if (CPU_ISSET(cpu, &all)) cpus.push_back(cpu);
  }
  return cpus;
}

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_ENGINE_ENGINE_TEST_UTIL_H_
