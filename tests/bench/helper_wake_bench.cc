// Do the threads that help a caller start when it wakes them, after an idle
// gap? The fused kernels' TilePool and an OpenMP team (as a oneDNN plan runs
// on more than one thread), each on 2 threads: after sleeping `gap`, the
// caller shares `tasks` busy-waits of `task_us` with its helper, `iterations`
// times per gap. Prints, per pool and gap, the runs in which the helper ran
// none of the tasks, the runs in which it ran on the caller's CPU, the
// helper's start after the caller (p50, p90) and the run's time (p50, p90)
// against the ideal (half the work). "kept off the caller's CPU" is the
// engine's placement (engine/internal/cpu_placement.h); for OpenMP the bench
// also shows the team left where the OS puts it, as before it. See
// docs/performance.md, "Helpers off the caller's CPU". Speed is reported,
// never asserted.
//
//   helper_wake_bench [--iterations=300] [--tasks=14] [--task_us=50]
//                     [--gaps_us=0,200,1000,5000,20000]

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/internal/cpu_placement.h"
#include "engine/internal/fused_plan.h"
#include "engine/internal/tile_pool.h"

namespace sepconv {
namespace {

using Clock = std::chrono::steady_clock;

double Microseconds(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

void BusyWait(int us) {
  const Clock::time_point start = Clock::now();
  while (Clock::now() - start < std::chrono::microseconds(us)) {
  }
}

// What one run saw.
struct Run {
  bool helped = false;    // the helper ran a task
  bool same_cpu = false;  // ... on the CPU the caller started on
  double helper_us = 0;   // its first task's start after the caller's
  double total_us = 0;
};

// One run through `pool`: fn(task, worker) for every task, 2 threads.
using Pool = std::function<void(int tasks, const std::function<void(int, int)>& fn)>;

Run Once(const Pool& pool, int tasks, int task_us) {
  Run run;
  std::atomic<bool> helped{false};
  std::atomic<int> helper_cpu{-1};
  std::atomic<double> helper_us{0};
  const int caller_cpu = sched_getcpu();
  const Clock::time_point start = Clock::now();
  pool(tasks, [&](int, int worker) {
    if (worker != 0 && !helped.exchange(true)) {
      helper_us = Microseconds(Clock::now() - start);
      helper_cpu = sched_getcpu();
    }
    BusyWait(task_us);
  });
  run.total_us = Microseconds(Clock::now() - start);
  run.helped = helped;
  run.same_cpu = run.helped && helper_cpu == caller_cpu;
  run.helper_us = helper_us;
  return run;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

void Row(const char* name, const Pool& pool, int gap_us, int iterations, int tasks, int task_us) {
  std::vector<double> helper, total;
  int unhelped = 0, same_cpu = 0;
  for (int i = 0; i < iterations; ++i) {
    if (gap_us > 0) usleep(static_cast<useconds_t>(gap_us));
    const Run run = Once(pool, tasks, task_us);
    total.push_back(run.total_us);
    if (!run.helped) {
      ++unhelped;
      continue;
    }
    helper.push_back(run.helper_us);
    same_cpu += run.same_cpu;
  }
  std::printf("| %s | %d | %d of %d | %d | %.0f / %.0f | %.0f / %.0f | %d |\n", name, gap_us,
              unhelped, iterations, same_cpu, Percentile(helper, 0.5), Percentile(helper, 0.9),
              Percentile(total, 0.5), Percentile(total, 0.9), tasks * task_us / 2);
}

int Flag(int argc, char** argv, const char* name, int fallback) {
  const size_t n = std::strlen(name);
  for (int i = 1; i < argc; ++i) {
    int value;
    if (std::strncmp(argv[i], name, n) == 0 && absl::SimpleAtoi(argv[i] + n, &value)) return value;
  }
  return fallback;
}

}  // namespace
}  // namespace sepconv

int main(int argc, char** argv) {
  using sepconv::Flag;
  const int iterations = Flag(argc, argv, "--iterations=", 300);
  const int tasks = Flag(argc, argv, "--tasks=", 14);
  const int task_us = Flag(argc, argv, "--task_us=", 50);
  std::vector<int> gaps = {0, 200, 1000, 5000, 20000};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--gaps_us=", 10) != 0) continue;
    gaps.clear();
    for (absl::string_view gap : absl::StrSplit(argv[i] + 10, ',')) {
      int value;
      if (absl::SimpleAtoi(gap, &value)) gaps.push_back(value);
    }
  }
  cpu_set_t cpus;
  sched_getaffinity(0, sizeof(cpus), &cpus);
  const sepconv::internal::FusedKernels* kernels =
      sepconv::internal::FusedPlan::KernelsForThisCpu();
  std::printf(
      "%d CPUs usable; oneDNN's ISA for the fused kernels: %s; OMP_WAIT_POLICY %s; "
      "%d tasks of %d us on 2 threads\n\n",
      CPU_COUNT(&cpus), kernels != nullptr ? kernels->isa : "below AVX2",
      std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "(libgomp default)", tasks,
      task_us);
  std::printf(
      "| pool | gap us | runs with no help | helper on the caller's CPU | "
      "helper start us p50 / p90 | run us p50 / p90 | ideal us |\n"
      "|---|---:|---:|---:|---:|---:|---:|\n");
  sepconv::internal::TilePool tile_pool;
  const sepconv::Pool tiles = [&](int count, const std::function<void(int, int)>& fn) {
    tile_pool.Run(2, count, [&](int64_t task, int worker) { fn(static_cast<int>(task), worker); });
  };
  const auto openmp = [](bool placed) {
    return [placed](int count, const std::function<void(int, int)>& fn) {
      if (placed) sepconv::internal::KeepOpenMpTeamOffCallersCpu(2);
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
      for (int task = 0; task < count; ++task) fn(task, omp_get_thread_num());
    };
  };
  for (int gap : gaps) {
    sepconv::Row("TilePool, kept off the caller's CPU", tiles, gap, iterations, tasks, task_us);
  }
  // The team left where the OS puts it first: once kept off a CPU, its
  // threads stay restricted.
  for (int gap : gaps) {
    sepconv::Row("OpenMP, where the OS puts it", openmp(false), gap, iterations, tasks, task_us);
  }
  for (int gap : gaps) {
    sepconv::Row("OpenMP, kept off the caller's CPU", openmp(true), gap, iterations, tasks,
                 task_us);
  }
  return 0;
}
