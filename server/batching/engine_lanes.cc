#include "server/batching/engine_lanes.h"

#include <pthread.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace sepconv {

struct EngineLanes::Task {
  explicit Task(absl::FunctionRef<void()> f) : fn(f) {}
  absl::FunctionRef<void()> fn;
  bool done = false;  // guarded by its lane's mu
};

struct EngineLanes::Lane {
  absl::Mutex mu;
  std::deque<Task*> tasks ABSL_GUARDED_BY(mu);
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::thread thread;
};

EngineLanes& EngineLanes::Shared() {
  static EngineLanes* const lanes = new EngineLanes;
  return *lanes;
}

EngineLanes::EngineLanes() = default;

EngineLanes::~EngineLanes() {
  absl::MutexLock lock(&mu_);
  for (std::unique_ptr<Lane>& lane : lanes_) {
    {
      absl::MutexLock lane_lock(&lane->mu);
      lane->stop = true;
    }
    lane->thread.join();
  }
}

EngineLanes::Lane& EngineLanes::GetLane(int index) {
  absl::MutexLock lock(&mu_);
  while (static_cast<int>(lanes_.size()) <= index) {
    auto lane = std::make_unique<Lane>();
    Lane* raw = lane.get();
    lane->thread = std::thread([raw] { Loop(raw); });
    // OpenMP's threads, started from this one, take its name too.
    const std::string name = absl::StrCat("sepconv-lane", lanes_.size());
    pthread_setname_np(lane->thread.native_handle(), name.c_str());
    lanes_.push_back(std::move(lane));
  }
  return *lanes_[index];
}

void EngineLanes::Run(int index, absl::FunctionRef<void()> fn) {
  Lane& lane = GetLane(index);
  Task task(fn);
  absl::MutexLock lock(&lane.mu);
  lane.tasks.push_back(&task);
  lane.mu.Await(absl::Condition(&task.done));
}

int EngineLanes::Waiting(int index) {
  Lane& lane = GetLane(index);
  absl::MutexLock lock(&lane.mu);
  return static_cast<int>(lane.tasks.size());
}

void EngineLanes::Loop(Lane* lane) {
  auto has_work = [lane]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lane->mu) {
    return lane->stop || !lane->tasks.empty();
  };
  for (;;) {
    Task* task;
    {
      absl::MutexLock lock(&lane->mu);
      lane->mu.Await(absl::Condition(&has_work));
      if (lane->tasks.empty()) return;  // stopped, nothing left
      task = lane->tasks.front();
      lane->tasks.pop_front();
    }
    task->fn();
    absl::MutexLock lock(&lane->mu);
    task->done = true;
  }
}

}  // namespace sepconv
