#ifndef SEPCONV_TESTS_SERVER_SHARED_MEMORY_SHM_OBJECT_H_
#define SEPCONV_TESTS_SERVER_SHARED_MEMORY_SHM_OBJECT_H_

// A POSIX shared-memory object a test owns, as a client would create it:
// a unique key under /dev/shm, mapped read-write in the test, unlinked on
// destruction. Also: whether this process maps a key (/proc/self/maps).

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sepconv::testing {

class ShmObject {
 public:
  explicit ShmObject(size_t bytes) : bytes_(bytes) {
    static std::atomic<int> counter{0};
    key_ = "/sepconv_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
    fd_ = shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    EXPECT_GE(fd_, 0) << key_ << ": " << std::strerror(errno);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(bytes)), 0);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    EXPECT_NE(p, MAP_FAILED);
    data_ = static_cast<char*>(p);
  }
  ~ShmObject() {
    munmap(data_, bytes_);
    close(fd_);
    shm_unlink(key_.c_str());
  }
  ShmObject(const ShmObject&) = delete;
  ShmObject& operator=(const ShmObject&) = delete;

  const std::string& key() const { return key_; }
  char* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // Shrinks the object as a careless client would (the test's own mapping
  // then faults past the new end too: don't touch it there).
  void Truncate(size_t bytes) { EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(bytes)), 0); }

  void Write(size_t offset, const std::vector<float>& values) {
    std::memcpy(data_ + offset, values.data(), values.size() * sizeof(float));
  }
  std::vector<float> Read(size_t offset, size_t count) const {
    std::vector<float> values(count);
    std::memcpy(values.data(), data_ + offset, count * sizeof(float));
    return values;
  }

 private:
  std::string key_;
  size_t bytes_;
  int fd_ = -1;
  char* data_ = nullptr;
};

// How many mappings of this process come from /dev/shm`key`.
inline int MappingsOf(const std::string& key) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int count = 0;
  while (std::getline(maps, line)) {
    const std::string suffix = "/dev/shm" + key;
    if (line.size() >= suffix.size() &&
        line.compare(line.size() - suffix.size(), suffix.size(), suffix) == 0) {
      ++count;
    }
  }
  return count;
}

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_SERVER_SHARED_MEMORY_SHM_OBJECT_H_
