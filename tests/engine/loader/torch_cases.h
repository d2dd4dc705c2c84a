#ifndef SEPCONV_TESTS_ENGINE_LOADER_TORCH_CASES_H_
#define SEPCONV_TESTS_ENGINE_LOADER_TORCH_CASES_H_

// The cases tests/models/export_models.py wrote (CTest fixture
// `torch_models`), read from its <dir>/cases/manifest.tsv: one line a case,
// "model version tag input_npy output_npy n c h w" separated by tabs, the
// .npy paths relative to <dir>/cases. Test-only, header-only.

#include <fstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace sepconv::testing {

struct TorchCase {
  std::string model;
  std::string version;
  std::string input_npy;   // full path
  std::string output_npy;  // full path
  std::string line;        // the manifest's line, for messages
};

// Every case of `dir`'s manifest, in its order (blank lines skipped).
// NOT_FOUND when there is no manifest; INVALID_ARGUMENT, quoting the line,
// when a line has not 9 fields.
inline absl::StatusOr<std::vector<TorchCase>> ReadTorchCases(const std::string& dir) {
  const std::string path = dir + "/cases/manifest.tsv";
  std::ifstream manifest(path);
  if (!manifest) return absl::NotFoundError(absl::StrCat("no manifest ", path));
  std::vector<TorchCase> cases;
  std::string line;
  while (std::getline(manifest, line)) {
    if (line.empty()) continue;
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() != 9) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", f.size(), " fields, not 9, in: ", line));
    }
    cases.push_back({f[0], f[1], dir + "/cases/" + f[3], dir + "/cases/" + f[4], line});
  }
  return cases;
}

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_ENGINE_LOADER_TORCH_CASES_H_
