#ifndef SEPCONV_ENGINE_INTERNAL_ARENA_H_
#define SEPCONV_ENGINE_INTERNAL_ARENA_H_

// One executor's working memory: a single grow-only buffer that every plan
// of the executor runs in (its activations, depthwise output and oneDNN
// scratchpad), since an executor runs one plan at a time. Not thread-safe:
// it belongs to one Executor.

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace sepconv {
namespace internal {

class Arena {
 public:
  // At least `bytes` of 64-byte-aligned memory. Grows (to exactly what is
  // asked, rounded to 64 bytes, from malloc; from 2 MiB on, rounded to and
  // aligned on 2 MiB huge pages, a mapping of its own advised with
  // MADV_HUGEPAGE) when needed: the address then changes and the contents
  // are lost; the new memory is zeroed. Throws std::bad_alloc.
  char* Reserve(size_t bytes);

  // Frees the memory; the next Reserve allocates what it asks for.
  void Release() {
    data_.reset();
    capacity_ = 0;
  }

  size_t capacity() const { return capacity_; }

 private:
  // Gives back what Reserve took: to malloc (`mapped` 0), or `mapped` bytes
  // to the system. (No member initializer: unique_ptr value-initializes it.)
  struct Free {
    size_t mapped;
    void operator()(char* data) const;
  };
  std::unique_ptr<char, Free> data_;
  size_t capacity_ = 0;
};

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_ARENA_H_
