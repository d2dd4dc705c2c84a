#include "server/core/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace sepconv {
namespace {

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first error OpenSSL queued, for a message; clears the queue.
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
  ERR_clear_error();
  if (code == 0) return "no PEM block found";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

// Checks the certificate parses, the key parses and belongs to it.
absl::Status CheckCertAndKey(const TlsOptions& options, const std::string& cert_pem,
                             const std::string& key_pem) {
  ERR_clear_error();
  BioPtr cert_bio = MemBio(cert_pem);
  std::unique_ptr<X509, X509Deleter> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--tls_cert ", options.cert_file,
                                                   " is not a PEM certificate: ", OpenSslError()));
  }
  BioPtr key_bio = MemBio(key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_key ", options.key_file,
                     " is not an unencrypted PEM private key: ", OpenSslError()));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("--tls_key ", options.key_file,
                                                   " does not match the certificate in --tls_cert ",
                                                   options.cert_file));
  }
  return absl::OkStatus();
}

absl::Status CheckCaBundle(const TlsOptions& options, const std::string& ca_pem) {
  ERR_clear_error();
  BioPtr bio = MemBio(ca_pem);
  int count = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_free(ca);
    ++count;
  }
  ERR_clear_error();
  if (count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_client_ca ", options.client_ca_file, " holds no PEM certificate"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string what =
        absl::StrCat("cannot read ", flag, " file ", path, ": ", strerror(err));
    if (err == EACCES) return absl::PermissionDeniedError(what);
    return absl::NotFoundError(what);
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", flag, " file ", path));
  if (contents.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " file ", path, " is empty"));
  }
  return contents.str();
}

absl::StatusOr<TlsPems> LoadTls(const TlsOptions& options) {
  TlsPems pems;
  if (!options.enabled()) return pems;
  if (options.cert_file.empty() || options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls_cert and --tls_key (--tls_client_ca additionally enables mTLS)");
  }
  absl::StatusOr<std::string> cert = ReadPemFile("--tls_cert", options.cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPemFile("--tls_key", options.key_file);
  if (!key.ok()) return key.status();
  if (absl::Status s = CheckCertAndKey(options, *cert, *key); !s.ok()) return s;
  pems.cert = *std::move(cert);
  pems.key = *std::move(key);
  if (!options.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile("--tls_client_ca", options.client_ca_file);
    if (!ca.ok()) return ca.status();
    if (absl::Status s = CheckCaBundle(options, *ca); !s.ok()) return s;
    pems.client_ca = *std::move(ca);
  }
  return pems;
}

}  // namespace sepconv
