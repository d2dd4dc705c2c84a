#ifndef SEPCONV_SERVER_CORE_AUTH_H_
#define SEPCONV_SERVER_CORE_AUTH_H_

// Bearer-token authentication for the inference RPCs.
//
// Tokens come from a file, one per line; blank lines and lines starting with
// '#' are ignored, surrounding whitespace is trimmed. A request is accepted
// when its `authorization` metadata is `Bearer <token>` for any loaded token.
// The comparison does not exit early: the candidate is compared against every
// token over a fixed number of bytes (the longest token's length; tokens are
// stored padded to it), so its duration depends neither on where the first
// differing byte is, nor on which token matched, nor on the tokens' or the
// candidate's lengths.
//
// Only the inference service calls CheckAuth; gRPC's health service and
// reflection are not wired through it and stay open, so probes work without a
// token. Tokens never appear in a returned status, a log line or a metric.
//
// Thread safety: all methods are thread-safe. Reload swaps the token set
// atomically; requests see either the old or the new set, never a mix.

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace sepconv {

// Parses a token file's contents. INVALID_ARGUMENT when it holds no token or a
// token contains a space or control character (the message gives the line
// number, never the token).
absl::StatusOr<std::vector<std::string>> ParseTokenFile(absl::string_view contents);

class TokenAuthenticator {
 public:
  // Reads `path` (see ParseTokenFile). NOT_FOUND / PERMISSION_DENIED /
  // INVALID_ARGUMENT name the file and the problem.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromFile(std::string path);
  // A fixed token set (tests); Reload then fails with FAILED_PRECONDITION.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromTokens(
      std::vector<std::string> tokens);

  // Re-reads the file. On error the previous tokens stay in force.
  absl::Status Reload();

  // OK when `authorization` (the header's value) is "Bearer <token>" for a
  // loaded token (scheme case-insensitive); UNAUTHENTICATED otherwise.
  absl::Status Check(absl::string_view authorization) const;

  // Tokens currently loaded (for a startup log line; never the tokens).
  int token_count() const;

 private:
  struct TokenSet {
    std::vector<std::string> tokens;  // each NUL-padded to max_length
    std::vector<size_t> lengths;      // the tokens' real lengths
    size_t max_length = 0;
  };
  TokenAuthenticator(std::string path, std::shared_ptr<const TokenSet> tokens);
  static std::shared_ptr<const TokenSet> MakeSet(std::vector<std::string> tokens);
  std::shared_ptr<const TokenSet> Current() const;

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const TokenSet> tokens_ ABSL_GUARDED_BY(mu_);
};

// Whether `a` equals `b`, reading exactly `span` bytes of each (missing bytes
// read as 0) plus their lengths, without data-dependent branches. Exposed for
// tests. `span` must be >= both sizes for a meaningful answer.
bool FixedTimeEquals(absl::string_view a, absl::string_view b, size_t span);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_CORE_AUTH_H_
