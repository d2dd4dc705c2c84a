#ifndef SEPCONV_ENGINE_INTERNAL_CPU_PLACEMENT_H_
#define SEPCONV_ENGINE_INTERNAL_CPU_PLACEMENT_H_

// Keeps the threads that help a caller with its parallel work (the fused
// kernels' TilePool helpers, the caller's OpenMP team) off the CPU the
// caller is on. An idle helper sleeps; woken by the caller, it may be
// queued on the caller's own busy CPU instead of an idle one (in a KVM
// guest an idle vCPU looks preempted to Linux's scheduler), and then runs
// only once the caller stops. On a 2-vCPU KVM guest, after an idle gap of
// 1 ms or more, 45% of TilePool runs got no help at all, and an OpenMP
// region after a 20 ms gap took 7.8 ms instead of 0.35 (the caller spun at
// the closing barrier while its helper waited behind it); served requests
// at 20 a second took 6.7 ms of compute instead of 0.9
// (docs/performance.md, "Helpers off the caller's CPU").

#include <sched.h>

namespace sepconv {
namespace internal {

// The CPUs a caller's helpers may use: those the caller was allowed when
// this was made (on the caller's thread), less the one it is on now.
class CallerCpuExclusion {
 public:
  CallerCpuExclusion();

  // The helpers' CPUs when the caller is on another CPU than at the last
  // call (or since Reset), else nullptr: the helpers need no change. Also
  // nullptr when the caller's CPU is the only one allowed, or unknown.
  const cpu_set_t* Changed();

  // The next Changed() gives the CPUs wherever the caller is (new helpers).
  void Reset() { cpu_ = -1; }

 private:
  cpu_set_t allowed_;
  cpu_set_t others_;
  int cpu_ = -1;
};

// Before the calling thread runs OpenMP regions on `threads` threads: the
// other threads of its team (libgomp keeps one per calling thread, reused
// from region to region) are kept off the caller's CPU. One sched_getcpu
// when the caller has not moved; nothing for one thread.
void KeepOpenMpTeamOffCallersCpu(int threads);

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_CPU_PLACEMENT_H_
