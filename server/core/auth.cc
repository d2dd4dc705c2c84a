#include "server/core/auth.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace sepconv {
namespace {

constexpr absl::string_view kBearer = "bearer ";

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string what = absl::StrCat("cannot read token file ", path, ": ", strerror(err));
    if (err == EACCES) return absl::PermissionDeniedError(what);
    return absl::NotFoundError(what);
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading token file ", path));
  return contents.str();
}

// Like FixedTimeEquals, against a token stored NUL-padded to `padded.size()`
// bytes with its real length `length`: the loop then branches only on the
// candidate's (public) length, not on the token's.
bool PaddedEquals(absl::string_view candidate, absl::string_view padded, size_t length) {
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < padded.size(); ++i) {
    const unsigned char x = i < candidate.size() ? static_cast<unsigned char>(candidate[i]) : 0;
    diff = diff | static_cast<unsigned char>(x ^ static_cast<unsigned char>(padded[i]));
  }
  const size_t length_diff = candidate.size() ^ length;
  return (diff | static_cast<unsigned char>(length_diff != 0)) == 0;
}

}  // namespace

bool FixedTimeEquals(absl::string_view a, absl::string_view b, size_t span) {
  // Every byte position up to `span` is visited for both strings; the only
  // branches depend on the lengths, which are the caller's (public) input or
  // the configured span, never on the secret bytes.
  volatile unsigned char diff = (a.size() != b.size()) ? 1 : 0;
  for (size_t i = 0; i < span; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = diff | static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

absl::StatusOr<std::vector<std::string>> ParseTokenFile(absl::string_view contents) {
  std::vector<std::string> tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    for (char c : line) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7f) {
        return absl::InvalidArgumentError(absl::StrCat(
            "token file line ", line_number, ": a token may not contain spaces or control chars"));
      }
    }
    tokens.emplace_back(line);
  }
  if (tokens.empty()) return absl::InvalidArgumentError("token file holds no token");
  return tokens;
}

TokenAuthenticator::TokenAuthenticator(std::string path, std::shared_ptr<const TokenSet> tokens)
    : path_(std::move(path)), tokens_(std::move(tokens)) {}

std::shared_ptr<const TokenAuthenticator::TokenSet> TokenAuthenticator::MakeSet(
    std::vector<std::string> tokens) {
  auto set = std::make_shared<TokenSet>();
  for (const std::string& token : tokens) set->max_length = std::max(set->max_length, token.size());
  for (std::string& token : tokens) {
    set->lengths.push_back(token.size());
    token.resize(set->max_length, '\0');
  }
  set->tokens = std::move(tokens);
  return set;
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromFile(std::string path) {
  absl::StatusOr<std::string> contents = ReadWholeFile(path);
  if (!contents.ok()) return contents.status();
  absl::StatusOr<std::vector<std::string>> tokens = ParseTokenFile(*contents);
  if (!tokens.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", tokens.status().message()));
  }
  return std::unique_ptr<TokenAuthenticator>(
      new TokenAuthenticator(std::move(path), MakeSet(*std::move(tokens))));
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromTokens(
    std::vector<std::string> tokens) {
  std::string joined;
  for (const std::string& token : tokens) absl::StrAppend(&joined, token, "\n");
  absl::StatusOr<std::vector<std::string>> parsed = ParseTokenFile(joined);
  if (!parsed.ok()) return parsed.status();
  if (parsed->size() != tokens.size()) {
    return absl::InvalidArgumentError("tokens may not be empty or start with '#'");
  }
  return std::unique_ptr<TokenAuthenticator>(new TokenAuthenticator("", MakeSet(*parsed)));
}

absl::Status TokenAuthenticator::Reload() {
  if (path_.empty()) return absl::FailedPreconditionError("no token file to reload");
  absl::StatusOr<std::string> contents = ReadWholeFile(path_);
  if (!contents.ok()) return contents.status();
  absl::StatusOr<std::vector<std::string>> tokens = ParseTokenFile(*contents);
  if (!tokens.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", tokens.status().message()));
  }
  std::shared_ptr<const TokenSet> set = MakeSet(*std::move(tokens));
  absl::MutexLock lock(&mu_);
  tokens_.swap(set);
  return absl::OkStatus();
}

std::shared_ptr<const TokenAuthenticator::TokenSet> TokenAuthenticator::Current() const {
  absl::MutexLock lock(&mu_);
  return tokens_;
}

int TokenAuthenticator::token_count() const { return static_cast<int>(Current()->tokens.size()); }

absl::Status TokenAuthenticator::Check(absl::string_view authorization) const {
  if (authorization.size() < kBearer.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kBearer.size()), kBearer)) {
    return absl::UnauthenticatedError("missing 'authorization: Bearer <token>' metadata");
  }
  const absl::string_view candidate = authorization.substr(kBearer.size());
  const std::shared_ptr<const TokenSet> set = Current();
  bool match = false;
  for (size_t t = 0; t < set->tokens.size(); ++t) {
    // Bitwise OR, not ||: every token is compared.
    match = match | PaddedEquals(candidate, set->tokens[t], set->lengths[t]);
  }
  if (!match) return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

}  // namespace sepconv
