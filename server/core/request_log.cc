#include "server/core/request_log.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sepconv {
namespace {

// absl::StatusCodeToString gives "INVALID_ARGUMENT" etc., the gRPC names.
std::string CodeName(absl::StatusCode code) { return absl::StatusCodeToString(code); }

std::string Timestamp(absl::Time now) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", now, absl::UTCTimeZone());
}

void WriteStderr(absl::string_view line) {
  // One fwrite per line so concurrent writers do not interleave within it.
  std::string buf(line);
  buf.push_back('\n');
  std::fwrite(buf.data(), 1, buf.size(), stderr);
}

}  // namespace

std::string LogfmtValue(absl::string_view value, int max_bytes) {
  bool cut = false;
  if (max_bytes >= 0 && value.size() > static_cast<size_t>(max_bytes)) {
    value = value.substr(0, max_bytes);
    cut = true;
  }
  bool bare = !value.empty();
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '=' || c == '"' || c == '\\') bare = false;
  }
  if (bare) return cut ? absl::StrCat(value, "...") : std::string(value);
  std::string out = "\"";
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20 || u >= 0x7f) {
          absl::StrAppendFormat(&out, "\\x%02x", u);
        } else {
          out.push_back(c);
        }
    }
  }
  if (cut) out += "...";
  out += "\"";
  return out;
}

RequestLog::RequestLog(RequestLogOptions options)
    : RequestLog(options, WriteStderr, [] { return absl::Now(); }) {}

RequestLog::RequestLog(RequestLogOptions options, Sink sink, Clock clock)
    : options_(options),
      sink_(std::move(sink)),
      clock_(std::move(clock)),
      tokens_(options.burst),
      last_refill_(clock_()) {}

RequestLog::~RequestLog() {
  absl::MutexLock lock(&mu_);
  if (suppressed_ > 0) sink_(Summary(clock_(), suppressed_));
}

std::string RequestLog::Format(absl::Time now, const FailedRequest& request) const {
  const int max = options_.max_value_bytes;
  return absl::StrCat(
      "time=", Timestamp(now),
      " level=warning msg=\"request failed\" status=", CodeName(request.code),
      " model=", LogfmtValue(request.model, max), " version=", LogfmtValue(request.version, max),
      " peer=", LogfmtValue(request.peer, max), " reason=", LogfmtValue(request.reason, max));
}

std::string RequestLog::Summary(absl::Time now, int64_t suppressed) const {
  return absl::StrCat("time=", Timestamp(now),
                      " level=warning msg=\"request log rate-limited\" suppressed=", suppressed);
}

void RequestLog::Failed(const FailedRequest& request) {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - last_refill_));
  tokens_ = std::min(options_.burst, tokens_ + elapsed * options_.lines_per_second);
  last_refill_ = std::max(last_refill_, now);
  if (tokens_ < 1.0) {
    ++suppressed_;
    return;
  }
  tokens_ -= 1.0;
  // Written under the lock so the summary and lines keep their order; the
  // budget bounds how often this happens.
  if (suppressed_ > 0) {
    sink_(Summary(now, suppressed_));
    suppressed_ = 0;
  }
  sink_(Format(now, request));
}

int64_t RequestLog::suppressed() const {
  absl::MutexLock lock(&mu_);
  return suppressed_;
}

}  // namespace sepconv
