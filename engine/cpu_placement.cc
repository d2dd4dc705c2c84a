#include "engine/internal/cpu_placement.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <vector>

namespace sepconv {
namespace internal {

CallerCpuExclusion::CallerCpuExclusion() {
  if (sched_getaffinity(0, sizeof(allowed_), &allowed_) != 0) CPU_ZERO(&allowed_);
  CPU_ZERO(&others_);
}

const cpu_set_t* CallerCpuExclusion::Changed() {
  const int cpu = sched_getcpu();
  if (cpu < 0 || cpu == cpu_) return nullptr;
  cpu_ = cpu;
  others_ = allowed_;
  if (cpu < CPU_SETSIZE) CPU_CLR(cpu, &others_);
  return CPU_COUNT(&others_) > 0 ? &others_ : nullptr;
}

void KeepOpenMpTeamOffCallersCpu(int threads) {
  if (threads <= 1) return;
  struct Team {
    CallerCpuExclusion exclusion;
    std::vector<pid_t> others;  // the team's threads but the caller
    int threads = 0;
  };
  thread_local Team team;
  if (team.threads != threads) {
    // libgomp's team for this caller: the same threads run its later
    // regions (it grows the pool for a larger team and keeps it until the
    // caller exits), so their ids are read once per team size.
    std::vector<pid_t> ids(static_cast<size_t>(threads), 0);
#pragma omp parallel num_threads(threads)
    {
      const int i = omp_get_thread_num();
      if (i > 0 && i < threads) ids[static_cast<size_t>(i)] = gettid();
    }
    team.others.clear();
    std::copy_if(ids.begin(), ids.end(), std::back_inserter(team.others),
                 [](pid_t id) { return id > 0; });
    team.threads = threads;
    team.exclusion.Reset();
  }
  if (const cpu_set_t* cpus = team.exclusion.Changed()) {
    // A failure (the process's CPUs changed since) leaves the thread where
    // it may run, as without this.
    for (pid_t id : team.others) sched_setaffinity(id, sizeof(*cpus), cpus);
  }
}

}  // namespace internal
}  // namespace sepconv
