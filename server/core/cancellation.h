#ifndef SEPCONV_SERVER_CORE_CANCELLATION_H_
#define SEPCONV_SERVER_CORE_CANCELLATION_H_

// A one-shot cancellation event that delivers itself: whoever must react to
// a cancel registers a hook, and Cancel runs every registered hook once.
// Protocol-free (the gRPC reactors call Cancel from their OnCancel; the
// inference path registers a hook that takes its job out of the queue).
//
// Thread-safe. Hooks run outside the internal lock, on the thread calling
// Cancel (or Register, when already cancelled), so a hook may call back into
// this object (e.g. Unregister) and may take other locks.

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace sepconv {

class Cancellation {
 public:
  Cancellation() = default;
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  // Registers `hook` to run once when Cancel is called and returns its id
  // (never 0). If Cancel has already been called, runs `hook` at once, on
  // this thread, and returns 0.
  uint64_t Register(absl::AnyInvocable<void()> hook);

  // Removes the hook with this id if it has not run; 0 or an unknown id is a
  // no-op. A hook being run by a concurrent Cancel may still be running when
  // Unregister returns.
  void Unregister(uint64_t id);

  // Marks this cancelled and runs every registered hook once. Idempotent:
  // later calls do nothing.
  void Cancel();

  bool cancelled() const;

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, absl::AnyInvocable<void()>> hooks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_CANCELLATION_H_
