#ifndef SEPCONV_CLIENT_SHARED_MEMORY_H_
#define SEPCONV_CLIENT_SHARED_MEMORY_H_

// The client's side of Triton's system shared-memory extension: a POSIX
// shared-memory object this process creates and maps, for a server on the
// same host to map too once the object is registered with it
// (Client::RegisterSystemSharedMemory). Inference then names the region
// (InferOptions::input_shared_memory / output_shared_memory) instead of
// carrying the tensors.
//
// Thread safety: the object is immutable after Create; the bytes behind
// data() are not synchronised (the caller must not write an input a request
// in flight reads, nor read an output before its request has been answered).

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sepconv::client {

class SharedMemoryRegion {
 public:
  // Creates the shared-memory object `key` of `byte_size` bytes (mode 0600,
  // zero-filled, its pages reserved: a full /dev/shm fails here rather than
  // with SIGBUS on first touch) and maps it read-write. `key` is a POSIX
  // shared-memory name: "/" then 1 to 200 of [A-Za-z0-9._-], not "/." or
  // "/.." (INVALID_ARGUMENT otherwise). ALREADY_EXISTS when an object of that
  // name exists (this never opens or truncates someone else's);
  // INVALID_ARGUMENT for a byte_size < 1; RESOURCE_EXHAUSTED when the memory
  // is not there; PERMISSION_DENIED / INTERNAL for other system errors, which
  // leave nothing behind.
  static absl::StatusOr<SharedMemoryRegion> Create(const std::string& key, int64_t byte_size);

  // Whether `key` is a name Create accepts; the error says why not.
  static absl::Status ValidateKey(const std::string& key);

  // Unmaps and unlinks the object (a server that has it mapped keeps its
  // mapping until it unregisters it; the name is gone at once).
  ~SharedMemoryRegion();
  SharedMemoryRegion(SharedMemoryRegion&& other) noexcept;
  SharedMemoryRegion& operator=(SharedMemoryRegion&& other) noexcept;
  SharedMemoryRegion(const SharedMemoryRegion&) = delete;
  SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;

  // The object's name, as RegisterSystemSharedMemory wants it. Empty once
  // moved from.
  const std::string& key() const { return key_; }
  // The mapping: byte_size() bytes, page-aligned. Null once moved from.
  char* data() const { return data_; }
  int64_t byte_size() const { return byte_size_; }

 private:
  SharedMemoryRegion(std::string key, char* data, int64_t byte_size)
      : key_(std::move(key)), data_(data), byte_size_(byte_size) {}
  void Release();

  std::string key_;
  char* data_ = nullptr;
  int64_t byte_size_ = 0;
};

}  // namespace sepconv::client

#endif  // SEPCONV_CLIENT_SHARED_MEMORY_H_
