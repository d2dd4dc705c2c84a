// Unit tests of server/core/tls.h: the checks made before gRPC sees the files.

#include <fstream>

#include "gtest/gtest.h"
#include "server/grpc/grpc_tls.h"
#include "tests/server/security/test_pki.h"

namespace sepconv {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = testing::TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
  }
  TlsOptions Good() const {
    return {pki_->Path("server.crt"), pki_->Path("server.key"), pki_->Path("ca.crt")};
  }
  std::unique_ptr<testing::TestPki> pki_;
};

TEST_F(TlsTest, NoFilesMeansPlaintext) {
  EXPECT_FALSE(TlsOptions{}.enabled());
  EXPECT_TRUE(MakeServerCredentials({}).ok());
}

TEST_F(TlsTest, ValidTlsAndMtls) {
  TlsOptions tls = Good();
  EXPECT_TRUE(MakeServerCredentials(tls).ok()) << MakeServerCredentials(tls).status();
  tls.client_ca_file.clear();
  EXPECT_TRUE(MakeServerCredentials(tls).ok());
}

TEST_F(TlsTest, CertWithoutKeyAndCaWithoutCertAreRefused) {
  TlsOptions tls = Good();
  tls.key_file.clear();
  EXPECT_EQ(MakeServerCredentials(tls).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeServerCredentials({"", "", pki_->Path("ca.crt")}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TlsTest, UnreadableFileNamesFlagAndPath) {
  TlsOptions tls = Good();
  tls.key_file = pki_->Path("missing.key");
  absl::Status status = MakeServerCredentials(tls).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("--tls_key"), std::string::npos) << status;
  EXPECT_NE(status.message().find("missing.key"), std::string::npos) << status;
}

TEST_F(TlsTest, KeyOfAnotherCertificateIsRefused) {
  TlsOptions tls = Good();
  tls.key_file = pki_->Path("client.key");
  absl::Status status = MakeServerCredentials(tls).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("does not match"), std::string::npos) << status;
}

TEST_F(TlsTest, NonPemFilesAreRefused) {
  {
    std::ofstream junk(pki_->Path("junk.pem"));
    junk << "not a certificate\n";
  }
  TlsOptions tls = Good();
  tls.cert_file = pki_->Path("junk.pem");
  absl::Status status = MakeServerCredentials(tls).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("--tls_cert"), std::string::npos) << status;

  tls = Good();
  tls.client_ca_file = pki_->Path("junk.pem");
  status = MakeServerCredentials(tls).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("--tls_client_ca"), std::string::npos) << status;

  tls = Good();
  tls.key_file = pki_->Path("server.crt");
  EXPECT_EQ(MakeServerCredentials(tls).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TlsTest, EmptyFileIsRefused) {
  { std::ofstream empty(pki_->Path("empty.pem")); }
  TlsOptions tls = Good();
  tls.client_ca_file = pki_->Path("empty.pem");
  EXPECT_EQ(MakeServerCredentials(tls).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sepconv
