#ifndef SEPCONV_SERVER_BATCHING_INTERNAL_CLOCK_H_
#define SEPCONV_SERVER_BATCHING_INTERNAL_CLOCK_H_

// The time source of the scheduler: real time in production, a fake one in
// tests so that batching delays and deadlines are deterministic.

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sepconv {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Blocks on `cv` (with `mu` held, as absl::CondVar::Wait) until it is
  // signalled or this clock reaches `deadline`. May return early; callers
  // re-check their condition.
  virtual void WaitUntil(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) const = 0;

  // The process-wide real-time clock.
  static Clock* Real();
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void WaitUntil(absl::CondVar* cv, absl::Mutex* mu, absl::Time deadline) const override {
    if (deadline == absl::InfiniteFuture()) {
      cv->Wait(mu);
    } else {
      cv->WaitWithDeadline(mu, deadline);
    }
  }
};

inline Clock* Clock::Real() {
  static RealClock* const clock = new RealClock();
  return clock;
}

}  // namespace sepconv

#endif  // SEPCONV_SERVER_BATCHING_INTERNAL_CLOCK_H_
