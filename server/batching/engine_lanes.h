#ifndef SEPCONV_SERVER_BATCHING_ENGINE_LANES_H_
#define SEPCONV_SERVER_BATCHING_ENGINE_LANES_H_

// The threads every served model's engine runs on, one process-wide set:
// worker i of each model's scheduler creates, warms and runs its executor on
// lane i (see SchedulerOptions::lanes), so the process has one engine thread
// per lane however many models it serves.
//
// Why: OpenMP (libgomp, which oneDNN runs on) keeps a thread pool per thread
// that starts parallel regions, and counts the threads of every pool. Once
// they outnumber the CPUs, its idle threads spin 100 times instead of about
// 300,000 and then sleep, so every later parallel region wakes them through
// the kernel. With a worker per model, two models that ran oneDNN plans on 2
// threads were enough on 2 CPUs: the MobileNet body, served by oneDNN on 2
// threads of an AVX2 EPYC, switched context 51 times per request (1 alone in
// its server) and took 9.7 ms of compute against 7.7.
//
// The price: calls for one lane run one after another, so models that share
// a lane take turns instead of splitting its CPUs (a request may wait for
// another model's batch), and each call hands its work to the lane's thread
// and back.

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace sepconv {

class EngineLanes {
 public:
  // The process's lanes (never destroyed: their threads live until exit).
  static EngineLanes& Shared();

  EngineLanes();
  EngineLanes(const EngineLanes&) = delete;
  EngineLanes& operator=(const EngineLanes&) = delete;
  // Joins the lanes' threads; no Run may be in progress.
  ~EngineLanes();

  // Runs `fn` on lane `lane`'s thread (started on its first call) and
  // returns when it has run. Calls for one lane run one at a time, in the
  // order they came. `fn` must not throw, nor call Run for its own lane.
  void Run(int lane, absl::FunctionRef<void()> fn);

  // Calls for lane `lane` waiting for it, not yet running (for tests).
  int Waiting(int lane);

 private:
  struct Task;
  struct Lane;
  Lane& GetLane(int lane);
  static void Loop(Lane* lane);

  absl::Mutex mu_;
  std::vector<std::unique_ptr<Lane>> lanes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_BATCHING_ENGINE_LANES_H_
