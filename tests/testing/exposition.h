#ifndef SEPCONV_TESTS_TESTING_EXPOSITION_H_
#define SEPCONV_TESTS_TESTING_EXPOSITION_H_

// A minimal parser of the Prometheus text exposition format for tests: maps
// each sample (name + sorted labels) to its value, and each family name to
// its "# TYPE".

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sepconv::testing {

using SampleLabels = std::map<std::string, std::string>;

class Exposition {
 public:
  // Errors on any line that is not a comment, blank, or `name{l="v",...} value`.
  static absl::StatusOr<Exposition> Parse(absl::string_view text);

  // The value of one sample, or nullopt if there is none.
  std::optional<double> Value(const std::string& name, const SampleLabels& labels) const;
  // "counter", "gauge", "histogram", ... or "" if the family has no TYPE line.
  std::string Type(const std::string& family) const;
  // Samples whose name is `name` (any labels).
  int Count(const std::string& name) const;
  // Samples of any name whose labels include all of `labels`.
  int CountMatching(const SampleLabels& labels) const;
  // The `<name>_bucket` samples with `labels` (plus `le`), as (upper bound,
  // cumulative count) in increasing bound order, +Inf last.
  std::vector<std::pair<double, double>> Buckets(const std::string& name,
                                                 const SampleLabels& labels) const;

 private:
  std::map<std::pair<std::string, SampleLabels>, double> samples_;
  std::map<std::string, std::string> types_;
};

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_EXPOSITION_H_
