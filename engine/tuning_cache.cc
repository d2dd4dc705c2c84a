#include "engine/internal/tuning_cache.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "oneapi/dnnl/dnnl.hpp"

#ifndef SEPCONV_ENGINE_VERSION
#error "engine/CMakeLists.txt defines SEPCONV_ENGINE_VERSION"
#endif

namespace sepconv {
namespace internal {
namespace {

constexpr int kFields = 6;
constexpr int64_t kMaxTileBytes = int64_t{1} << 30;
constexpr int kMaxThreads = 1 << 16;
constexpr char kHeader[] =
    "# sepconv-serve tuning cache: the plan chosen by timing for each shape, one per line:\n"
    "# machine, key, layout, fused tile bytes, threads, streamed output (tab-separated).\n"
    "# Written by the server (--tuning_cache); delete it to time every shape again.\n";

// One line of the file.
struct Line {
  std::string machine;
  TuningCacheEntry entry;
};

std::optional<ActivationLayout> LayoutNamed(absl::string_view name) {
  for (ActivationLayout layout :
       {ActivationLayout::kNhwc, ActivationLayout::kBlocked8, ActivationLayout::kBlocked16,
        ActivationLayout::kNhwcDirect, ActivationLayout::kFusedNchw}) {
    if (name == LayoutName(layout)) return layout;
  }
  return std::nullopt;
}

absl::StatusOr<Line> ParseLine(absl::string_view text) {
  const std::vector<absl::string_view> fields = absl::StrSplit(text, '\t');
  if (fields.size() != kFields) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", kFields, " tab-separated fields, found ", fields.size()));
  }
  const std::optional<ActivationLayout> layout = LayoutNamed(fields[2]);
  if (!layout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown layout '", fields[2], "' (nhwc, nChw8c, nChw16c, nhwc_direct or fused)"));
  }
  int64_t tile_bytes = 0;
  int threads = 0, stream = 0;
  if (!absl::SimpleAtoi(fields[3], &tile_bytes) || tile_bytes < 0 || tile_bytes > kMaxTileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tile bytes '", fields[3], "': expected 0 to ", kMaxTileBytes));
  }
  if (!absl::SimpleAtoi(fields[4], &threads) || threads < 1 || threads > kMaxThreads) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads '", fields[4], "': expected 1 to ", kMaxThreads));
  }
  if (!absl::SimpleAtoi(fields[5], &stream) || (stream != 0 && stream != 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("streamed output '", fields[5], "': expected 0 or 1"));
  }
  if (fields[0].empty() || fields[1].empty()) {
    return absl::InvalidArgumentError("empty machine or key");
  }
  return Line{std::string(fields[0]),
              {std::string(fields[1]), PlanChoice(*layout, tile_bytes, threads, stream == 1)}};
}

std::string Format(const Line& line) {
  const PlanChoice& c = line.entry.choice;
  return absl::StrCat(line.machine, "\t", line.entry.key, "\t", LayoutName(c.layout), "\t",
                      c.fused_tile_bytes, "\t", c.threads, "\t", c.fused_stream ? 1 : 0, "\n");
}

// Every line of the file at `path` (none if it does not exist).
absl::StatusOr<std::vector<Line>> ReadLines(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::vector<Line>();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the tuning cache ", path, ": ", std::strerror(errno)));
  }
  std::vector<Line> lines;
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    const absl::string_view stripped = absl::StripAsciiWhitespace(text);
    if (stripped.empty() || stripped.front() == '#') continue;
    absl::StatusOr<Line> line = ParseLine(text);
    if (!line.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tuning cache ", path, " line ", number, ": ", line.status().message(),
                       "; delete the file to time every shape again"));
    }
    lines.push_back(*std::move(line));
  }
  if (in.bad()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read the tuning cache ", path));
  }
  return lines;
}

// A new file for this process's rewrite of the cache at `path`, beside it:
// its descriptor (created, never an existing file or a symbolic link
// followed: the folder may be shared, as /tmp is) or -1 with errno set.
int CreateTemporary(const std::string& temporary) {
  unlink(temporary.c_str());  // a leftover of a process that had this pid
  return open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

std::string TemporaryFor(const std::string& path) { return absl::StrCat(path, ".tmp.", getpid()); }

// `text` into the file at `path` by way of a temporary file beside it,
// renamed over it.
absl::Status WriteReplacing(const std::string& path, const std::string& text) {
  const std::string temporary = TemporaryFor(path);
  const int fd = CreateTemporary(temporary);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create ", temporary, " to rewrite the tuning cache: ", std::strerror(errno)));
  }
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  const int error = written < text.size() ? errno : 0;
  if (close(fd) != 0 || error != 0) {
    const int close_error = error != 0 ? error : errno;
    unlink(temporary.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", temporary, ": ", std::strerror(close_error)));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int rename_error = errno;
    unlink(temporary.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("cannot replace the tuning cache ", path, ": ", std::strerror(rename_error)));
  }
  return absl::OkStatus();
}

// The first processor's "model name", "cpu family", "model" and "stepping".
std::string CpuDescription() {
  std::ifstream in("/proc/cpuinfo");
  std::string text, name = "unknown CPU", family = "?", model = "?", stepping = "?";
  while (std::getline(in, text)) {
    if (absl::StripAsciiWhitespace(text).empty()) break;  // the end of the first processor
    const std::pair<absl::string_view, absl::string_view> field = absl::StrSplit(text, ':');
    const absl::string_view what = absl::StripAsciiWhitespace(field.first);
    const std::string value(absl::StripAsciiWhitespace(field.second));
    if (what == "model name") name = value;
    if (what == "cpu family") family = value;
    if (what == "model") model = value;
    if (what == "stepping") stepping = value;
  }
  return absl::StrCat(name, " family ", family, " model ", model, " stepping ", stepping);
}

}  // namespace

std::string MachineFingerprint() {
  const dnnl_version_t* version = dnnl_version();
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const int allowed = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 0;
  std::string fingerprint =
      absl::StrCat(CpuDescription(), "; oneDNN ", version->major, ".", version->minor, ".",
                   version->patch, " ", EffectiveIsaName(), "; ", allowed, " CPUs; engine ",
                   SEPCONV_ENGINE_VERSION, ", tuner ", kTunerRevision);
  for (char& c : fingerprint) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return fingerprint;
}

absl::StatusOr<std::unique_ptr<TuningCache>> TuningCache::Open(std::string path,
                                                               std::string machine) {
  absl::StatusOr<std::vector<Line>> lines = ReadLines(path);
  if (!lines.ok()) return lines.status();
  // The folder must take the temporary file a Put writes.
  const std::string probe = TemporaryFor(path);
  const int fd = CreateTemporary(probe);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create files beside the tuning cache ", path, ": ", std::strerror(errno)));
  }
  close(fd);
  unlink(probe.c_str());
  std::unique_ptr<TuningCache> cache(new TuningCache(std::move(path), std::move(machine)));
  for (Line& line : *lines) {
    if (line.machine == cache->machine_) cache->entries_.push_back(std::move(line.entry));
  }
  return cache;
}

absl::Status TuningCache::Put(const std::string& key, const PlanChoice& choice) {
  absl::StatusOr<std::vector<Line>> lines = ReadLines(path_);
  if (!lines.ok()) return lines.status();
  std::string text = kHeader;
  for (const Line& line : *lines) {
    if (line.machine != machine_ || line.entry.key != key) absl::StrAppend(&text, Format(line));
  }
  absl::StrAppend(&text, Format(Line{machine_, {key, choice}}));
  return WriteReplacing(path_, text);
}

}  // namespace internal
}  // namespace sepconv
