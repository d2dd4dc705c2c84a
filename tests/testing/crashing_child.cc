// A child process that goes wrong on purpose, for child_process_test: it writes
// kLines numbered lines to stderr, then, by its one argument:
//   ok              exits 0
//   exit3           exits 3
//   abort           aborts (SIGABRT)
//   use-after-free  reads freed heap memory (only built into the sanitizer
//                   build, where AddressSanitizer reports it and ends it)
// and last writes "last words" (unless it died first).

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kLines = 2000;

#ifdef SEPCONV_CHILD_USE_AFTER_FREE
// Not inlined, so that its name is in the report's stack.
__attribute__((noinline)) int UseFreedMemory() {
  int* p = new int[4]{1, 2, 3, 4};
  int* volatile freed = p;  // hides the use below from the compiler's warning
  delete[] p;
  return freed[2];
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: crashing_child ok|exit3|abort|use-after-free\n");
    return 2;
  }
  for (int i = 1; i <= kLines; ++i) std::fprintf(stderr, "child stderr line %d of %d\n", i, kLines);
  std::fflush(stderr);
  const char* mode = argv[1];
  int code = 0;
  if (std::strcmp(mode, "exit3") == 0) {
    code = 3;
  } else if (std::strcmp(mode, "abort") == 0) {
    std::abort();
#ifdef SEPCONV_CHILD_USE_AFTER_FREE
  } else if (std::strcmp(mode, "use-after-free") == 0) {
    code = UseFreedMemory() == 3 ? 0 : 4;
#endif
  } else if (std::strcmp(mode, "ok") != 0) {
    std::fprintf(stderr, "unknown mode '%s'\n", mode);
    return 2;
  }
  std::fprintf(stderr, "last words\n");
  return code;
}
