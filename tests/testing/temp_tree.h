#ifndef SEPCONV_TESTS_TESTING_TEMP_TREE_H_
#define SEPCONV_TESTS_TESTING_TEMP_TREE_H_

// A folder of files of the current test's own (a model repository, a fake
// /proc and /sys, ...). Not thread-safe.

#include <filesystem>
#include <string>

namespace sepconv::testing {

class TempTree {
 public:
  // ::testing::TempDir()/<prefix><current test's name>, emptied; construct
  // it while a test runs (e.g. as a fixture member). Removed on destruction.
  explicit TempTree(const std::string& prefix);
  ~TempTree();
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes `bytes` to path()/`relative`, creating its folders; atomically
  // (a temp file renamed into place), as a deployment would.
  void Write(const std::string& relative, const std::string& bytes) const;

 private:
  std::filesystem::path path_;
};

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_TEMP_TREE_H_
