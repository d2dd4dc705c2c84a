#include "client/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sepconv::client {
namespace {

constexpr size_t kMaxKeyChars = 200;

// The status of a failed system call on `key` (errno `error`).
absl::Status SystemError(const char* call, const std::string& key, int error) {
  const std::string message = absl::StrCat(call, "('", key, "'): ", std::strerror(error));
  switch (error) {
    case EEXIST:
      return absl::AlreadyExistsError(
          absl::StrCat("shared-memory object '", key, "' already exists"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EFBIG:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace

absl::Status SharedMemoryRegion::ValidateKey(const std::string& key) {
  if (key.size() < 2 || key[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared-memory key '", key, "' must be '/' followed by a name, e.g. '/my_region'"));
  }
  if (key.size() - 1 > kMaxKeyChars) {
    return absl::InvalidArgumentError(absl::StrCat("shared-memory key of ", key.size() - 1,
                                                   " characters; at most ", kMaxKeyChars));
  }
  if (key == "/." || key == "/..") {
    return absl::InvalidArgumentError(absl::StrCat("shared-memory key '", key, "' is not a name"));
  }
  for (size_t i = 1; i < key.size(); ++i) {
    const char c = key[i];
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '-';
    if (!plain) {
      return absl::InvalidArgumentError(absl::StrCat("shared-memory key '", key,
                                                     "' has a character other than [A-Za-z0-9._-]",
                                                     " after its leading '/'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SharedMemoryRegion> SharedMemoryRegion::Create(const std::string& key,
                                                              int64_t byte_size) {
  if (absl::Status valid = ValidateKey(key); !valid.ok()) return valid;
  if (byte_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared-memory region '", key, "' of ", byte_size, " bytes; at least 1"));
  }
  const int fd = shm_open(key.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return SystemError("shm_open", key, errno);
  // From here on the object is ours: any failure unlinks it.
  auto fail = [&](const char* call, int error) {
    close(fd);
    shm_unlink(key.c_str());
    return SystemError(call, key, error);
  };
  if (ftruncate(fd, byte_size) != 0) return fail("ftruncate", errno);
  // Reserves the pages now: a tmpfs that cannot hold them says so here (a
  // sparse object would SIGBUS whichever process touched a missing page).
  if (const int error = posix_fallocate(fd, 0, byte_size); error != 0) {
    return fail("posix_fallocate", error);
  }
  void* data =
      mmap(nullptr, static_cast<size_t>(byte_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) return fail("mmap", errno);
  close(fd);  // the mapping keeps the object open
  return SharedMemoryRegion(key, static_cast<char*>(data), byte_size);
}

SharedMemoryRegion::~SharedMemoryRegion() { Release(); }

SharedMemoryRegion::SharedMemoryRegion(SharedMemoryRegion&& other) noexcept
    : key_(std::move(other.key_)), data_(other.data_), byte_size_(other.byte_size_) {
  other.key_.clear();
  other.data_ = nullptr;
  other.byte_size_ = 0;
}

SharedMemoryRegion& SharedMemoryRegion::operator=(SharedMemoryRegion&& other) noexcept {
  if (this != &other) {
    Release();
    key_ = std::move(other.key_);
    data_ = other.data_;
    byte_size_ = other.byte_size_;
    other.key_.clear();
    other.data_ = nullptr;
    other.byte_size_ = 0;
  }
  return *this;
}

void SharedMemoryRegion::Release() {
  if (data_ == nullptr) return;
  munmap(data_, static_cast<size_t>(byte_size_));
  shm_unlink(key_.c_str());
  data_ = nullptr;
  key_.clear();
  byte_size_ = 0;
}

}  // namespace sepconv::client
