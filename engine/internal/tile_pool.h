#ifndef SEPCONV_ENGINE_INTERNAL_TILE_POOL_H_
#define SEPCONV_ENGINE_INTERNAL_TILE_POOL_H_

// The threads that share a fused layer's tiles: the calling thread and
// helpers of its own. Each worker has a contiguous share of the tasks and
// claims them one at a time, its own first, so the same tiles (samples,
// rows, output lines) go to the same thread from run to run. With every
// task claimed in turn from one list, a batch of 16 32-to-64-channel
// 112x112 samples took 1.1x the time on two threads (docs/performance.md,
// "Each worker its own tiles"). A worker whose share is done takes the
// last task of the share with most left, so a helper that the OS has not
// scheduled yet (the CPUs busy with gRPC's threads, say) leaves its share
// to whoever is running, and Run returns as soon as every task is done,
// without waiting for helpers to check in (OpenMP's barriers would wait for
// them, a whole time slice when a core is taken). Idle helpers spin a few
// microseconds (a layer's next tiles come right after) and then sleep. Each
// Run keeps the helpers off the caller's CPU (CallerCpuExclusion).

#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "engine/internal/cpu_placement.h"

namespace sepconv {
namespace internal {

class TilePool {
 public:
  // fn(task, worker): worker 0 is the caller, helpers are 1.. threads-1.
  using TaskFn = absl::FunctionRef<void(int64_t task, int worker)>;

  // The calling thread's pool (one per thread: an Executor runs on one
  // thread at a time, so two executors running at once never share one).
  static TilePool& ForThisThread();

  TilePool() = default;
  TilePool(const TilePool&) = delete;
  TilePool& operator=(const TilePool&) = delete;
  ~TilePool();

  // Runs fn for every task in [0, count) on the caller and up to threads - 1
  // helpers (started on first need); returns when all have run.
  void Run(int threads, int64_t count, TaskFn fn);

 private:
  // Claims and runs tasks of generation `generation` until none is left.
  void Work(uint64_t generation, int worker);
  void HelperLoop(int worker);
  // What a sleeping helper waits for: a generation after `seen`, or stop.
  struct Waiter {
    TilePool* pool;
    uint64_t seen;
  };
  static bool ShouldWake(Waiter* waiter);

  absl::Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int wanted_ ABSL_GUARDED_BY(mu_) = 0;  // helpers asked to join the generation
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  const TaskFn* fn_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Each worker's share of the tasks not yet claimed: [first, second).
  std::vector<std::pair<int64_t, int64_t>> ranges_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> published_{0};  // generation_, read without the lock by spinning helpers
  std::atomic<int64_t> done_{0};        // tasks of the current generation finished
  std::vector<std::thread> helpers_;    // only the owning thread touches it
  CallerCpuExclusion off_caller_;       // only the owning thread touches it
};

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_TILE_POOL_H_
