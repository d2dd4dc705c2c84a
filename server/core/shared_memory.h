#ifndef SEPCONV_SERVER_CORE_SHARED_MEMORY_H_
#define SEPCONV_SERVER_CORE_SHARED_MEMORY_H_

// Triton's system shared-memory extension, protocol-free: the regions a
// client on the same host registers (a POSIX shared-memory object, an offset
// and a size) and the leases inference requests take on them, so that the
// engine reads an input from and writes an output into the client's memory
// with no copy of its own. Both frontends serve the same registry (region
// names are per server). docs/shared_memory.md is the user's guide.
//
// Safety against a careless or hostile client:
// - keys are plain names ("/name" or "name": no other '/', not "." or
//   ".."), opened with shm_open (so only under /dev/shm, never following a
//   symlink), and must be regular files at least offset + byte_size long;
// - every range is checked against the region without overflow;
// - a region is mapped once, with the size taken at register time; Unregister
//   first hides it from new requests, then waits for the requests holding a
//   lease, then unmaps: nothing is unmapped under a running request, and
//   nothing stays mapped once Unregister returns;
// - a client that truncates its object while a request uses it cannot crash
//   the server: each lease checks the object's size when taken, and a SIGBUS
//   on a registered mapping (the object shrank after that check) is caught by
//   a handler that maps zero pages over the lost part and marks the region
//   broken, so the request fails (FAILED_PRECONDITION) and the region refuses
//   later requests until it is registered again. Other SIGBUSes go on to the
//   handler that was installed before (or the default: the process dies).
// - limits on the number of regions and the bytes registered
//   (RESOURCE_EXHAUSTED past them).
//
// Thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace sepconv {

// The most regions a process can have mapped (each takes a slot the SIGBUS
// handler reads).
inline constexpr int kMaxSharedMemoryRegions = 4096;

// Why a request or a control call that needs the extension is refused when
// it is off.
inline constexpr char kSharedMemoryOff[] =
    "system shared memory is off on this server (start it with --allow_shared_memory)";

struct SharedMemoryOptions {
  // Regions registered at once (at most kMaxSharedMemoryRegions); 0 turns
  // the extension off (register answers UNAVAILABLE, frontends do not list it).
  int max_regions = 64;
  // Sum of the registered regions' byte sizes (address space mapped).
  uint64_t max_bytes = uint64_t{16} << 30;
};

// One registered region as Triton's status reports it.
struct SharedMemoryRegionInfo {
  std::string name;
  std::string key;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

// A tensor's place in a region: Triton's shared_memory_region,
// shared_memory_offset (into the region) and shared_memory_byte_size.
struct SharedMemoryRef {
  std::string region;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

namespace internal {
class SharedMemoryRegion;
}

// A request's hold on a range of a region: the range stays mapped while the
// lease lives. Move-only.
class SharedMemoryLease {
 public:
  SharedMemoryLease() = default;
  SharedMemoryLease(SharedMemoryLease&& other) noexcept;
  SharedMemoryLease& operator=(SharedMemoryLease&& other) noexcept;
  SharedMemoryLease(const SharedMemoryLease&) = delete;
  SharedMemoryLease& operator=(const SharedMemoryLease&) = delete;
  ~SharedMemoryLease();

  char* data() const { return data_; }
  uint64_t byte_size() const { return byte_size_; }
  // OK while the range still holds what the client wrote and will see what
  // the server writes: FAILED_PRECONDITION once the object shrank below it
  // (checked now) or a SIGBUS was caught on the region.
  absl::Status CheckIntact() const;
  // Whether this lease's range and `other`'s share a byte of the same
  // shared-memory object (through any regions).
  bool Overlaps(const SharedMemoryLease& other) const;

 private:
  friend class SharedMemoryRegistry;
  void Release();

  std::shared_ptr<internal::SharedMemoryRegion> region_;
  char* data_ = nullptr;
  uint64_t byte_size_ = 0;
  uint64_t object_offset_ = 0;  // where data_ is in the object
};

class SharedMemoryRegistry {
 public:
  explicit SharedMemoryRegistry(SharedMemoryOptions options = {});
  ~SharedMemoryRegistry();  // unregisters every region
  SharedMemoryRegistry(const SharedMemoryRegistry&) = delete;
  SharedMemoryRegistry& operator=(const SharedMemoryRegistry&) = delete;

  bool enabled() const { return options_.max_regions > 0; }

  // Maps [offset, offset + byte_size) of the object `key` as region `name`.
  // INVALID_ARGUMENT for an empty or overlong name, a key that is not a
  // plain name, a zero size or a range past the object's end; NOT_FOUND for
  // a key with no object; ALREADY_EXISTS for a name in use;
  // RESOURCE_EXHAUSTED past the limits; UNAVAILABLE when the extension is off.
  absl::Status Register(const std::string& name, const std::string& key, uint64_t offset,
                        uint64_t byte_size);
  // Unregisters `name` (empty: every region), waiting for the requests that
  // hold a lease on it. An unknown name is OK (nothing to do), as in Triton.
  absl::Status Unregister(const std::string& name);
  // The regions (empty name: all, by name); NOT_FOUND for an unknown name.
  absl::StatusOr<std::vector<SharedMemoryRegionInfo>> Status(const std::string& name) const;

  // A lease on `ref`'s range, for a tensor of `tensor_bytes` bytes (the
  // range must hold exactly that much; `at_least` accepts a larger one, as
  // for outputs). `what` names the tensor in messages ("input 'input'").
  // INVALID_ARGUMENT for an unknown region or a range outside it,
  // FAILED_PRECONDITION for a broken or truncated region.
  absl::StatusOr<SharedMemoryLease> Acquire(const SharedMemoryRef& ref, uint64_t tensor_bytes,
                                            bool at_least, const std::string& what) const;

 private:
  const SharedMemoryOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<internal::SharedMemoryRegion>> regions_
      ABSL_GUARDED_BY(mu_);
  uint64_t registered_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_SHARED_MEMORY_H_
