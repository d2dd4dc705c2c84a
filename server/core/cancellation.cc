#include "server/core/cancellation.h"

#include <utility>

namespace sepconv {

uint64_t Cancellation::Register(absl::AnyInvocable<void()> hook) {
  {
    absl::MutexLock lock(&mu_);
    if (!cancelled_) {
      const uint64_t id = next_id_++;
      hooks_.emplace(id, std::move(hook));
      return id;
    }
  }
  hook();
  return 0;
}

void Cancellation::Unregister(uint64_t id) {
  if (id == 0) return;
  absl::AnyInvocable<void()> removed;  // destroyed outside the lock
  absl::MutexLock lock(&mu_);
  auto it = hooks_.find(id);
  if (it == hooks_.end()) return;
  removed = std::move(it->second);
  hooks_.erase(it);
}

void Cancellation::Cancel() {
  absl::flat_hash_map<uint64_t, absl::AnyInvocable<void()>> hooks;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    cancelled_ = true;
    hooks.swap(hooks_);
  }
  for (auto& [id, hook] : hooks) hook();
}

bool Cancellation::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

}  // namespace sepconv
