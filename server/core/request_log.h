#ifndef SEPCONV_SERVER_CORE_REQUEST_LOG_H_
#define SEPCONV_SERVER_CORE_REQUEST_LOG_H_

// One structured (logfmt) line per failed request, rate-limited by a token
// bucket so a flood of bad requests cannot fill the disk:
//
//   time=2026-11-29T12:00:00.123456Z level=warning msg="request failed"
//   status=INVALID_ARGUMENT model=sepconv version=1 peer=ipv4:127.0.0.1:40312
//   reason="input 'input': expected FP32, got INT8"
//
// (one line). Lines over the budget are counted, not written; the next line
// that is written (or the destructor) is preceded by
//   time=... level=warning msg="request log rate-limited" suppressed=N
// Every value is escaped (quotes, backslashes, control characters) and
// truncated, since model names and reasons may come from the client. The
// caller must not pass secrets (tokens) in `reason`.
//
// Thread-safe.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sepconv {

struct RequestLogOptions {
  // Sustained lines per second and how many may come at once.
  double lines_per_second = 10;
  double burst = 20;
  // Longest value written; longer ones are cut and end in "...".
  int max_value_bytes = 256;
};

struct FailedRequest {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  absl::string_view model;
  absl::string_view version;
  absl::string_view peer;
  absl::string_view reason;
};

class RequestLog {
 public:
  // Receives one line without its trailing newline.
  using Sink = std::function<void(absl::string_view line)>;
  using Clock = std::function<absl::Time()>;

  // Writes to stderr with the wall clock.
  explicit RequestLog(RequestLogOptions options = {});
  RequestLog(RequestLogOptions options, Sink sink, Clock clock);
  // Writes the pending "suppressed" summary, if any.
  ~RequestLog();

  RequestLog(const RequestLog&) = delete;
  RequestLog& operator=(const RequestLog&) = delete;

  void Failed(const FailedRequest& request);

  // Lines dropped since the last summary.
  int64_t suppressed() const;

 private:
  std::string Format(absl::Time now, const FailedRequest& request) const;
  std::string Summary(absl::Time now, int64_t suppressed) const;

  const RequestLogOptions options_;
  const Sink sink_;
  const Clock clock_;
  mutable absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time last_refill_ ABSL_GUARDED_BY(mu_);
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

// `value` as a logfmt value: bare when it is non-empty and has no space,
// '=', '"' or non-printable byte; otherwise quoted with \" \\ \n \t \xHH
// escapes. Cut to `max_bytes` input bytes (then "..." is appended).
std::string LogfmtValue(absl::string_view value, int max_bytes);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_REQUEST_LOG_H_
