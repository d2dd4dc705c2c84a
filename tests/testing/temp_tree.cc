#include "tests/testing/temp_tree.h"

#include <fstream>
#include <system_error>

#include "gtest/gtest.h"

namespace sepconv::testing {

namespace fs = std::filesystem;

TempTree::TempTree(const std::string& prefix) {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = test != nullptr ? test->name() : "no_test";
  for (char& c : name) {
    if (c == '/') c = '_';  // parameterized tests are named "Name/0"
  }
  path_ = fs::path(::testing::TempDir()) / (prefix + name);
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempTree::~TempTree() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void TempTree::Write(const std::string& relative, const std::string& bytes) const {
  const fs::path path = path_ / relative;
  fs::create_directories(path.parent_path());
  const fs::path tmp = path.string() + ".tmp";
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << bytes;
  fs::rename(tmp, path);
}

}  // namespace sepconv::testing
