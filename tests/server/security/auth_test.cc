// Unit tests of server/core/auth.h: token file parsing, the fixed-time comparison
// and reloading.

#include "server/core/auth.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace sepconv {
namespace {

class TempFile {
 public:
  TempFile() {
    char name[] = "/tmp/sepconv_auth_test_XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  void Write(const std::string& contents) const {
    std::ofstream out(path_, std::ios::trunc);
    out << contents;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ParseTokenFileTest, SkipsBlankAndCommentLinesAndTrims) {
  absl::StatusOr<std::vector<std::string>> tokens =
      ParseTokenFile("# ops team\n\n  alpha-1  \r\n\t\n#beta\nbeta-2\n");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(*tokens, (std::vector<std::string>{"alpha-1", "beta-2"}));
}

TEST(ParseTokenFileTest, RefusesFileWithoutTokens) {
  absl::StatusOr<std::vector<std::string>> tokens = ParseTokenFile("# nothing\n\n   \n");
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseTokenFileTest, RefusesInnerSpaceWithoutEchoingTheToken) {
  absl::StatusOr<std::vector<std::string>> tokens = ParseTokenFile("ok\nsecret part\n");
  ASSERT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tokens.status().message().find("line 2"), std::string::npos);
  EXPECT_EQ(tokens.status().message().find("secret"), std::string::npos);
}

TEST(FixedTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(FixedTimeEquals("abc", "abc", 3));
  EXPECT_TRUE(FixedTimeEquals("abc", "abc", 10));
  EXPECT_FALSE(FixedTimeEquals("abc", "abd", 3));
  EXPECT_FALSE(FixedTimeEquals("xbc", "abc", 3));
  EXPECT_FALSE(FixedTimeEquals("ab", "abc", 3));
  EXPECT_FALSE(FixedTimeEquals("abc", "ab", 3));
  // A NUL-padded candidate must not equal a shorter token.
  EXPECT_FALSE(FixedTimeEquals(absl::string_view("abc\0", 4), "abc", 4));
  EXPECT_TRUE(FixedTimeEquals("", "", 0));
}

TEST(TokenAuthenticatorTest, AcceptsEveryConfiguredTokenOnly) {
  auto auth = TokenAuthenticator::FromTokens({"short", "a-much-longer-token-0123456789"});
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE((*auth)->Check("Bearer short").ok());
  EXPECT_TRUE((*auth)->Check("bearer a-much-longer-token-0123456789").ok());
  EXPECT_EQ((*auth)->token_count(), 2);
  for (const char* bad : {"", "Bearer", "Bearer ", "Bearer shor", "Bearer shortx", "Basic short",
                          "short", "Bearer  short", "Bearer a-much-longer-token-012345678"}) {
    absl::Status status = (*auth)->Check(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << bad;
    EXPECT_EQ(status.message().find("short"), std::string::npos) << status;
  }
}

TEST(TokenAuthenticatorTest, NulPaddedCandidateDoesNotMatchAShorterToken) {
  // Tokens are stored NUL-padded to the longest one; padding must not match.
  auto auth = TokenAuthenticator::FromTokens({"ab", "abcdef"});
  ASSERT_TRUE(auth.ok());
  EXPECT_TRUE((*auth)->Check("Bearer ab").ok());
  EXPECT_EQ((*auth)->Check(std::string("Bearer ab\0", 10)).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Check(std::string("Bearer ab\0\0\0\0", 13)).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TokenAuthenticatorTest, CandidateLongerThanEveryTokenIsRefused) {
  auto auth = TokenAuthenticator::FromTokens({"tok"});
  ASSERT_TRUE(auth.ok());
  EXPECT_EQ((*auth)->Check("Bearer " + std::string(100000, 't')).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TokenAuthenticatorTest, ReloadRotatesAndKeepsOldSetOnError) {
  TempFile file;
  file.Write("first\n");
  auto auth = TokenAuthenticator::FromFile(file.path());
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE((*auth)->Check("Bearer first").ok());

  file.Write("# rotated\nsecond\n");
  ASSERT_TRUE((*auth)->Reload().ok());
  EXPECT_EQ((*auth)->Check("Bearer first").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE((*auth)->Check("Bearer second").ok());

  file.Write("\n# emptied by mistake\n");
  EXPECT_EQ((*auth)->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*auth)->Check("Bearer second").ok());
}

TEST(TokenAuthenticatorTest, MissingFileIsNotFoundAndNamesThePath) {
  auto auth = TokenAuthenticator::FromFile("/nonexistent/sepconv/tokens");
  ASSERT_EQ(auth.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(auth.status().message().find("/nonexistent/sepconv/tokens"), std::string::npos);
}

TEST(TokenAuthenticatorTest, FixedTokensCannotReload) {
  auto auth = TokenAuthenticator::FromTokens({"x"});
  ASSERT_TRUE(auth.ok());
  EXPECT_EQ((*auth)->Reload().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(TokenAuthenticator::FromTokens({}).ok());
  EXPECT_FALSE(TokenAuthenticator::FromTokens({"has space"}).ok());
}

}  // namespace
}  // namespace sepconv
