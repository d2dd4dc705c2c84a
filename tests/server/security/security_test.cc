// TLS, mutual TLS and bearer-token auth of the real sepconv-server binary,
// over 127.0.0.1, with certificates generated at test time by openssl.

#include <signal.h>

#include <fstream>
#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "tests/server/security/sepconv_requests.h"
#include "tests/server/security/test_pki.h"

namespace sepconv::testing {
namespace {

const char kServerBinary[] = SEPCONV_SERVER_BINARY;

std::shared_ptr<grpc::ChannelCredentials> Tls(const TestPki& pki, const std::string& ca,
                                              const std::string& client = "") {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pki.Read(ca);
  if (!client.empty()) {
    ssl.pem_cert_chain = pki.Read(client + ".crt");
    ssl.pem_private_key = pki.Read(client + ".key");
  }
  return grpc::SslCredentials(ssl);
}

// One ModelInfer on a fresh connection; checks the answer when OK.
grpc::Status Infer(const std::string& target, std::shared_ptr<grpc::ChannelCredentials> creds,
                   const std::string& token = "", int connection_id = 0) {
  auto stub = inference::GRPCInferenceService::NewStub(ChannelTo(target, creds, connection_id));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  if (!token.empty()) context.AddMetadata("authorization", token);
  const inference::ModelInferRequest request = MakeRequest(1, 8, 8, 7);
  inference::ModelInferResponse response;
  grpc::Status status = stub->ModelInfer(&context, request, &response);
  if (status.ok()) {
    absl::StatusOr<std::vector<float>> expected = ExpectedOutput(request);
    EXPECT_TRUE(expected.ok()) << expected.status();
    absl::Status checked = CheckResponse(response, *expected);
    EXPECT_TRUE(checked.ok()) << checked;
  }
  return status;
}

grpc::Status HealthCheck(const std::string& target,
                         std::shared_ptr<grpc::ChannelCredentials> creds) {
  auto stub = grpc::health::v1::Health::NewStub(ChannelTo(target, creds, 1000));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, {}, &response);
  if (status.ok() && response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not SERVING");
  }
  return status;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
  }
  void StartServer(bool mutual) {
    std::vector<std::string> flags = {"--tls_cert=" + pki_->Path("server.crt"),
                                      "--tls_key=" + pki_->Path("server.key")};
    if (mutual) flags.push_back("--tls_client_ca=" + pki_->Path("ca.crt"));
    auto server =
        ServerProcess::Start(kServerBinary, flags, Tls(*pki_, "ca.crt", mutual ? "client" : ""));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    // An IP target: the certificate's IP SAN is checked, and no DNS
    // resolver (c-ares) is involved.
    target_ = server_->target();
  }
  void TearDown() override {
    if (server_ == nullptr) return;
    ASSERT_TRUE(server_->Signal(SIGTERM).ok());
    absl::StatusOr<int> code = server_->Wait(absl::Seconds(60));
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0) << server_->Log();
  }
  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<ServerProcess> server_;
  std::string target_;
};

TEST_F(TlsTest, PlaintextClientIsRefusedTlsClientWithRightCaServed) {
  StartServer(/*mutual=*/false);
  EXPECT_EQ(Infer(target_, grpc::InsecureChannelCredentials(), "", 1).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Infer(target_, Tls(*pki_, "other_ca.crt"), "", 2).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  grpc::Status ok = Infer(target_, Tls(*pki_, "ca.crt"), "", 3);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

TEST_F(TlsTest, MutualTlsRefusesMissingAndForeignClientCertificates) {
  StartServer(/*mutual=*/true);
  EXPECT_EQ(Infer(target_, Tls(*pki_, "ca.crt"), "", 1).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Infer(target_, Tls(*pki_, "ca.crt", "other_client"), "", 2).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Infer(target_, grpc::InsecureChannelCredentials(), "", 3).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  grpc::Status ok = Infer(target_, Tls(*pki_, "ca.crt", "client"), "", 4);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

TEST(TlsStartupTest, UnreadableKeyFailsWithClearMessage) {
  auto server = ServerProcess::Start(
      kServerBinary, {"--tls_cert=/nonexistent/server.crt", "--tls_key=/nonexistent/server.key"},
      nullptr, absl::Seconds(30));
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("--tls_cert"), std::string::npos) << server.status();
  EXPECT_NE(server.status().message().find("/nonexistent/server.crt"), std::string::npos);
}

class AuthTest : public ::testing::Test {
 protected:
  static constexpr char kToken[] = "s3cr3t-token-0123456789abcdef";
  void SetUp() override {
    char dir[] = "/tmp/sepconv_auth_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    token_file_ = dir_ + "/tokens";
    WriteTokens(std::string("# rotated by ops\n") + kToken + "\n");
    auto server = ServerProcess::Start(kServerBinary, {"--auth_token_file=" + token_file_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void TearDown() override {
    if (server_ != nullptr) {
      ASSERT_TRUE(server_->Signal(SIGTERM).ok());
      absl::StatusOr<int> code = server_->Wait(absl::Seconds(60));
      ASSERT_TRUE(code.ok()) << code.status();
      EXPECT_EQ(*code, 0) << server_->Log();
    }
    std::remove(token_file_.c_str());
    rmdir(dir_.c_str());
  }
  void WriteTokens(const std::string& contents) {
    const std::string tmp = token_file_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << contents;
    }
    ASSERT_EQ(std::rename(tmp.c_str(), token_file_.c_str()), 0);
  }
  double Unauthenticated() {
    absl::StatusOr<double> value =
        server_->Metric("sepconv_inference_requests_total",
                        {{"model", "sepconv"}, {"version", "1"}, {"status", "UNAUTHENTICATED"}});
    EXPECT_TRUE(value.ok()) << value.status();
    return value.value_or(-1);
  }
  std::string dir_;
  std::string token_file_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(AuthTest, MissingWrongAndWrongLengthTokensAreUnauthenticatedAndCounted) {
  const double before = Unauthenticated();
  const std::string right = std::string("Bearer ") + kToken;
  std::string wrong = right;
  wrong.back() ^= 1;  // same length, last byte differs
  for (const std::string& bad : {std::string(), wrong, right.substr(0, right.size() - 1),
                                 right + "0", std::string("Basic ") + kToken}) {
    grpc::Status status = Infer(server_->target(), nullptr, bad);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << "'" << bad << "'";
    EXPECT_EQ(status.error_message().find(kToken), std::string::npos);
  }
  EXPECT_EQ(Unauthenticated() - before, 5);
  grpc::Status ok = Infer(server_->target(), nullptr, right);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  // Probes need no token.
  EXPECT_TRUE(HealthCheck(server_->target(), nullptr).ok());
  // The token never leaks into the metrics or the log.
  absl::StatusOr<std::string> scrape = server_->Scrape();
  ASSERT_TRUE(scrape.ok());
  EXPECT_EQ(scrape->find(kToken), std::string::npos);
  EXPECT_EQ(server_->Log().find(kToken), std::string::npos);
  EXPECT_NE(server_->Log().find("status=UNAUTHENTICATED"), std::string::npos) << server_->Log();
}

TEST_F(AuthTest, SighupRotatesTokensWithoutRestart) {
  const std::string old_token = std::string("Bearer ") + kToken;
  const std::string new_token = "Bearer rotated-token-42";
  ASSERT_TRUE(Infer(server_->target(), nullptr, old_token).ok());
  WriteTokens("rotated-token-42\n");
  ASSERT_TRUE(server_->Signal(SIGHUP).ok());
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  grpc::Status status;
  do {
    absl::SleepFor(absl::Milliseconds(50));
    status = Infer(server_->target(), nullptr, new_token);
  } while (!status.ok() && absl::Now() < give_up);
  EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << server_->Log();
  EXPECT_EQ(Infer(server_->target(), nullptr, old_token).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(server_->running());

  // A broken file on reload keeps the current tokens in force.
  WriteTokens("# nothing here\n");
  ASSERT_TRUE(server_->Signal(SIGHUP).ok());
  // Checked once the server has read the broken file (it says so), however
  // long that takes: not after a sleep that a slow machine could outlast.
  const absl::Time reloaded_by = absl::Now() + absl::Seconds(60);
  while (server_->Log().find("keeping the current tokens") == std::string::npos &&
         absl::Now() < reloaded_by) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_NE(server_->Log().find("keeping the current tokens"), std::string::npos) << server_->Log();
  EXPECT_TRUE(Infer(server_->target(), nullptr, new_token).ok());
  EXPECT_TRUE(server_->running());
}

TEST(LimitsTest, OversizeRequestsAreRefusedAndLoggedThenGoodOnesServed) {
  auto server = ServerProcess::Start(
      kServerBinary,
      {"--max_elements_per_request=10000", "--max_spatial_size=32", "--max_batch_per_request=2"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = inference::GRPCInferenceService::NewStub(ChannelTo((*server)->target(), nullptr));
  struct Case {
    int64_t n, h, w;
    const char* flag;
  };
  for (const Case& c :
       {Case{3, 2, 2, "--max_batch_per_request"}, Case{1, 40, 4, "--max_spatial_size"},
        Case{1, 20, 20, "--max_elements_per_request"}}) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    inference::ModelInferResponse response;
    grpc::Status status = stub->ModelInfer(&context, MakeRequest(c.n, c.h, c.w, 1), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << c.flag;
    EXPECT_NE(status.error_message().find(c.flag), std::string::npos) << status.error_message();
  }
  // 1x32x8x8 in, 1x64x8x8 out: both within 10000 elements.
  grpc::Status ok = Infer((*server)->target(), nullptr);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  const std::string log = (*server)->Log();
  EXPECT_NE(log.find("status=RESOURCE_EXHAUSTED model=sepconv"), std::string::npos) << log;
  EXPECT_NE(log.find("peer=ipv4:127.0.0.1:"), std::string::npos) << log;
  ASSERT_TRUE((*server)->Signal(SIGTERM).ok());
  absl::StatusOr<int> code = (*server)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace sepconv::testing
