#include "engine/internal/arena.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace sepconv {
namespace internal {

char* Arena::Reserve(size_t bytes) {
  if (bytes <= capacity_ && data_ != nullptr) return data_.get();
  const size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  Release();  // the old contents are dead: free before allocating
  void* data = std::aligned_alloc(64, rounded);
  if (data == nullptr) throw std::bad_alloc();
  // Zeroed once so that blocked layouts' channel padding never starts as
  // NaN garbage (oneDNN keeps the padding it writes zero).
  std::memset(data, 0, rounded);
  data_.reset(static_cast<char*>(data));
  capacity_ = rounded;
  return data_.get();
}

}  // namespace internal
}  // namespace sepconv
