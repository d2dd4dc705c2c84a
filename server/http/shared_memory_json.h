#ifndef SEPCONV_SERVER_HTTP_SHARED_MEMORY_JSON_H_
#define SEPCONV_SERVER_HTTP_SHARED_MEMORY_JSON_H_

// The REST bodies of Triton's system shared-memory extension
// (docs/shared_memory.md): the register request {"key": $string,
// "offset": $number, "byte_size": $number} and the status answer
// [{"name", "key", "offset", "byte_size"}, ...]. Stateless; thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/shared_memory.h"

namespace sepconv {

struct RegisterBody {
  std::string key;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

// INVALID_ARGUMENT naming the field for a body that is not such an object
// ("key" and "byte_size" required, "offset" optional, sizes non-negative
// integers).
absl::StatusOr<RegisterBody> ParseRegisterBody(absl::string_view body);

std::string SharedMemoryStatusJson(const std::vector<SharedMemoryRegionInfo>& regions);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_SHARED_MEMORY_JSON_H_
