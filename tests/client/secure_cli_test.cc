// sepconv-client against a sepconv-server that serves TLS only and wants a
// bearer token: certificates are made at test time with the openssl CLI.
// The client's TLS and token flags work, and every misconfiguration ends
// quickly with a clear error.

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_server.h"

namespace sepconv::client {
namespace {

using ::testing::HasSubstr;
using testing::ProcessResult;

std::string Dir() { return ::testing::TempDir(); }

void Openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {testing::RequiredEnv("SEPCONV_OPENSSL")};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult r = testing::RunProcess(argv, absl::Seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

// A CA and a certificate it signs for localhost / 127.0.0.1.
void MakePki(const std::string& prefix) {
  const std::string ca = Dir() + "/" + prefix + "ca";
  const std::string server = Dir() + "/" + prefix + "server";
  Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-days", "2", "-subj", "/CN=" + prefix + "test-ca", "-keyout", ca + ".key", "-out",
           ca + ".pem"});
  Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-subj", "/CN=localhost", "-keyout", server + ".key", "-out", server + ".csr"});
  std::ofstream(server + ".ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  Openssl({"x509", "-req", "-days", "2", "-in", server + ".csr", "-CA", ca + ".pem", "-CAkey",
           ca + ".key", "-CAcreateserial", "-extfile", server + ".ext", "-out", server + ".pem"});
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class SecureCliTest : public testing::SharedServerTest<SecureCliTest> {
 public:
  static std::vector<std::string> ServerFlags() {
    return {"--tls_cert=" + Dir() + "/good_server.pem", "--tls_key=" + Dir() + "/good_server.key",
            "--auth_token_file=" + Dir() + "/tokens"};
  }
  static std::shared_ptr<grpc::ChannelCredentials> ProbeCredentials() {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = ReadAll(Dir() + "/good_ca.pem");
    return grpc::SslCredentials(tls);
  }

 protected:
  static void SetUpTestSuite() {
    MakePki("good_");
    MakePki("other_");
    std::ofstream(Dir() + "/tokens") << "# test tokens\ns3cret\n";
    std::ofstream(Dir() + "/token") << "s3cret\n";
    SharedServerTest::SetUpTestSuite();
  }

  ProcessResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {testing::RequiredEnv("SEPCONV_CLIENT_BIN")});
    args.push_back(absl::StrCat("--server=", server_->target()));
    args.push_back("--timeout_ms=5000");
    return testing::RunProcess(args, absl::Seconds(60));
  }
};

void ExpectError(const ProcessResult& r, const std::string& needle) {
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(needle));
  EXPECT_LT(r.elapsed, absl::Seconds(10));
}

TEST_F(SecureCliTest, TlsAndTokenWork) {
  const std::string ca = "--tls_ca=" + Dir() + "/good_ca.pem";
  ProcessResult health = Cli({"health", "--tls", ca});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");

  ProcessResult infer =
      Cli({"infer", "--tls", ca, "--token_file=" + Dir() + "/token", "--shape=1,32,8,8"});
  EXPECT_EQ(infer.exit_code, 0) << infer.err;
  EXPECT_THAT(infer.out, HasSubstr("[1, 64, 8, 8]"));

  ProcessResult flag = Cli({"infer", "--tls", ca, "--token=s3cret", "--shape=1,32,8,8", "--typed"});
  EXPECT_EQ(flag.exit_code, 0) << flag.err;

  ProcessResult bench =
      Cli({"bench", "--tls", ca, "--token=s3cret", "--shape=1,32,8,8", "--concurrency=2",
           "--warmup_ms=50", "--window_ms=200", "--max_windows=2"});
  EXPECT_EQ(bench.exit_code, 0) << bench.err;

  // The name the certificate carries, when the address is not it.
  ProcessResult named = Cli({"health", "--tls", ca, "--tls_server_name=localhost"});
  EXPECT_EQ(named.exit_code, 0) << named.err;
}

TEST_F(SecureCliTest, MissingOrWrongTokenIsUnauthenticated) {
  const std::string ca = "--tls_ca=" + Dir() + "/good_ca.pem";
  ExpectError(Cli({"infer", "--tls", ca, "--shape=1,32,8,8"}), "UNAUTHENTICATED");
  ExpectError(Cli({"infer", "--tls", ca, "--token=wrong", "--shape=1,32,8,8"}), "UNAUTHENTICATED");
  ExpectError(Cli({"metadata", "--tls", ca}), "UNAUTHENTICATED");
  ExpectError(Cli({"bench", "--tls", ca, "--shape=1,32,8,8"}), "UNAUTHENTICATED");
}

TEST_F(SecureCliTest, TlsMisconfigurationFailsQuickly) {
  // Plaintext to a TLS port, and a server certificate from an unknown CA.
  ExpectError(Cli({"health"}), "UNAVAILABLE");
  ExpectError(Cli({"health", "--tls", "--tls_ca=" + Dir() + "/other_ca.pem"}), "UNAVAILABLE");
  // A name the certificate does not carry.
  ExpectError(Cli({"health", "--tls", "--tls_ca=" + Dir() + "/good_ca.pem",
                   "--tls_server_name=elsewhere.example"}),
              "UNAVAILABLE");
  ProcessResult missing = Cli({"health", "--tls", "--tls_ca=/nonexistent/ca.pem"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/ca.pem"));
  ProcessResult half = Cli({"health", "--tls", "--tls_cert=" + Dir() + "/good_server.pem"});
  EXPECT_NE(half.exit_code, 0);
  EXPECT_THAT(half.err, HasSubstr("private key"));
}

}  // namespace
}  // namespace sepconv::client
