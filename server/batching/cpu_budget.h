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

// Default intra-op (OpenMP) threads per engine instance when `usable` CPUs
// are shared by `instances` engine workers and gRPC's threads, which read and
// write every request's payload: with two or more CPUs one is left to gRPC,
// the rest are divided among the instances; at least 1 each. (OpenMP threads
// that spin between batches otherwise take the cores gRPC needs: on 2 CPUs,
// one engine thread serves more than two; tests/bench/service_bench.py.)
int DefaultEngineThreads(int usable, int instances);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_BATCHING_CPU_BUDGET_H_
