#include "tests/testing/exposition.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace sepconv::testing {
namespace {

// Parses `l1="v1",l2="v2"` (values without escapes, which ours never need).
bool ParseLabels(absl::string_view text, SampleLabels* labels) {
  while (!text.empty()) {
    const size_t eq = text.find("=\"");
    if (eq == absl::string_view::npos) return false;
    const size_t close = text.find('"', eq + 2);
    if (close == absl::string_view::npos) return false;
    (*labels)[std::string(text.substr(0, eq))] = std::string(text.substr(eq + 2, close - eq - 2));
    text.remove_prefix(close + 1);
    absl::ConsumePrefix(&text, ",");
  }
  return true;
}

bool ParseValue(absl::string_view text, double* value) {
  if (text == "+Inf") {
    *value = HUGE_VAL;
    return true;
  }
  return absl::SimpleAtod(text, value);
}

}  // namespace

absl::StatusOr<Exposition> Exposition::Parse(absl::string_view text) {
  Exposition result;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      if (parts.size() != 2) return absl::InvalidArgumentError(absl::StrCat("bad TYPE: ", line));
      result.types_[parts[0]] = parts[1];
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    std::string name;
    SampleLabels labels;
    absl::string_view rest;
    const size_t brace = line.find('{');
    if (brace != absl::string_view::npos) {
      const size_t close = line.rfind('}');
      if (close == absl::string_view::npos || close < brace ||
          !ParseLabels(line.substr(brace + 1, close - brace - 1), &labels)) {
        return absl::InvalidArgumentError(absl::StrCat("bad labels: ", line));
      }
      name = std::string(line.substr(0, brace));
      rest = line.substr(close + 1);
    } else {
      const size_t space = line.find(' ');
      if (space == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat("no value: ", line));
      }
      name = std::string(line.substr(0, space));
      rest = line.substr(space);
    }
    // The value, optionally followed by a timestamp.
    std::vector<absl::string_view> fields = absl::StrSplit(rest, ' ', absl::SkipEmpty());
    double value = 0;
    if (fields.empty() || !ParseValue(fields[0], &value)) {
      return absl::InvalidArgumentError(absl::StrCat("bad value: ", line));
    }
    if (!result.samples_.emplace(std::make_pair(name, labels), value).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate sample: ", line));
    }
  }
  return result;
}

std::optional<double> Exposition::Value(const std::string& name, const SampleLabels& labels) const {
  auto it = samples_.find({name, labels});
  if (it == samples_.end()) return std::nullopt;
  return it->second;
}

std::string Exposition::Type(const std::string& family) const {
  auto it = types_.find(family);
  return it == types_.end() ? "" : it->second;
}

int Exposition::Count(const std::string& name) const {
  int count = 0;
  for (const auto& [key, value] : samples_) count += key.first == name ? 1 : 0;
  return count;
}

int Exposition::CountMatching(const SampleLabels& labels) const {
  int count = 0;
  for (const auto& [key, value] : samples_) {
    bool all = true;
    for (const auto& [name, wanted] : labels) {
      auto it = key.second.find(name);
      all = all && it != key.second.end() && it->second == wanted;
    }
    count += all ? 1 : 0;
  }
  return count;
}

std::vector<std::pair<double, double>> Exposition::Buckets(const std::string& name,
                                                           const SampleLabels& labels) const {
  std::vector<std::pair<double, double>> buckets;
  const std::string bucket_name = name + "_bucket";
  for (const auto& [key, value] : samples_) {
    if (key.first != bucket_name) continue;
    SampleLabels rest = key.second;
    auto le = rest.find("le");
    if (le == rest.end()) continue;
    double bound = 0;
    if (!ParseValue(le->second, &bound)) continue;
    rest.erase(le);
    if (rest == labels) buckets.emplace_back(bound, value);
  }
  std::sort(buckets.begin(), buckets.end());
  return buckets;
}

}  // namespace sepconv::testing
