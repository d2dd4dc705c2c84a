#include "engine/internal/tile_pool.h"

#include <immintrin.h>
#include <pthread.h>
#include <sched.h>

#include <memory>

namespace sepconv {
namespace internal {
namespace {

// Pause-instruction spins (tens of microseconds) a waiting thread polls
// before it sleeps (a helper) or yields its CPU (the caller).
constexpr int kSpins = 4000;

}  // namespace

TilePool& TilePool::ForThisThread() {
  thread_local TilePool pool;
  return pool;
}

TilePool::~TilePool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& helper : helpers_) helper.join();
}

void TilePool::Run(int threads, int64_t count, TaskFn fn) {
  if (threads <= 1 || count <= 1) {
    for (int64_t task = 0; task < count; ++task) fn(task, 0);
    return;
  }
  const int helpers = threads - 1;
  while (static_cast<int>(helpers_.size()) < helpers) {
    const int worker = static_cast<int>(helpers_.size()) + 1;
    helpers_.emplace_back([this, worker] { HelperLoop(worker); });
    off_caller_.Reset();  // the new helper may run anywhere
  }
  if (const cpu_set_t* cpus = off_caller_.Changed()) {
    // A failure (the process's CPUs changed since) leaves the helper where
    // it may run, as without this.
    for (std::thread& helper : helpers_) {
      pthread_setaffinity_np(helper.native_handle(), sizeof(*cpus), cpus);
    }
  }
  uint64_t generation;
  {
    absl::MutexLock lock(&mu_);
    fn_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    wanted_ = helpers < count - 1 ? helpers : static_cast<int>(count - 1);
    const int64_t workers = wanted_ + 1;
    ranges_.resize(static_cast<size_t>(workers));
    for (int64_t w = 0; w < workers; ++w) {
      ranges_[w] = {count * w / workers, count * (w + 1) / workers};
    }
    generation = ++generation_;
    published_.store(generation, std::memory_order_release);
  }
  Work(generation, 0);
  // Only tasks a helper claimed are left: wait for them, not for helpers.
  for (int spin = 0; done_.load(std::memory_order_acquire) < count; ++spin) {
    if (spin < kSpins) {
      _mm_pause();
    } else {
      std::this_thread::yield();
    }
  }
}

void TilePool::Work(uint64_t generation, int worker) {
  for (;;) {
    const TaskFn* fn;
    int64_t task;
    {
      absl::MutexLock lock(&mu_);
      if (generation_ != generation) return;
      std::pair<int64_t, int64_t>* own = &ranges_[worker];
      if (own->first < own->second) {
        task = own->first++;
      } else {
        // Its own share done: the last task of the share with most left.
        std::pair<int64_t, int64_t>* most = nullptr;
        int64_t most_left = 0;
        for (std::pair<int64_t, int64_t>& r : ranges_) {
          if (r.second - r.first > most_left) {
            most = &r;
            most_left = r.second - r.first;
          }
        }
        if (most == nullptr) return;
        task = --most->second;
      }
      fn = fn_;  // valid until done_ reaches the run's count, which needs this task
    }
    (*fn)(task, worker);
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

bool TilePool::ShouldWake(Waiter* waiter) {
  TilePool& pool = *waiter->pool;
  pool.mu_.AssertHeld();
  return pool.stop_ || pool.generation_ != waiter->seen;
}

void TilePool::HelperLoop(int worker) {
  Waiter waiter{this, 0};
  for (;;) {
    for (int spin = 0; spin < kSpins && published_.load(std::memory_order_acquire) == waiter.seen;
         ++spin) {
      _mm_pause();
    }
    bool join;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&TilePool::ShouldWake, &waiter));
      if (stop_) return;
      waiter.seen = generation_;
      join = worker <= wanted_;
    }
    if (join) Work(waiter.seen, worker);
  }
}

}  // namespace internal
}  // namespace sepconv
