#ifndef SEPCONV_SERVER_BATCHING_CPU_BUDGET_H_
#define SEPCONV_SERVER_BATCHING_CPU_BUDGET_H_

// How many CPUs this process may really use: the CPUs of its affinity mask,
// capped by the CPU quota of its cgroup (v2 `cpu.max`, v1
// `cpu.cfs_quota_us` / `cpu.cfs_period_us`, of its own cgroup and every
// ancestor), rounded up. A container limited to 2 CPUs on a 64-core host
// gets 2, so the engine does not start 64 OpenMP threads. Thread-safe.

#include <optional>
#include <string>

namespace sepconv {

struct CpuBudget {
  int affinity_cpus = 1;             // CPUs in sched_getaffinity's mask
  std::optional<double> quota_cpus;  // cgroup quota in CPUs; none if unlimited
  int usable = 1;                    // min(affinity, ceil(quota)), at least 1
};

// Reads `root`/proc/self/cgroup and the cgroup files under
// `root`/sys/fs/cgroup (root is "/" in production; tests point it at a fake
// tree). Missing or unreadable files mean "no limit", never an error.
std::optional<double> CgroupCpuQuota(const std::string& root = "/");

// The CPU count of this thread's affinity mask (at least 1).
int AffinityCpuCount();

CpuBudget ComputeCpuBudget(const std::string& root = "/");

// ComputeCpuBudget().usable.
int UsableCpus();

// Default threads per engine instance when `usable` CPUs are shared by
// `instances` engine workers: the CPUs divided among the instances, at least
// 1 each. An upper bound, not a setting: the engine times each input shape's
// plan on one thread as well as on all of them and keeps the faster
// (engine/internal/plan_tuner.h), and its fused kernels' helpers never hold
// a request for a CPU that gRPC's threads have taken (TilePool). Measured
// through the server on 2 CPUs (tests/bench/server_engine_bench.py,
// service_bench.py), two threads beat one at every case.
int DefaultEngineThreads(int usable, int instances);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_BATCHING_CPU_BUDGET_H_
